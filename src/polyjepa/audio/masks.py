"""A-JEPA masking: time-frequency-aware targets, and a curriculum from I-JEPA blocks to them."""
from __future__ import annotations

import math

import torch

from ..masks.multiblock import MultiBlockMasker


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def equal_count_context(context: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(B, N) bool -> (B, Nc) sorted indices, a random subset of each row of the smallest row's size."""
    n_keep = int(context.sum(1).min())
    scores = torch.rand(context.shape, generator=g).masked_fill_(~context, -1.0)
    return scores.topk(n_keep, dim=1).indices.sort(dim=1).values


class TimeFrequencyMasker:
    """Targets shaped by the spectrogram's axes: time segments across all frequencies, or frequency
    bands across all time (A-JEPA, Fei et al. 2023).

    On a (Fg, Tg) token grid (rows = frequency, columns = time) each batch draws one kind: with
    probability ``p_segment`` every target is a *segment* (``w`` consecutive time columns, all rows),
    else a *band* (``h`` consecutive frequency rows, all columns). Widths are drawn once per batch
    (``segment_scale`` of Tg, ``band_scale`` of Fg, clipped to [1, side-1]), positions per sample and
    target. The context is every token in no target, cut to equal counts across the batch.

    Returns (from ``__call__(batch_size, generator)``): context_idx (B, Nc) sorted, target_idx (B, M, Nt) sorted.
    """

    def __init__(self, *, grid: tuple[int, int], n_targets: int = 2, segment_scale: tuple[float, float] = (0.1, 0.2),
                 band_scale: tuple[float, float] = (0.15, 0.3), p_segment: float = 0.5, min_keep: int = 4,
                 max_tries: int = 50):
        if n_targets < 1:
            raise ValueError(f"n_targets must be >= 1, got {n_targets}")
        for name, (lo, hi) in {"segment_scale": segment_scale, "band_scale": band_scale}.items():
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must be a range 0 < lo <= hi <= 1, got ({lo}, {hi})")
        if not 0 <= p_segment <= 1:
            raise ValueError(f"p_segment must be in [0, 1], got {p_segment}")
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_tokens = self.grid[0] * self.grid[1]
        if not 1 <= min_keep < self.num_tokens:
            raise ValueError(f"min_keep must be in [1, {self.num_tokens}), got {min_keep}")
        self.n_targets, self.min_keep, self.max_tries = n_targets, min_keep, max_tries
        self.segment_scale, self.band_scale, self.p_segment = tuple(segment_scale), tuple(band_scale), p_segment

    def _stripes(self, n: int, width: int, axis: int, g: torch.Generator) -> torch.Tensor:
        """n masks (n, Fg*Tg): ``width`` consecutive rows (axis 0) or columns (axis 1) at random positions."""
        Fg, Tg = self.grid
        side = self.grid[axis]
        start = torch.randint(0, side - width + 1, (n, 1), generator=g)
        hit = (torch.arange(side)[None] >= start) & (torch.arange(side)[None] < start + width)  # (n, side)
        full = hit[:, :, None].expand(n, Fg, Tg) if axis == 0 else hit[:, None, :].expand(n, Fg, Tg)
        return full.reshape(n, Fg * Tg)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None):
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        B, M, N = batch_size, self.n_targets, self.num_tokens
        Fg, Tg = self.grid
        segment = torch.rand((), generator=g).item() < self.p_segment
        axis, side, scale = (1, Tg, self.segment_scale) if segment else (0, Fg, self.band_scale)
        width = max(1, min(int(round(_uniform(*scale, g) * side)), max(side - 1, 1)))
        targets = self._stripes(B * M, width, axis, g).view(B, M, N)
        for _ in range(self.max_tries):
            bad = (~targets.any(1)).sum(1) < self.min_keep
            if not bad.any():
                break
            targets[bad] = self._stripes(int(bad.sum()) * M, width, axis, g).view(-1, M, N)
        else:
            raise ValueError(f"could not keep {self.min_keep} context tokens on a {self.grid} grid with {M} "
                             f"{'segments' if segment else 'bands'} of width {width}: lower n_targets or the scale")
        context_idx = equal_count_context(~targets.any(1), g)
        target_idx = targets.view(B * M, N).nonzero()[:, 1].view(B, M, -1)
        return context_idx, target_idx

    def __repr__(self) -> str:
        return (f"TimeFrequencyMasker(grid={self.grid}, n_targets={self.n_targets}, segment_scale={self.segment_scale}, "
                f"band_scale={self.band_scale}, p_segment={self.p_segment})")


def ramp(progress: float, *, start: float, end: float, begin: float, finish: float, shape: str) -> float:
    """Value of a schedule going from ``start`` (progress <= begin) to ``end`` (progress >= finish)."""
    if finish <= begin:
        t = 1.0 if progress >= begin else 0.0
    else:
        t = min(max((progress - begin) / (finish - begin), 0.0), 1.0)
    if shape == "cosine":
        t = 0.5 - 0.5 * math.cos(math.pi * t)
    elif shape != "linear":
        raise ValueError(f"unknown schedule shape {shape!r}: use linear or cosine")
    return start + (end - start) * t


class CurriculumMasker:
    """A-JEPA's curriculum: I-JEPA multi-block masks early, time-frequency masks later.

    Each batch uses the time-frequency masker with probability ``p_tf(progress)``, which moves from
    ``p_start`` to ``p_end`` between progress ``ramp[0]`` and ``ramp[1]`` (``shape`` linear or cosine),
    else the multi-block masker (whole batches, so that index counts stay equal). ``p_start = p_end``
    gives a fixed mix (0: multi-block only, 1: time-frequency only). The ramp's exact shape in the
    paper is not given; linear from 0 to 1 over training is our default.

    Args:
        grid: (Fg, Tg) token grid; block: MultiBlockMasker arguments; tf: TimeFrequencyMasker arguments.
    """

    uses_progress = True

    def __init__(self, *, grid: tuple[int, int], p_start: float = 0.0, p_end: float = 1.0,
                 ramp: tuple[float, float] = (0.0, 1.0), shape: str = "linear", block: dict | None = None,
                 tf: dict | None = None):
        for name, p in {"p_start": p_start, "p_end": p_end}.items():
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if shape not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule shape {shape!r}: use linear or cosine")
        self.grid = (int(grid[0]), int(grid[1]))
        self.p_start, self.p_end, self.ramp, self.shape = p_start, p_end, (float(ramp[0]), float(ramp[1])), shape
        self.block = MultiBlockMasker(grid=self.grid, **dict(block or {}))
        self.tf = TimeFrequencyMasker(grid=self.grid, **dict(tf or {}))

    def tf_probability(self, progress: float) -> float:
        """p_tf at training progress in [0, 1]."""
        return ramp(progress, start=self.p_start, end=self.p_end, begin=self.ramp[0], finish=self.ramp[1],
                    shape=self.shape)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, *, progress: float = 0.0):
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        use_tf = torch.rand((), generator=g).item() < self.tf_probability(progress)
        return (self.tf if use_tf else self.block)(batch_size, g)

    def __repr__(self) -> str:
        return (f"CurriculumMasker(p {self.p_start}->{self.p_end} over {self.ramp}, {self.shape}; {self.block!r}; "
                f"{self.tf!r})")
