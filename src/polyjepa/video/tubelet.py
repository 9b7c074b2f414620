"""Tubelet embedding: cut a clip into time x height x width patches, one token each."""
from __future__ import annotations

import torch
from torch import nn

from .posembed import sincos_3d


class TubeletEmbed(nn.Module):
    """Non-overlapping (tubelet x patch x patch) cells of a clip, each projected to a token, plus 3-D positions.

    Args:
        input_shape: per-sample clip shape (C, T, H, W) (polyjepa's internal clip layout).
        patch_size: side of a square spatial patch; H and W must be multiples of it.
        tubelet_size: frames per token; T must be a multiple of it (V-JEPA: 2).
        dim: token width D.
    Shapes:
        forward: (B, C, T, H, W) -> (B, N, D), N = (T/t)(H/p)(W/p), time-major; positions already added.
    (Bardes et al., V-JEPA, 2024: 2 x 16 x 16 tubelets with 3-D sin-cos positions.)
    """

    def __init__(self, *, input_shape: tuple[int, ...], patch_size: int, tubelet_size: int = 2, dim: int):
        super().__init__()
        if len(input_shape) != 4:
            raise ValueError(f"tubelet tokens need clips of per-sample shape (channels, frames, height, width), got "
                             f"{tuple(input_shape)}: load clips with data.loader=clips or moving_digits")
        c, t, h, w = (int(s) for s in input_shape)
        if t < tubelet_size or t % tubelet_size:
            raise ValueError(f"clips have {t} frames, which is not a positive multiple of tubelet_size {tubelet_size}: "
                             f"use clips of {max(tubelet_size, 2 * tubelet_size)} or more frames in multiples of "
                             f"{tubelet_size}, or lower tokenizer.tubelet_size")
        if h % patch_size or w % patch_size:
            raise ValueError(f"frame size {h}x{w} is not a multiple of patch size {patch_size}: crop or resize the "
                             f"frames to a multiple of {patch_size} (for videos: data.size) or set "
                             f"tokenizer.patch_size to a divisor of both")
        self.input_shape = (c, t, h, w)
        self.patch_size, self.tubelet_size, self.dim = patch_size, tubelet_size, dim
        self.grid = (t // tubelet_size, h // patch_size, w // patch_size)
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.proj = nn.Conv3d(c, dim, kernel_size=(tubelet_size, patch_size, patch_size),
                              stride=(tubelet_size, patch_size, patch_size))
        self.register_buffer("pos_embed", sincos_3d(dim, self.grid)[None], persistent=False)
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))  # like a linear layer, as MAE / V-JEPA
        nn.init.zeros_(self.proj.bias)

    def position_embedding(self, dim: int) -> torch.Tensor:
        """(N, dim) fixed positions of this grid at another width (for a predictor)."""
        return sincos_3d(dim, self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected clips of shape (B, {', '.join(map(str, self.input_shape))}) = "
                             f"(B, C, T, H, W), got {tuple(x.shape)}")
        x = self.proj(x)  # (B, D, T', H', W')
        return self.pos_embed + x.flatten(2).transpose(1, 2)  # (B, N, D), token-major (positions first)
