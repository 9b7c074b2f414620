"""Span and block maskers over the time axis of a 1-D (or channel x time) token grid."""
from __future__ import annotations

import math

import torch


def real_time_tokens(x: torch.Tensor, time_steps: int) -> int:
    """The number of leading time tokens that hold data in every series of the batch (B, C, L)."""
    B, C, L = x.shape
    p = math.ceil(L / time_steps)
    finite = torch.isfinite(x).any(1)                                       # (B, L)
    last = torch.where(finite, torch.arange(L, device=x.device), -1).amax(1)  # (B,) last real step
    return int(min(time_steps, (int(last.min()) + 1 + p - 1) // p))


def split_sizes(total: int, parts: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, parts) non-negative integers summing to ``total`` per row: the gaps between
    ``parts - 1`` cut points drawn independently and uniformly from {0, ..., total}, sorted."""
    cuts = torch.randint(0, total + 1, (batch, parts - 1), generator=generator).sort(1).values
    edges = torch.cat([torch.zeros(batch, 1, dtype=torch.long), cuts, torch.full((batch, 1), total)], dim=1)
    return edges.diff(dim=1)


class SpanMasker:
    """Choose target time steps (tokens) to predict and the context that sees the rest.

    Args:
        grid: (N,) or (C, N) token grid (time last); with channels, a masked time step is masked in
            every channel (tube masking, as ECG-JEPA and EEG-VJEPA do across leads/electrodes).
        target_ratio: (lo, hi): the fraction of time tokens to predict, drawn once per batch
            (TS-JEPA: 0.7; ECG-JEPA: 0.75-0.85).
        mode: 'random' (any tokens, TS-JEPA) or 'blocks' (contiguous blocks of at least
            ``min_block`` tokens at random places, ECG-JEPA).
        min_block: the shortest target block in 'blocks' mode (ECG-JEPA: 10 patches = 0.5 s).
        max_blocks: at most this many blocks in 'blocks' mode (the count is drawn per batch).
    Returns from ``__call__(batch_size, generator, x=)``:
        context_idx (B, Nc) and target_idx (B, 1, Nt), sorted, disjoint, with the same counts across
        the batch; only time tokens that hold data in every series of ``x`` are used.
    """

    uses_input = True

    def __init__(self, *, grid: tuple[int, ...], target_ratio: tuple[float, float] = (0.7, 0.7),
                 mode: str = "random", min_block: int = 1, max_blocks: int = 8):
        if mode not in ("random", "blocks"):
            raise ValueError(f"unknown mode {mode!r}: use 'random' or 'blocks'")
        lo, hi = float(target_ratio[0]), float(target_ratio[1])
        if not 0 < lo <= hi < 1:
            raise ValueError(f"target_ratio must satisfy 0 < lo <= hi < 1, got {target_ratio}")
        if min_block < 1 or max_blocks < 1:
            raise ValueError("min_block and max_blocks must be >= 1")
        self.grid, self.time_steps = tuple(grid), int(grid[-1])
        self.channels = int(grid[0]) if len(grid) == 2 else 1
        if self.time_steps < 2:
            raise ValueError(f"a series of {self.time_steps} token(s) cannot be split into context and "
                             f"target: use a smaller patch_size")
        self.target_ratio, self.mode, self.min_block, self.max_blocks = (lo, hi), mode, int(min_block), int(max_blocks)

    def __call__(self, batch_size: int, generator: torch.Generator, x: torch.Tensor | None = None):
        n = self.time_steps if x is None else real_time_tokens(x, self.time_steps)
        if n < 2:
            raise ValueError(f"the shortest series in the batch has {n} token(s): at least 2 are needed")
        lo, hi = self.target_ratio
        ratio = lo + (hi - lo) * float(torch.rand((), generator=generator))
        n_target = min(max(round(ratio * n), 1), n - 1)
        if self.mode == "random":
            order = torch.rand(batch_size, n, generator=generator).argsort(1)
            target = torch.zeros(batch_size, n, dtype=torch.bool).scatter_(1, order[:, :n_target], True)
        else:
            target = self._blocks(batch_size, n, n_target, generator)
        # Stable sort puts the chosen positions first, each group in time order.
        by_target = torch.sort(target.to(torch.int8), dim=1, descending=True, stable=True).indices
        target_t, context_t = by_target[:, :n_target].sort(1).values, by_target[:, n_target:].sort(1).values
        return self._tube(context_t), self._tube(target_t)[:, None]

    def _blocks(self, batch_size: int, n: int, n_target: int, g: torch.Generator) -> torch.Tensor:
        """(B, n) bool with exactly n_target True in m contiguous blocks of >= min_block (blocks may touch)."""
        k = min(self.min_block, n_target)
        most = max(1, min(self.max_blocks, n_target // k))
        m = int(torch.randint(1, most + 1, (), generator=g))
        lengths = k + split_sizes(n_target - m * k, m, batch_size, g)   # (B, m), each >= k
        gaps = split_sizes(n - n_target, m + 1, batch_size, g)          # (B, m+1), >= 0
        starts = (gaps[:, :m] + torch.cat([torch.zeros(batch_size, 1, dtype=torch.long),
                                           lengths[:, :-1]], 1)).cumsum(1)  # (B, m)
        t = torch.arange(n)
        inside = (t[None, None] >= starts[..., None]) & (t[None, None] < (starts + lengths)[..., None])
        return inside.any(1)

    def _tube(self, time_idx: torch.Tensor) -> torch.Tensor:
        """(B, K) time indices -> (B, C*K) token indices on a (C, N) grid (channel-major)."""
        if self.channels == 1:
            return time_idx
        offsets = torch.arange(self.channels)[None, :, None] * self.time_steps
        return (offsets + time_idx[:, None, :]).flatten(1)
