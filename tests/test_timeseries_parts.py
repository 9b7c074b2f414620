"""Time-series parts: 1-D patch tokenizer with padding, instance norm, span/block maskers, padded backbone."""
import math

import numpy as np
import pytest
import torch

from polyjepa.models.encoder import TransformerEncoder
from polyjepa.timeseries import PatchEmbed1D, SeriesBackbone, SpanMasker, instance_normalize, pad_series
from polyjepa.timeseries.masks import real_time_tokens, split_sizes


def test_instance_normalize_matches_numpy_and_keeps_padding():
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, (4, 2, 20)).astype(np.float32)
    x[1, :, 15:] = np.nan
    out = instance_normalize(torch.from_numpy(x)).numpy()
    with np.errstate(invalid="ignore"):
        ref = (x - np.nanmean(x, -1, keepdims=True)) / np.sqrt(np.nanvar(x, -1, keepdims=True) + 1e-5)
    assert np.allclose(out, ref, atol=1e-5, equal_nan=True)
    assert np.isnan(out[1, :, 15:]).all() and np.isfinite(out[1, :, :15]).all()


@pytest.mark.parametrize("channel_independent", [False, True])
def test_patch1d_shapes_grid_and_mask_with_variable_lengths(channel_independent):
    tok = PatchEmbed1D(length=50, in_channels=3, dim=16, patch_size=8, channel_independent=channel_independent)
    n = math.ceil(50 / 8)
    assert tok.grid == ((3, n) if channel_independent else (n,))
    assert tok.position_embedding(8).shape == (tok.num_tokens, 8)
    x = pad_series([np.ones((3, 50)), np.ones((3, 17)), np.ones((3, 8))])  # lengths 50, 17, 8
    out, valid = tok(torch.from_numpy(x)), tok.token_mask(torch.from_numpy(x))
    assert out.shape == (3, tok.num_tokens, 16) and torch.isfinite(out).all()
    real = torch.tensor([[True] * n, [True] * 3 + [False] * (n - 3), [True] + [False] * (n - 1)])
    assert torch.equal(valid, real.repeat(1, 3) if channel_independent else real)
    # a shorter input is padded up to the tokenizer's length; a longer one is an error
    assert tok(torch.ones(2, 3, 30)).shape == (2, tok.num_tokens, 16)
    with pytest.raises(ValueError, match="at most 50 steps"):
        tok(torch.ones(2, 3, 51))


def test_patch1d_tokens_are_linear_maps_of_patches():
    tok = PatchEmbed1D(length=12, in_channels=2, dim=4, patch_size=4, instance_norm=False)
    x = torch.randn(1, 2, 12)
    patch1 = torch.cat([x[0, 0, 4:8], x[0, 1, 4:8]])  # channels mixed within a patch
    expect = tok.proj(patch1) + tok.position_embedding(4)[1]
    assert torch.allclose(tok(x)[0, 1], expect, atol=1e-6)
    assert PatchEmbed1D(length=1000, in_channels=1, dim=4, max_tokens=64).patch_size == 16  # ceil(1000 / 64)


def _backbone(**kw):
    tok = PatchEmbed1D(length=40, in_channels=2, dim=16, patch_size=4, **kw)
    return SeriesBackbone(tok, TransformerEncoder(dim=16, depth=2, heads=2)).eval()


@pytest.mark.parametrize("pool", ["mean", "mean+std", "mean+max", "grid:3"])
def test_padding_changes_nothing_for_real_tokens_and_pools(pool):
    torch.manual_seed(0)
    bb = _backbone()
    short = torch.randn(1, 2, 20)
    padded = torch.cat([short, torch.full((1, 2, 20), float("nan"))], -1)
    alone = SeriesBackbone(PatchEmbed1D(length=20, in_channels=2, dim=16, patch_size=4), bb.encoder).eval()
    alone.tokenizer.proj = bb.tokenizer.proj
    with torch.no_grad():
        h_pad, h_alone = bb(padded)[:, :5], alone(short)
        assert torch.allclose(h_pad, h_alone, atol=1e-5)  # no attention to padding
        if not pool.startswith("grid"):
            assert torch.allclose(bb.embed(padded, pool=pool), alone.embed(short, pool=pool), atol=1e-5)
        else:
            e = bb.embed(padded, pool=pool)
            assert e.shape == (1, 4 * 16) and torch.isfinite(e).all()
            assert torch.allclose(e, alone.embed(short, pool=pool), atol=1e-5)  # segments of the real span


def test_grid_pool_is_mean_of_time_segments():
    torch.manual_seed(0)
    bb = _backbone(channel_independent=True)  # grid (2, 10)
    x = torch.randn(3, 2, 40)
    with torch.no_grad():
        h = bb(x).view(3, 2, 10, 16)
        e = bb.embed(x, pool="grid:2")
    assert torch.allclose(e[:, :16], h.mean((1, 2)), atol=1e-5)
    assert torch.allclose(e[:, 16:32], h[:, :, :5].mean((1, 2)), atol=1e-5)
    assert torch.allclose(e[:, 32:], h[:, :, 5:].mean((1, 2)), atol=1e-5)


