"""CNN-JEPA's predictor: mask tokens filled into the feature map, then depthwise-separable convolutions."""
from __future__ import annotations

import torch
from torch import nn

from ..models.transformer import gather_tokens, require_positive


class DepthwiseConvPredictor(nn.Module):
    """Predict the features of masked cells from a dense map of context features and mask tokens.

    The context features (projected to width Dp) are scattered into their cells of the (H, W) grid; every
    other cell holds one learnable mask token. ``depth`` layers of [depthwise kxk convolution -> pointwise
    1x1 convolution -> BatchNorm -> ReLU] follow (CNN-JEPA's ``dw_sep_conv`` predictor, Kalapos &
    Gyires-Tóth, 2024), then a 1x1 convolution back to D. All target blocks come out of one pass.

    Args:
        in_dim: encoder width D; dim: predictor width Dp; depth: layers; kernel: odd depthwise kernel size.
        grid: (H, W) of the encoder's cell grid.
        pos_embed: optional (H*W, Dp) fixed positions added to every cell (the card's predictor has none:
            the pattern of mask tokens around the context tells a convolution where it is).
    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc), target_idx (B, M, Nt)) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, grid: tuple[int, int], dim: int = 128, depth: int = 3, kernel: int = 3,
                 pos_embed: torch.Tensor | None = None):
        super().__init__()
        require_positive(dim=dim, depth=depth, kernel=kernel)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (same-size output), got {kernel}")
        self.grid, self.dim, self.depth, self.kernel = (int(grid[0]), int(grid[1])), dim, depth, kernel
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.layers = nn.Sequential(*[nn.Sequential(
            nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=False),
            nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU()) for _ in range(depth)])
        self.proj = nn.Conv2d(dim, in_dim, 1)
        if pos_embed is not None:
            self.register_buffer("pos_embed", pos_embed.clone(), persistent=False)
        else:
            self.pos_embed = None

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
        B, Nc, _ = z.shape
        N = self.grid[0] * self.grid[1]
        cells = self.mask_token.to(z.dtype).expand(B, N, self.dim).clone()       # (B, N, Dp)
        cells.scatter_(1, context_idx[..., None].expand(-1, -1, self.dim), self.embed(z))
        if self.pos_embed is not None:
            cells = cells + self.pos_embed.to(z.dtype)
        x = cells.transpose(1, 2).reshape(B, self.dim, *self.grid)              # (B, Dp, H, W)
        h = self.proj(self.layers(x)).flatten(2).transpose(1, 2)                # (B, N, D)
        return gather_tokens(h, target_idx)                                     # (B, M, Nt, D)
