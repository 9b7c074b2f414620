"""A-JEPA maskers: time-frequency stripes and the curriculum keep their invariants and schedule."""
import math

import pytest
import torch

from polyjepa.audio.masks import CurriculumMasker, TimeFrequencyMasker, ramp

GRID = (8, 16)


def stripe_kind(target_idx, grid):
    """'band' if every block is whole rows, 'segment' if whole columns, else None (per batch)."""
    Fg, Tg = grid
    kinds = set()
    for block in target_idx.reshape(-1, target_idx.shape[-1]):
        rows, cols = (block // Tg).unique(), (block % Tg).unique()
        if len(block) == len(rows) * Tg and (rows.diff() == 1).all():
            kinds.add("band")
        elif len(block) == len(cols) * Fg and (cols.diff() == 1).all():
            kinds.add("segment")
        else:
            kinds.add(None)
    assert len(kinds) == 1, kinds
    return kinds.pop()


def check_indices(context_idx, target_idx, n_tokens):
    B = context_idx.shape[0]
    assert target_idx.shape[0] == B and context_idx.dtype == target_idx.dtype == torch.int64
    assert (context_idx.diff(dim=1) > 0).all() and (target_idx.diff(dim=2) > 0).all()  # sorted, no repeats
    assert context_idx.min() >= 0 and context_idx.max() < n_tokens and target_idx.max() < n_tokens
    for b in range(B):
        assert not set(context_idx[b].tolist()) & set(target_idx[b].flatten().tolist())


def test_time_frequency_masker_invariants_and_determinism():
    m = TimeFrequencyMasker(grid=GRID, n_targets=2, segment_scale=(0.1, 0.2), band_scale=(0.15, 0.3))
    seen = set()
    for seed in range(40):
        c, t = m(16, torch.Generator().manual_seed(seed))
        check_indices(c, t, 128)
        assert t.shape[:2] == (16, 2) and c.shape[1] >= m.min_keep
        kind = stripe_kind(t, GRID)
        width = t.shape[2] // (GRID[1] if kind == "band" else GRID[0])
        lo, hi = (m.band_scale if kind == "band" else m.segment_scale)
        side = GRID[0] if kind == "band" else GRID[1]
        assert max(1, round(lo * side)) <= width <= round(hi * side)
        seen.add(kind)
        # The context is every token outside the targets, cut to the batch's smallest count.
        free = torch.ones(16, 128, dtype=torch.bool)
        free.scatter_(1, t.flatten(1), False)
        assert c.shape[1] == int(free.sum(1).min())
        c2, t2 = m(16, torch.Generator().manual_seed(seed))
        assert torch.equal(c, c2) and torch.equal(t, t2)
    assert seen == {"band", "segment"}
    only_bands = TimeFrequencyMasker(grid=GRID, p_segment=0.0)
    assert stripe_kind(only_bands(4, torch.Generator().manual_seed(0))[1], GRID) == "band"


def test_time_frequency_masker_rejects_bad_arguments():
    with pytest.raises(ValueError, match="band_scale"):
        TimeFrequencyMasker(grid=GRID, band_scale=(0.3, 0.1))
    with pytest.raises(ValueError, match="could not keep"):
        TimeFrequencyMasker(grid=(2, 16), n_targets=1, band_scale=(0.5, 0.5), p_segment=0.0, min_keep=20)(
            4, torch.Generator().manual_seed(0))


def test_ramp_closed_forms():
    kw = dict(start=0.0, end=1.0, begin=0.2, finish=0.6)
    assert [ramp(p, shape="linear", **kw) for p in (0.0, 0.2, 0.4, 0.6, 1.0)] == pytest.approx([0, 0, 0.5, 1, 1])
    assert ramp(0.3, shape="cosine", **kw) == pytest.approx(0.5 - 0.5 * math.cos(math.pi * 0.25))
    assert ramp(0.5, start=0.7, end=0.7, begin=0, finish=1, shape="linear") == pytest.approx(0.7)
    with pytest.raises(ValueError, match="shape"):
        ramp(0.5, shape="step", **kw)


def test_curriculum_moves_from_blocks_to_time_frequency():
    m = CurriculumMasker(grid=GRID, block={"context_aspect": (0.5, 0.5)})
    assert m.uses_progress

    def share_tf(progress, n=200):
        kinds = [stripe_kind(m(4, torch.Generator().manual_seed(s), progress=progress)[1], GRID) for s in range(n)]
        return sum(k is not None for k in kinds) / n

    assert share_tf(0.0) == 0.0            # all I-JEPA blocks at the start
    assert share_tf(1.0) == 1.0            # all time-frequency stripes at the end
    assert abs(share_tf(0.5) - 0.5) < 0.1  # the linear schedule halfway
    for progress in (0.0, 0.5, 1.0):
        for s in range(5):
            c, t = m(8, torch.Generator().manual_seed(s), progress=progress)
            check_indices(c, t, 128)
            c2, t2 = m(8, torch.Generator().manual_seed(s), progress=progress)
            assert torch.equal(c, c2) and torch.equal(t, t2)
    fixed = CurriculumMasker(grid=GRID, p_start=1.0, p_end=1.0)
    assert fixed.tf_probability(0.0) == fixed.tf_probability(0.7) == 1.0
    with pytest.raises(ValueError, match="p_end"):
        CurriculumMasker(grid=GRID, p_end=1.5)
