"""Fixed-length spectrograms: crop or pad the time axis and say which frames are real."""
from __future__ import annotations

import torch

CROPS = ("center", "start", "random", "stretch")


def crop_or_pad(spec: torch.Tensor, frames: int, *, crop: str = "center", pad_value: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut or pad the last (time) axis of ``spec`` (..., F) to ``frames``.

    Padding goes at the end. A longer clip is cut to its ``center`` frames, its ``start``, or a
    ``random`` window drawn from ``generator``. ``stretch`` instead resamples the time axis of every
    clip, shorter or longer, to exactly ``frames`` (linear interpolation between frame centres): no
    padding and nothing cut, at the price of a per-clip time scale (speaking-rate normalisation).
    Returns:
        (spec (..., frames), valid (frames,) bool: True where the frame comes from the clip).
    """
    F = spec.shape[-1]
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}: use {', '.join(CROPS)}")
    whole = torch.ones(frames, dtype=torch.bool, device=spec.device)   # every frame from the clip
    if crop == "stretch":
        if F != frames:
            out = torch.nn.functional.interpolate(spec.reshape(-1, 1, F), size=frames, mode="linear", align_corners=False)
            spec = out.reshape(*spec.shape[:-1], frames)
        return spec, whole
    if F >= frames:
        if crop == "center":
            start = (F - frames) // 2
        elif crop == "start":
            start = 0
        else:  # random
            start = int(torch.randint(0, F - frames + 1, (), generator=generator))
        return spec[..., start:start + frames], whole
    pad = spec.new_full((*spec.shape[:-1], frames - F), pad_value)
    valid = torch.arange(frames, device=spec.device) < F
    return torch.cat([spec, pad], dim=-1), valid
