"""The dilated convolutional series encoder and its backbone: formula, masking, padding, assembly."""
import math

import pytest
import torch
import torch.nn.functional as F

from polyjepa.errors import UserError
from polyjepa.timeseries.conv import ConvSeriesBackbone, DilatedBlock, DilatedConvEncoder
from polyjepa.timeseries.tokenizer import PatchGrid1D


def test_dilated_block_matches_hand_written_convolutions():
    torch.manual_seed(0)
    blk = DilatedBlock(3, 5, dilation=4)
    x = torch.randn(2, 3, 30)
    c1, c2, pr = blk.conv1, blk.conv2, blk.proj
    # 'same' length: pad 4 on each side for kernel 3, dilation 4
    h = F.conv1d(F.pad(F.gelu(x), (4, 4)), c1.weight, c1.bias, dilation=4)
    h = F.conv1d(F.pad(F.gelu(h), (4, 4)), c2.weight, c2.bias, dilation=4)
    res = torch.einsum("oi,bil->bol", pr.weight[..., 0], x) + pr.bias[:, None]
    assert torch.allclose(blk(x), h + res, atol=1e-5)
    same = DilatedBlock(5, 5, dilation=1)
    assert same.proj is None and same(torch.zeros(1, 5, 7)).shape == (1, 5, 7)


def test_encoder_shape_and_receptive_field():
    torch.manual_seed(0)
    enc = DilatedConvEncoder(in_channels=2, hidden=8, dim=12, depth=3).eval()
    x = torch.randn(1, 2, 200)
    out = enc(x)
    assert out.shape == (1, 12, 200) and enc.dim == 12
    # dilations 1, 2, 4, 8, two kernel-3 convs each: the output at step t sees steps t +- 2 * (1+2+4+8) = 30
    y = x.clone()
    y[..., 131:] += 1.0
    changed = (enc(y) - out).abs().amax(1)[0] > 0
    assert not changed[:100].any() and changed[101]


def test_hidden_steps_carry_nothing():
    torch.manual_seed(0)
    enc = DilatedConvEncoder(in_channels=1, hidden=8, dim=8, depth=2).eval()
    x = torch.randn(3, 1, 40)
    hide = torch.zeros(3, 40, dtype=torch.bool)
    hide[:, 10:20] = True
    y = x.clone()
    y[:, :, 10:20] = torch.randn(3, 1, 10) * 5
    assert torch.equal(enc(x, hide), enc(y, hide))
    assert not torch.equal(enc(x), enc(y))


def _backbone(length=48, patch=4):
    torch.manual_seed(0)
    return ConvSeriesBackbone(PatchGrid1D(length=length, in_channels=2, patch_size=patch),
                              DilatedConvEncoder(in_channels=2, hidden=8, dim=6, depth=3)).eval()


def test_tokens_are_patch_maxima_and_context_ignores_dropped_tokens():
    bb = _backbone()
    x = torch.randn(2, 2, 48)
    with torch.no_grad():
        steps = bb.encoder(x)                                  # (2, 6, 48)
        assert torch.allclose(bb(x), steps.view(2, 6, 12, 4).amax(-1).transpose(1, 2), atol=1e-6)
        keep = torch.tensor([[0, 1, 2, 7, 8], [3, 4, 5, 10, 11]])
        y = x.clone()
        for b in range(2):
            for t in set(range(12)) - set(keep[b].tolist()):
                y[b, :, 4 * t:4 * t + 4] = torch.randn(2, 4)  # change the values under every dropped token
        ctx = bb(x, keep_idx=keep)
        assert ctx.shape == (2, 5, 6)
        assert torch.allclose(ctx, bb(y, keep_idx=keep), atol=1e-6)
        assert not torch.allclose(bb(x), bb(y))


@pytest.mark.parametrize("pool", ["max", "mean", "mean+max"])
def test_padded_series_embed_as_unpadded(pool):
    long, short = _backbone(length=48), _backbone(length=24)
    short.encoder = long.encoder
    s = torch.randn(1, 2, 24)
    padded = torch.cat([s, torch.full((1, 2, 24), float("nan"))], -1)
    with torch.no_grad():
        assert torch.allclose(long(padded)[:, :6], short(s), atol=1e-5)
        assert torch.allclose(long.embed(padded, pool=pool), short.embed(s, pool=pool), atol=1e-5)
        # a batch with one padded and one full series gives the padded one the same features
        batch = torch.cat([padded, torch.randn(1, 2, 48)])
        assert torch.allclose(long.embed(batch, pool=pool)[:1], short.embed(s, pool=pool), atol=1e-5)


def test_conv_backbone_refuses_channel_independent_and_extra_layers():
    with pytest.raises(ValueError, match="channel_independent"):
        ConvSeriesBackbone(PatchGrid1D(length=8, in_channels=2, channel_independent=True),
                           DilatedConvEncoder(in_channels=2, depth=1))
    with pytest.raises(ValueError, match="layers"):
        _backbone().embed(torch.randn(1, 2, 48), layers=2)


def test_encoder_and_tokenizer_must_match():
    from polyjepa import build_method, load_recipe

    with pytest.raises(UserError, match="dilated_conv goes with tokenizer patch_grid"):
        cfg = load_recipe("tsjepa")
        cfg.encoder = {"name": "dilated_conv"}
        build_method(cfg, (1, 64), seed=0)


