"""Augmentations of normalised log-mel batches (B, C, M, T), seeded, applied in the data-loading step."""
from __future__ import annotations

import torch


def padding_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, M, T) -> (B, T) bool: True where a frame is padding (every value 0, ``load_audio``'s convention)."""
    return (x == 0).flatten(1, 2).all(dim=1) if x.dim() == 4 else (x == 0).all(dim=-2)


def trailing_padding(x: torch.Tensor) -> torch.Tensor:
    """(B, C, M, T) -> (B,) int64: the number of padding frames at the end of each sample."""
    pad = padding_frames(x)                                   # (B, T)
    # Length of the run of True at the end: cumulative product from the right.
    return pad.flip(-1).long().cumprod(-1).sum(-1)


def shift_time(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move each sample of (B, C, M, T) by ``shift`` (B,) frames along time (positive = later).

    Frames moved past either end are lost; vacated frames become padding (0).
    """
    T = x.shape[-1]
    src = torch.arange(T, device=x.device)[None, :] - shift.to(x.device)[:, None]   # (B, T)
    ok = ((src >= 0) & (src < T)).to(x.dtype)
    idx = src.clamp(0, T - 1)[:, None, None, :].expand_as(x)
    return torch.gather(x, -1, idx) * ok[:, None, None, :]


class TimeShift:
    """Place each clip at a random time offset in its window, a different one each step.

    The loader cuts or pads every clip once (padding at the end); this moves it in time per batch, so
    that the encoder does not see every clip start at frame 0. With ``keep_clip`` (default) a clip
    moves later by a shift drawn uniformly from 0 to ``min(max_shift, its trailing padding)``: no real
    frame leaves the window. Without it the shift is uniform in [-max_shift, max_shift] and frames
    pushed out are lost. With probability ``1 - p`` a sample is left where it is.

    Args:
        max_shift: the largest shift in frames (>= 0).
        keep_clip: never cut real frames (shift only into the trailing padding).
        p: probability of shifting a sample.
    Shapes:
        __call__(x (B, C, M, T), generator) -> (B, C, M, T).
    """

    def __init__(self, *, max_shift: int = 16, keep_clip: bool = True, p: float = 1.0):
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0 frames, got {max_shift}")
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.max_shift, self.keep_clip, self.p = int(max_shift), bool(keep_clip), float(p)

    def shifts(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B,) int64 shifts for the batch x (B, C, M, T), drawn from ``generator``."""
        B = x.shape[0]
        u = torch.rand(B, generator=generator)
        apply = torch.rand(B, generator=generator) < self.p
        if self.keep_clip:
            hi = trailing_padding(x).cpu().clamp(max=self.max_shift)               # (B,)
            s = (u * (hi + 1)).floor().long().clamp(max=hi)                        # uniform in [0, hi]
        else:
            s = (u * (2 * self.max_shift + 1)).floor().long().clamp(max=2 * self.max_shift) - self.max_shift
        return s * apply

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.max_shift == 0 or self.p == 0:
            return x
        return shift_time(x, self.shifts(x, generator))
