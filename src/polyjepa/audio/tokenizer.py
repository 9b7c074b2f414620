"""Spectrogram patches as tokens: rectangular (frequency x time) patches with fixed 2-D positions."""
from __future__ import annotations

import torch
from torch import nn

from ..tokenizers.posembed import sincos_2d


class SpectrogramPatchEmbed(nn.Module):
    """Cut a (C, n_mels, frames) spectrogram into (patch_freq x patch_time) patches -> tokens + positions.

    Args:
        image_size: (n_mels, frames), multiples of the patch sides.
        in_channels: C.
        patch_size: (patch_freq, patch_time), or one int for square patches.
        dim: token width D.
    Shapes:
        forward: (B, C, n_mels, frames) -> (B, N, D), N = Fg * Tg, row-major over ``grid`` = (Fg, Tg)
        (frequency rows, time columns), positions added.
    """

    def __init__(self, *, image_size: tuple[int, int], in_channels: int, dim: int,
                 patch_size: tuple[int, int] | int = (8, 4)):
        super().__init__()
        pf, pt = (patch_size, patch_size) if isinstance(patch_size, int) else (int(patch_size[0]), int(patch_size[1]))
        h, w = int(image_size[0]), int(image_size[1])
        if h % pf or w % pt:
            raise ValueError(f"spectrogram {h} mels x {w} frames is not a multiple of patch size ({pf}, {pt}): "
                             f"change data.n_mels/data.frames or tokenizer.patch_size")
        self.patch_size, self.image_size, self.dim = (pf, pt), (h, w), dim
        self.grid = (h // pf, w // pt)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=(pf, pt), stride=(pf, pt))
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))
        nn.init.zeros_(self.proj.bias)
        self.register_buffer("pos_embed", sincos_2d(dim, self.grid)[None], persistent=False)

    def position_embedding(self, dim: int) -> torch.Tensor:
        """(N, dim) fixed positions of the token grid at width ``dim`` (for a predictor)."""
        return sincos_2d(dim, self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_embed + self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D), token-major (positions first)
