"""Finite scalar quantisation (FSQ): each latent channel bounded and rounded to a few levels, no codebook."""
from __future__ import annotations

import math

import torch
from torch import nn


class FSQ(nn.Module):
    """Quantise (..., d) latents channel by channel: channel i takes one of ``levels[i]`` values.

    Channel i is bounded to (-(L-1)/2, (L-1)/2) by a shifted tanh (shifted by half a step when L is
    even, so that the L integers ... or half-integers stay symmetric), rounded to the nearest grid
    point with a straight-through gradient (the rounding counts as the identity backwards), then
    divided by L // 2 so that values lie in [-1, 1]. The implicit codebook is the product grid:
    prod(levels) codes, log2 of it bits per latent vector. (Mentzer et al., "Finite Scalar
    Quantization: VQ-VAE Made Simple", ICLR 2024.)

    Args:
        levels: L_i >= 2 per channel, e.g. (8, 5, 5, 5).
    Shapes:
        forward(z (..., d)) -> (..., d) quantised; codes_to_indices (..., d) -> (...) int64 in [0, prod L);
        indices_to_codes (...) -> (..., d).
    """

    def __init__(self, levels: tuple[int, ...] | list[int]):
        super().__init__()
        levels = tuple(int(v) for v in levels)
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be integers >= 2, one per channel, got {list(levels)}")
        self.levels = levels
        self.dim = len(levels)
        self.n_codes = math.prod(levels)
        self.bits = math.log2(self.n_codes)
        L = torch.tensor(levels, dtype=torch.float64)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), torch.tensor(levels[:-1])]), 0)
        self.register_buffer("_levels", L.float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (..., d) in (-(L-1)/2, (L-1)/2) (shifted by 1/2 for even L: the grid is integers + offset)."""
        L = self._levels.to(z.dtype)
        half = (L - 1) * (1 - 1e-3) / 2
        offset = torch.where(L % 2 == 0, torch.full_like(L, 0.5), torch.zeros_like(L))
        shift = torch.tan(offset / half)              # as the reference: moves z = 0 off a rounding boundary
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b = self.bound(z)
        q = b + (torch.round(b) - b).detach()           # straight-through rounding
        return q / (self._levels.to(z.dtype) // 2)

    def codes_to_indices(self, q: torch.Tensor) -> torch.Tensor:
        """Quantised (..., d) values -> (...) int64 mixed-radix index of the grid point."""
        L = self._levels.to(q.dtype)
        digits = torch.round(q * (L // 2) + (L // 2)).long()   # 0 .. L-1 per channel
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, idx: torch.Tensor) -> torch.Tensor:
        """(...) int64 index -> (..., d) the grid point's quantised values (the inverse of ``codes_to_indices``)."""
        L = self._levels.long()
        digits = (idx[..., None] // self._basis) % L
        half = (L // 2).to(torch.float32)
        return (digits.float() - half) / half

    def extra_repr(self) -> str:
        return f"levels={list(self.levels)}, codes={self.n_codes}, bits={self.bits:.2f}"
