import pytest
import torch

from polyjepa.masks import MultiBlockMasker, block_size


@pytest.mark.parametrize("grid", [(8, 8), (7, 7), (14, 10), (4, 6)])
def test_multiblock_invariants(grid):
    masker = MultiBlockMasker(grid=grid, min_keep=2)
    N = grid[0] * grid[1]
    for seed in range(20):
        ctx, tgt = masker(16, torch.Generator().manual_seed(seed))
        B, M, Nt = tgt.shape
        assert ctx.shape[0] == B == 16 and M == 4
        assert ctx.shape[1] >= 2 and Nt >= 1
        assert ctx.min() >= 0 and ctx.max() < N and tgt.min() >= 0 and tgt.max() < N
        # context and targets are disjoint in every sample
        for b in range(B):
            assert not set(ctx[b].tolist()) & set(tgt[b].flatten().tolist())
            assert len(set(ctx[b].tolist())) == ctx.shape[1]  # no repeated context token
        # each target block is a contiguous h x w rectangle of the grid
        rows, cols = tgt // grid[1], tgt % grid[1]
        h = rows.amax(-1) - rows.amin(-1) + 1
        w = cols.amax(-1) - cols.amin(-1) + 1
        assert torch.equal(h * w, torch.full_like(h, Nt))
        # indices are sorted (gathers stay in raster order)
        assert torch.all(ctx[:, 1:] > ctx[:, :-1])


def test_block_sizes_follow_scale_and_aspect():
    grid = (32, 32)
    for scale in (0.15, 0.2):
        for aspect in (0.75, 1.0, 1.5):
            h, w = block_size(scale, aspect, grid)
            assert abs(h * w / 1024 - scale) < 0.02
            assert abs(h / w - aspect) < 0.15
    masker = MultiBlockMasker(grid=grid)
    for seed in range(30):
        _, tgt = masker(2, torch.Generator().manual_seed(seed))
        assert 0.13 <= tgt.shape[-1] / 1024 <= 0.22


def test_context_scale_on_a_large_grid():
    masker = MultiBlockMasker(grid=(16, 16), n_targets=1, target_scale=(0.05, 0.05))
    ctx, tgt = masker(8, torch.Generator().manual_seed(0))
    # context block covers >= 0.85 of the grid (clipped to 15x15 like the reference), less one target
    assert ctx.shape[1] >= int(0.85 * 256) - tgt.shape[-1] - 30


def test_determinism_under_a_seed():
    masker = MultiBlockMasker(grid=(8, 8))
    a = masker(32, torch.Generator().manual_seed(5))
    b = masker(32, torch.Generator().manual_seed(5))
    c = masker(32, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))


def test_context_subset_is_uniform_not_top_rows():
    """Cutting contexts to equal length keeps a random subset, not the lowest indices."""
    masker = MultiBlockMasker(grid=(8, 8), n_targets=4)
    counts = torch.zeros(64)
    for seed in range(200):
        ctx, _ = masker(8, torch.Generator().manual_seed(seed))
        counts += torch.bincount(ctx.flatten(), minlength=64)
    top, bottom = counts[:16].sum(), counts[-16:].sum()
    assert 0.6 < float(top / bottom) < 1.6


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_keep"):
        MultiBlockMasker(grid=(4, 4), min_keep=16)
    with pytest.raises(ValueError, match="target_scale"):
        MultiBlockMasker(grid=(8, 8), target_scale=(0.3, 0.1))
    impossible = MultiBlockMasker(grid=(4, 4), n_targets=4, target_scale=(0.5, 0.5), min_keep=12, max_tries=3)
    with pytest.raises(ValueError, match="could not keep"):
        impossible(4, torch.Generator().manual_seed(0))