def _check_masks(masker, ctx, tgt, n_real, channels=1):
    T = masker.time_steps
    B = ctx.shape[0]
    assert tgt.shape[:2] == (B, 1)
    tgt = tgt[:, 0]
    assert (ctx.shape[1] + tgt.shape[1]) == n_real * channels  # every real token is context or target
    for b in range(B):
        c, t = set(ctx[b].tolist()), set(tgt[b].tolist())
        assert not c & t and len(c) == ctx.shape[1] and len(t) == tgt.shape[1]
        assert all(i % T < n_real for i in c | t)  # never a padding token
    assert torch.all(ctx[:, 1:] > ctx[:, :-1]) and torch.all(tgt[:, 1:] > tgt[:, :-1])
    return tgt


@pytest.mark.parametrize("mode", ["random", "blocks"])
def test_span_masker_invariants(mode):
    masker = SpanMasker(grid=(40,), target_ratio=(0.6, 0.8), mode=mode, min_block=5)
    ratios = set()
    for seed in range(30):
        ctx, tgt = masker(8, torch.Generator().manual_seed(seed))
        tgt = _check_masks(masker, ctx, tgt, 40)
        ratios.add(tgt.shape[1])
        assert 0.6 * 40 - 1 <= tgt.shape[1] <= 0.8 * 40 + 1
        if mode == "blocks":  # every maximal run of targets is at least min_block long
            for b in range(8):
                m = torch.zeros(40, dtype=torch.bool)
                m[tgt[b]] = True
                runs = torch.diff(torch.cat([torch.tensor([0]), m.int(), torch.tensor([0])])).nonzero().flatten()
                assert (runs[1::2] - runs[::2]).min() >= 5
    assert len(ratios) > 3  # the ratio is drawn per batch
    a, b = masker(4, torch.Generator().manual_seed(3)), masker(4, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # determined by the generator


def test_span_masker_tubes_over_channels_and_respects_padding():
    masker = SpanMasker(grid=(3, 10), target_ratio=(0.5, 0.5), mode="blocks", min_block=2)
    x = torch.randn(4, 2, 40)
    x[1, :, 27:] = float("nan")  # 27 real steps of 4-step patches -> 7 real tokens
    assert real_time_tokens(x, 10) == 7
    ctx, tgt = masker(4, torch.Generator().manual_seed(0), x=x)
    t = _check_masks(masker, ctx, tgt, 7, channels=3)
    times = (t % 10).view(4, 3, -1)
    assert torch.equal(times[:, 0], times[:, 1]) and torch.equal(times[:, 0], times[:, 2])  # same steps per channel


def test_split_sizes_sum_and_cover():
    g = torch.Generator().manual_seed(0)
    s = split_sizes(10, 4, 20000, g)
    assert torch.equal(s.sum(1), torch.full((20000,), 10)) and (s >= 0).all()
    assert s[:, 0].max() == 10 and s[:, 0].min() == 0
    # first part = smallest of 3 uniform cuts in {0..10}: P(0) = 1 - (10/11)^3, P(10) = (1/11)^3
    assert abs((s[:, 0] == 0).float().mean().item() - (1 - (10 / 11) ** 3)) < 0.01
    assert abs((s[:, -1] == 0).float().mean().item() - (1 - (10 / 11) ** 3)) < 0.01


def test_masker_rejects_bad_arguments():
    with pytest.raises(ValueError, match="target_ratio"):
        SpanMasker(grid=(10,), target_ratio=(0.5, 1.0))
    with pytest.raises(ValueError, match="mode"):
        SpanMasker(grid=(10,), mode="spiral")
    with pytest.raises(ValueError, match="smaller patch_size"):
        SpanMasker(grid=(1,))


def test_conv_patch_embed_sees_only_its_own_patch():
    tok = PatchEmbed1D(length=24, in_channels=2, dim=16, patch_size=6, embed="conv", instance_norm=False)
    x = torch.randn(3, 2, 24)
    y = x.clone()
    y[:, :, 12:18] += 1.0  # change patch 2 only
    a, b = tok(x), tok(y)
    assert a.shape == (3, 4, 16)
    changed = (a - b).abs().amax((0, 2)) > 1e-6
    assert changed.tolist() == [False, False, True, False]  # convolution padding stays inside the patch
    ci = PatchEmbed1D(length=24, in_channels=2, dim=16, patch_size=6, embed="conv", channel_independent=True)
    assert ci(x).shape == (3, 8, 16)


@pytest.mark.parametrize("recipe, shape", [("tsjepa", (3, 150)), ("tsjepa-conv", (3, 150)), ("ecgjepa", (2, 256)),
                                           ("eegjepa", (8, 640))])
def test_recipes_build_and_every_trainable_parameter_gets_a_gradient(recipe, shape):
    from polyjepa import build_method, load_recipe

    method = build_method(load_recipe(recipe, ["encoder.depth=1", "predictor.depth=1"]), shape, seed=0)
    x = torch.randn(4, *shape)
    x[1, :, shape[1] - 40:] = float("nan")  # one padded series
    ctx, tgt = method.masker(4, torch.Generator().manual_seed(0), x=x)
    out = method({"x": x, "context_idx": ctx, "target_idx": tgt})
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, p in method.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in method.target.parameters())
    assert method.embed(x, pool="mean+max").shape == (4, 2 * method.backbone.dim)
