import math

import numpy as np
import pytest
import torch

from polyjepa.video import MultiBlock3DMasker, MultiMaskPredictor, TubeletEmbed, TubeMaskSet, VideoBackbone, sincos_3d
from polyjepa.models.encoder import vit_encoder


def test_sincos_3d_matches_the_formula_per_axis():
    dim, grid = 20, (3, 4, 5)
    emb = sincos_3d(dim, grid).numpy()
    axis = 2 * math.ceil(dim / 6)  # 8 channels per axis, cut to 20 in all
    assert emb.shape == (60, dim)
    for n in (0, 7, 33, 59):
        t, r, c = n // 20, (n // 5) % 4, n % 5
        ref = []
        for p in (t, r, c):
            omega = 1.0 / 10000 ** (np.arange(axis // 2) / (axis / 2))
            ref += list(np.sin(p * omega)) + list(np.cos(p * omega))
        np.testing.assert_allclose(emb[n], np.array(ref[:dim]), atol=1e-6)
    assert len({tuple(np.round(e, 5)) for e in emb}) == 60  # every position is distinct


def test_tubelet_shapes_grid_and_token_order():
    tok = TubeletEmbed(input_shape=(3, 8, 16, 24), patch_size=8, tubelet_size=2, dim=32)
    assert tok.grid == (4, 2, 3) and tok.num_tokens == 24
    x = torch.randn(2, 3, 8, 16, 24)
    out = tok(x)
    assert out.shape == (2, 24, 32)
    assert tok.position_embedding(16).shape == (24, 16)
    # token n = (t, r, c) time-major sees only the pixels of its own tubelet
    x2 = x.clone()
    x2[:, :, 2:4, 8:16, 16:24] += 1.0  # tubelet t=1, row=1, col=2 -> n = 1*6 + 1*3 + 2 = 11
    diff = (tok(x2) - out).abs().sum(-1)
    assert diff[:, 11].min() > 0 and diff[:, [i for i in range(24) if i != 11]].max() == 0


@pytest.mark.parametrize("shape, match", [((1, 1, 32, 32), "frames"), ((1, 5, 32, 32), "multiple of tubelet"),
                                          ((8, 32, 32), "channels, frames"), ((1, 8, 30, 32), "patch size 8: crop or resize the frames to a multiple of 8")])
def test_tubelet_rejects_bad_clips(shape, match):
    with pytest.raises(ValueError, match=match):
        TubeletEmbed(input_shape=shape, patch_size=8, tubelet_size=2, dim=32)


def test_tubelet_rejects_wrong_layout_at_forward():
    tok = TubeletEmbed(input_shape=(1, 8, 16, 16), patch_size=8, dim=16)
    with pytest.raises(ValueError, match="C, T, H, W"):
        tok(torch.randn(2, 8, 1, 16, 16))  # (B, T, C, H, W) instead of (B, C, T, H, W)


def _blocks_of(mask, grid):
    return mask.view(*grid)


@pytest.mark.parametrize("grid, n_blocks, scale", [((4, 8, 8), 8, 0.15), ((4, 8, 8), 2, 0.7), ((3, 6, 5), 3, 0.2),
                                                   ((4, 4, 4), 8, 0.15)])
def test_tube_masks_span_all_time_and_keep_invariants(grid, n_blocks, scale):
    masker = MultiBlock3DMasker(grid=grid, n_blocks=n_blocks, spatial_scale=scale)
    T, H, W = grid
    N = T * H * W
    for seed in range(10):
        ctx, tgt = masker(16, torch.Generator().manual_seed(seed))
        assert ctx.shape[0] == 16 and tgt.shape[:2] == (16, 1) and ctx.shape[1] >= 1 and tgt.shape[2] >= 1
        assert ctx.min() >= 0 and ctx.max() < N and tgt.min() >= 0 and tgt.max() < N
        assert torch.all(ctx[:, 1:] > ctx[:, :-1]) and torch.all(tgt[:, 0, 1:] > tgt[:, 0, :-1])
        for b in range(16):
            c, t = set(ctx[b].tolist()), set(tgt[b, 0].tolist())
            assert not c & t
            # context tokens come in whole tubes: a spatial position is either context in every
            # time slot or in none (blocks span all time), so the context is a union of full tubes
            cmask = torch.zeros(N, dtype=torch.bool)
            cmask[list(c)] = True
            full = ~torch.zeros(N, dtype=torch.bool)
            full[list(set(range(N)) - c)] = True  # not in context
            per_pos = _blocks_of(full, grid)  # (T, H, W): masked or dropped
            # a target token's spatial position is masked in every time slot
            tmask = torch.zeros(N, dtype=torch.bool)
            tmask[list(t)] = True
            t_pos = _blocks_of(tmask, grid).any(0)
            assert per_pos[:, t_pos].all()


def test_per_frame_masks_differ_between_time_slots():
    grid = (4, 8, 8)
    tube = MultiBlock3DMasker(grid=grid, n_blocks=2, spatial_scale=0.15, min_keep=4)
    frame = MultiBlock3DMasker(grid=grid, n_blocks=2, spatial_scale=0.15, per_frame=True, min_keep=4)
    g = torch.Generator().manual_seed(0)

    def varies_in_time(masker):
        # one clip per call: no count equalisation, the context is exactly the complement of the blocks
        out = []
        for _ in range(32):
            ctx, _ = masker(1, g)
            m = torch.zeros(256, dtype=torch.bool)
            m[ctx[0]] = True
            m = m.view(4, 64)
            out.append(bool((m != m[:1]).any()))
        return sum(out) / len(out)

    assert varies_in_time(tube) == 0.0
    assert varies_in_time(frame) > 0.9
    # similar masking ratios, so the comparison is about shape, not amount
    _, t1 = tube(32, g)
    _, t2 = frame(32, g)
    assert 0.5 < t1.shape[-1] / t2.shape[-1] < 2.0


def test_tube_masks_are_deterministic_under_a_seed():
    masks = TubeMaskSet(grid=(4, 8, 8))
    a, b, c = (masks(8, torch.Generator().manual_seed(s)) for s in (3, 3, 4))
    assert all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))
    assert not all(torch.equal(x, y) for x, y in zip(a[0] + a[1], c[0] + c[1]))
    assert len(masks) == 2 and len(a[0]) == 2
    # on average over clips, long-range (2 x 0.7) masks more than short-range (8 x 0.15)
    g = torch.Generator().manual_seed(0)
    ratios = torch.tensor([[t.shape[-1] / 256 for t in masks(1, g)[1]] for _ in range(200)]).mean(0)
    assert 0.55 < ratios[0] < 0.85 and ratios[1] > ratios[0]


