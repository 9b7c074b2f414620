"""2-D patch embedding for images and spectrograms."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..models.transformer import require_positive
from .posembed import sincos_2d


class PatchEmbed2D(nn.Module):
    """Cut an image into non-overlapping patches and project each to a token, plus fixed positions.

    Args:
        image_size: (H, W) of the input; H and W must be multiples of ``patch_size``.
        patch_size: side of a square patch.
        in_channels: C of the input.
        dim: token width D.
    Shapes:
        forward: (B, C, H, W) -> (B, N, D) with N = (H/p)(W/p), row-major; positions already added.
    """

    def __init__(self, *, image_size: tuple[int, int], patch_size: int, in_channels: int, dim: int):
        super().__init__()
        h, w = int(image_size[0]), int(image_size[1])
        require_positive(patch_size=patch_size, dim=dim)
        if h % patch_size or w % patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of patch size {patch_size}: set data.size to a "
                             f"multiple of {patch_size} or tokenizer.patch_size to a divisor of both")
        self.image_size = (h, w)
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.dim = dim
        self.grid = (h // patch_size, w // patch_size)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.register_buffer("pos_embed", sincos_2d(dim, self.grid)[None], persistent=False)
        # Initialise the projection like a linear layer (as MAE/I-JEPA do), not like a conv.
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))
        nn.init.zeros_(self.proj.bias)

    def position_embedding(self, dim: int) -> torch.Tensor:
        """(N, dim) fixed positions of this grid at another width (for a predictor)."""
        return sincos_2d(dim, self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, D, h, w)
        return x.flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, D)


def padded_size(size: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """The smallest (H, W) >= size that is a multiple of the patch size."""
    return tuple(int(math.ceil(s / patch_size) * patch_size) for s in size)  # type: ignore[return-value]