def test_series_views_are_windows_of_the_real_span():
    from polyjepa.timeseries.views import SeriesViews

    x = torch.randn(5, 2, 40)
    x[1, :, 25:] = float("nan")                          # a series of 25 real steps
    views = SeriesViews(n_global=3, crop=(0.5, 0.8), scale=0.0, noise=0.0)
    out = views(x, torch.Generator().manual_seed(0))["global"]
    assert out.shape == (3, 5, 2, 40)
    for v in range(3):
        for b in range(5):
            real = 25 if b == 1 else 40
            w = int(torch.isfinite(out[v, b, 0]).sum())
            assert round(0.5 * real) <= w <= round(0.8 * real)
            assert torch.isfinite(out[v, b, :, :w]).all() and torch.isnan(out[v, b, :, w:]).all()
            # the window is a contiguous piece of the real part of the series
            starts = [s for s in range(real - w + 1) if torch.equal(x[b, :, s:s + w], out[v, b, :, :w])]
            assert starts, (v, b)
    again = views(x, torch.Generator().manual_seed(0))["global"]
    assert torch.equal(torch.nan_to_num(out, nan=7.0), torch.nan_to_num(again, nan=7.0))
    jittered = SeriesViews(scale=0.5, noise=0.1)(x, torch.Generator().manual_seed(1))["global"]
    assert torch.isfinite(jittered[:, 0]).sum() > 0
    with pytest.raises(ValueError, match="crop"):
        SeriesViews(crop=(0.0, 1.0))
    with pytest.raises(ValueError, match="2 views"):
        SeriesViews(n_global=1)


TINY_VIC = ("encoder.depth=2", "encoder.hidden=8", "encoder.dim=16", "projector.hidden=32", "projector.out_dim=32")


def _waves(n=24, length=32, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    f = np.where(np.arange(n) % 2 == 0, 2.0, 6.0)[:, None, None]
    return (np.sin(2 * np.pi * f * t + rng.uniform(0, 6, (n, 2, 1))) + 0.1 * rng.normal(size=(n, 2, length))).astype("float32")


def test_series_vicreg_in_memory_equals_the_core_loop(tmp_path):
    from polyjepa import build_method, load_recipe, train_method
    from polyjepa.config import TrainConfig
    from polyjepa.train.inmemory import fit_in_memory

    x = _waves()
    cfg = load_recipe("tsvicreg", list(TINY_VIC))
    train = TrainConfig(batch_size=8, max_steps=4, warmup=0.5, monitor_every=0, checkpoint_every=100)
    a, b = build_method(cfg, (2, 32), seed=1), build_method(cfg, (2, 32), seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-exact: Adam turns 1e-9 reduction-order noise in near-zero gradients into lr-sized steps
    try:
        train_method(a, x, train=train, run_dir=tmp_path, seed=3, progress=False)
        rec = fit_in_memory(b, x, train, seed=3)
    finally:
        torch.set_num_threads(threads)
    assert rec["steps"] == 4 and all(math.isfinite(v) for v in rec["losses"])
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa.float(), pb.float(), atol=1e-6), name
    fresh = build_method(cfg, (2, 32), seed=1)
    assert not torch.allclose(a.backbone.encoder.input.weight, fresh.backbone.encoder.input.weight)
    for p in b.trainable_modules():
        for q in p.parameters():
            assert q.grad is None or torch.isfinite(q.grad).all()


def test_series_vicreg_embedder_ignores_padding_and_refuses_image_views():
    import numpy as np

    from polyjepa import TimeSeriesEmbedder, build_method, load_recipe
    from polyjepa.timeseries import pad_series

    x = _waves(n=8, length=40)
    short = [s[:, :n] for s, n in zip(x, [40, 33, 20, 40, 25, 40, 31, 40])]
    padded = pad_series(short)
    emb = TimeSeriesEmbedder("tsvicreg", max_steps=2, batch_size=4, overrides=TINY_VIC, kernels=0).fit(padded)
    full = emb.transform(padded)
    assert full.shape == (8, 16) and np.isfinite(full).all()
    alone = emb.transform(pad_series([short[2]], length=40))
    assert np.allclose(full[2], alone[0], atol=1e-5)
    cfg = load_recipe("tsvicreg", list(TINY_VIC))
    cfg.views = {"name": "multicrop"}
    with pytest.raises(UserError, match="series_crops"):
        build_method(cfg, (2, 40), seed=0)


def test_series_views_hide_about_the_mask_fraction_in_spans():
    from polyjepa.timeseries.views import SeriesViews

    x = torch.randn(200, 1, 320)
    out = SeriesViews(crop=(1.0, 1.0), scale=0.0, noise=0.0, mask=0.3)(x, torch.Generator().manual_seed(0))["global"]
    hidden = torch.isnan(out[:, :, 0]).float().mean().item()
    # 16 spans of 20 steps, each on with p = 0.3, overlapping at random: expected 1 - E[(1 - 20/301)^k]-ish
    assert 0.18 < hidden < 0.3
    kept = ~torch.isnan(out[0, :, 0])
    assert torch.equal(out[0, :, 0][kept], x[:, 0][kept])           # the rest is untouched (full crop, no jitter)
    runs = torch.diff(kept.to(torch.int8), dim=1).ne(0).sum(1)     # hidden steps come in runs, not single steps
    assert runs.float().mean() < 2 * 0.3 * 16 + 1
