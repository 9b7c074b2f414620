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
        # (B, N, D), laid out token-major: the positions first, so the sum takes their layout (the transposed
        # projection is channel-major, and a residual stream in that layout costs a copy at every layer norm)
        return self.pos_embed + x.flatten(2).transpose(1, 2)


def padded_size(size: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """The smallest (H, W) >= size that is a multiple of the patch size."""
    return tuple(int(math.ceil(s / patch_size) * patch_size) for s in size)  # type: ignore[return-value]


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel: (B, C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvStem2D(PatchEmbed2D):
    """Patch tokens from a small convolutional stem instead of one linear patch projection.

    log2(patch_size) stride-2 3x3 convolutions (each with a per-pixel LayerNorm over channels and GELU),
    widths ``channels``, then a 1x1 convolution to ``dim``: the same (H/p) x (W/p) grid and fixed
    positions as :class:`PatchEmbed2D` ("early convolutions", Xiao et al., NeurIPS 2021). A token's receptive field reaches 3 pixels into
    the patches above and to the left of it (no norm over the image or the batch couples tokens
    otherwise), so for a context encoder the pixels of the patches it does not keep are zeroed first
    (``mask_input``): a context token sees nothing of a target patch.

    Args:
        image_size, patch_size, in_channels, dim: as :class:`PatchEmbed2D`; ``patch_size`` a power of 2.
        channels: widths of the stride-2 convolutions (one per halving); None: dim/2^k, ..., dim/4, dim/2
            (at least 8 each).
        mask_input: zero the pixels of the patches outside ``keep_idx`` before the stem.
    Shapes: forward(x (B, C, H, W), keep_idx (B, Nk) | None) -> (B, N, D) (all N tokens; the encoder
    then keeps ``keep_idx``).
    """

    def __init__(self, *, image_size: tuple[int, int], patch_size: int, in_channels: int, dim: int,
                 channels: list[int] | None = None, mask_input: bool = True):
        super().__init__(image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim)
        k = patch_size.bit_length() - 1
        if patch_size < 2 or 2 ** k != patch_size:
            raise ValueError(f"a convolutional stem halves the image log2(patch_size) times: patch_size must be a "
                             f"power of 2 (2, 4, 8, ...), got {patch_size}")
        channels = list(channels) if channels is not None else [max(dim >> (k - i), 8) for i in range(k)]
        if len(channels) != k or min(channels) < 1:
            raise ValueError(f"channels needs {k} positive widths for patch_size {patch_size}, got {channels}")
        layers, c_in = [], in_channels
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), ChannelNorm(c), nn.GELU()]
            c_in = c
        self.proj = nn.Sequential(*layers, nn.Conv2d(c_in, dim, 1))
        self.masks_input = bool(mask_input)  # Backbone hands keep_idx to the tokenizer when this is set

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None) -> torch.Tensor:
        if keep_idx is not None and self.masks_input:
            keep = torch.zeros(x.shape[0], self.num_tokens, dtype=x.dtype, device=x.device)
            keep.scatter_(1, keep_idx, 1.0)
            p = self.patch_size
            pixels = keep.view(-1, 1, *self.grid).repeat_interleave(p, 2).repeat_interleave(p, 3)
            x = x * pixels
        return super().forward(x)