def test_masker_argument_errors():
    with pytest.raises(ValueError, match="time, height, width"):
        MultiBlock3DMasker(grid=(8, 8))
    with pytest.raises(ValueError, match="one spatial_scale per generator"):
        TubeMaskSet(grid=(4, 8, 8), n_blocks=(8, 2), spatial_scale=(0.15,))
    with pytest.raises(ValueError, match="temporal_scale"):
        MultiBlock3DMasker(grid=(4, 8, 8), temporal_scale=1.5)


def test_each_mask_type_has_its_own_mask_token_and_cond_reaches_predictions():
    pred = MultiMaskPredictor(in_dim=16, dim=16, depth=1, heads=2, pos_embed=sincos_3d(16, (2, 2, 2)), n_masks=2,
                              cond_dim=3)
    assert pred.mask_token.shape == (2, 1, 16)
    with torch.no_grad():
        pred.mask_token.normal_()
    z, ctx, tgt = torch.randn(2, 3, 16), torch.tensor([[0, 1, 2]] * 2), torch.tensor([[[4, 5]]] * 2)
    cond = torch.randn(2, 3)
    p0 = pred(z, ctx, tgt, mask_index=0, cond=cond)
    p1 = pred(z, ctx, tgt, mask_index=1, cond=cond)
    assert p0.shape == (2, 1, 2, 16) and not torch.allclose(p0, p1)
    assert not torch.allclose(p0, pred(z, ctx, tgt, mask_index=0, cond=cond + 1))
    p0.sum().backward()
    assert pred.mask_token.grad[0].abs().sum() > 0 and pred.mask_token.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match="conditioning"):
        pred(z, ctx, tgt)


def test_video_pools_shapes_and_time_order():
    tok = TubeletEmbed(input_shape=(1, 8, 16, 16), patch_size=4, dim=32)
    bb = VideoBackbone(tok, vit_encoder("micro", dim=32, depth=1, heads=2)).eval()
    x = torch.randn(3, 1, 8, 16, 16)
    assert bb.embed(x).shape == (3, 32)
    assert bb.embed(x, pool="time").shape == (3, 32 * 5)
    assert bb.embed(x, pool="grid:2").shape == (3, 32 * 5)
    assert bb.embed(x, pool="time+grid:2").shape == (3, 32 * 9)
    with torch.no_grad():
        h = bb(x)  # (3, 64, 32): the time part equals per-slot means of the tokens
        np.testing.assert_allclose(bb.embed(x, pool="time")[:, 32:64], h[:, :16].mean(1), atol=1e-5)
        np.testing.assert_allclose(bb.embed(x, pool="grid:2")[:, 32:64],
                                   h.view(3, 4, 4, 4, 32)[:, :, :2, :2].mean((1, 2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="unknown pool"):
        bb.embed(x, pool="grid:x")
