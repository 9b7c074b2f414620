"""Two-clip mixtures of normalised log-mel spectrograms, for conditioned prediction (Stem-JEPA style)."""
from __future__ import annotations

import torch


def shift_frames(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Delay each sample of (B, C, M, T) by ``shift`` (B,) frames; vacated frames become padding (0)."""
    T = x.shape[-1]
    src = torch.arange(T, device=x.device)[None, :] - shift.to(x.device)[:, None]   # (B, T)
    ok = (src >= 0).to(x.dtype)
    idx = src.clamp_min(0)[:, None, None, :].expand_as(x)
    return torch.gather(x, -1, idx) * ok[:, None, None, :]


def mix_log_mel(a: torch.Tensor, b: torch.Tensor, *, mean: float, std: float) -> torch.Tensor:
    """The normalised log-mel of the sum of two sounds, from their normalised log-mels (B, C, M, T).

    Mel energies of independent sources add (approximately: cross terms average out), so the mix
    is log(exp(la) + exp(lb)) on the unnormalised scale. Padding frames (all 0, ``load_audio``'s
    convention) count as silence; frames silent in both stay padding.
    """
    pad_a = (a == 0).all(dim=-2, keepdim=True)
    pad_b = (b == 0).all(dim=-2, keepdim=True)
    la = (a * std + mean).masked_fill(pad_a, float("-inf"))
    lb = (b * std + mean).masked_fill(pad_b, float("-inf"))
    mixed = (torch.logaddexp(la, lb) - mean) / std
    return mixed.masked_fill(pad_a & pad_b, 0.0)


class TwoClipMixer:
    """Batches of two-clip mixtures with a condition saying which clip to predict.

    Each clip is mixed with another clip of the batch, delayed by ``offset`` frames (drawn per
    sample); the condition is the position of the clip to predict (0: the one starting first,
    1: the delayed one), drawn per sample. Used as a method's ``make_batch``.

    Returns a dict: x (B, C, M, T) the mixture (what the context encoder sees), target_x (B, C, M, T)
    the clip to predict as it sits in the mix, cond (B,) int64.
    """

    def __init__(self, *, mean: float, std: float, offset: tuple[int, int] = (16, 32)):
        if not 0 <= offset[0] <= offset[1]:
            raise ValueError(f"offset must be a range 0 <= lo <= hi frames, got {offset}")
        self.mean, self.std, self.offset = float(mean), float(std), (int(offset[0]), int(offset[1]))

    def __call__(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict[str, torch.Tensor]:
        B = x.shape[0]
        if B < 2:
            raise ValueError("mixtures need batches of at least 2 clips")
        roll = int(torch.randint(1, B, (), generator=generator))          # partner: another clip of the batch
        shift = torch.randint(self.offset[0], self.offset[1] + 1, (B,), generator=generator)
        cond = torch.randint(0, 2, (B,), generator=generator)
        first, second = x, shift_frames(x.roll(roll, dims=0), shift)
        mix = mix_log_mel(first, second, mean=self.mean, std=self.std)
        target = torch.where(cond[:, None, None, None] == 0, first, second)
        return {"x": mix, "target_x": target, "cond": cond}
