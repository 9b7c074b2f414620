"""Towers: one encoder per side of a pair, each ``forward(x) -> (B, dim)`` with a ``dim`` attribute.

The image tower is the library's registered ViT backbone (patch tokenizer + transformer encoder);
the text tower is in :mod:`.text`, the graph tower in :mod:`.graph`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..models.encoder import Backbone, vit_encoder
from ..tokenizers.patch2d import PatchEmbed2D


class ImageTower(nn.Module):
    """The library's ViT backbone on (B, C, H, W) images, mean-pooled over patch tokens -> (B, dim).

    Args:
        input_shape: (C, H, W) of one image (injected); patch_size: side of a patch;
        size: named ViT size (micro, nano, tiny, ...); dim/depth/heads override it.
    """

    def __init__(self, *, input_shape: tuple[int, ...], patch_size: int = 4, size: str = "tiny",
                 dim: int | None = None, depth: int | None = None, heads: int | None = None):
        super().__init__()
        if len(input_shape) != 3:
            raise UserError(f"the image tower reads (C, H, W) images, got per-sample shape {tuple(input_shape)}: "
                            f"choose a tower for this side's data")
        encoder = vit_encoder(size, dim=dim, depth=depth, heads=heads)
        tokenizer = PatchEmbed2D(image_size=tuple(input_shape[1:]), patch_size=patch_size,
                                 in_channels=input_shape[0], dim=encoder.dim)
        self.backbone = Backbone(tokenizer, encoder)
        self.dim = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).mean(1)


class MLPTower(nn.Module):
    """(Linear -> GELU) x depth on flattened vectors -> (B, dim): a tower for raw feature vectors.

    Args: input_shape: per-sample shape (injected); dim: width; depth: layers.
    """

    def __init__(self, *, input_shape: tuple[int, ...], dim: int = 128, depth: int = 2):
        super().__init__()
        n_in = 1
        for s in input_shape:
            n_in *= int(s)
        layers, d = [], n_in
        for _ in range(depth):
            layers += [nn.Linear(d, dim), nn.GELU()]
            d = dim
        self.net = nn.Sequential(nn.Flatten(), *layers)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())


class Head(nn.Module):
    """Projection head into the shared space: a linear map, or Linear -> GELU -> Linear (``hidden`` > 0)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 0):
        super().__init__()
        self.net = nn.Linear(in_dim, out_dim) if hidden <= 0 else \
            nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VideoTower(nn.Module):
    """The library's video backbone (tubelet tokenizer + ViT encoder) on (B, C, T, H, W) clips, mean-pooled
    over the tokens -> (B, dim).

    Args:
        input_shape: (C, T, H, W) of one clip (injected); patch_size, tubelet_size: of a tubelet token;
        size: named ViT size; dim/depth/heads override it.
    """

    def __init__(self, *, input_shape: tuple[int, ...], patch_size: int = 8, tubelet_size: int = 2,
                 size: str = "tiny", dim: int | None = None, depth: int | None = None, heads: int | None = None):
        super().__init__()
        from ..video.backbone import VideoBackbone
        from ..video.tubelet import TubeletEmbed

        if len(input_shape) != 4:
            raise UserError(f"the video tower reads (C, T, H, W) clips, got per-sample shape {tuple(input_shape)}: "
                            f"choose a tower for this side's data")
        encoder = vit_encoder(size, dim=dim, depth=depth, heads=heads)
        try:
            tokenizer = TubeletEmbed(input_shape=tuple(input_shape), patch_size=patch_size,
                                     tubelet_size=tubelet_size, dim=encoder.dim)
        except ValueError as e:
            raise UserError(f"video tower: {e}") from None
        self.backbone = VideoBackbone(tokenizer, encoder)
        self.dim = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).mean(1)


class AudioTower(nn.Module):
    """The library's audio backbone (spectrogram patch tokenizer + ViT encoder) on (B, 1, n_mels, F) log-mel
    spectrograms, mean-pooled -> (B, dim). Frames past the last whole patch are left out.

    Args:
        input_shape: (1, n_mels, F) of one spectrogram (injected); patch_size: (mels, frames) of a patch
        (n_mels must be a multiple of the first); size: named ViT size; dim/depth/heads override it.
    """

    def __init__(self, *, input_shape: tuple[int, ...], patch_size: tuple[int, int] | list = (8, 4),
                 size: str = "tiny", dim: int | None = None, depth: int | None = None, heads: int | None = None):
        super().__init__()
        from ..audio.tokenizer import SpectrogramPatchEmbed

        if len(input_shape) != 3:
            raise UserError(f"the audio tower reads (1, n_mels, frames) spectrograms, got per-sample shape "
                            f"{tuple(input_shape)}: choose a tower for this side's data")
        pf, pt = (int(patch_size), int(patch_size)) if isinstance(patch_size, int) else map(int, patch_size)
        c, mels, frames = (int(s) for s in input_shape)
        self.frames = frames - frames % pt
        if self.frames < pt:
            raise UserError(f"spectrograms of {frames} frames are shorter than one patch ({pt} frames): use longer "
                            f"clips (data.frames) or a smaller tower_b.patch_size")
        encoder = vit_encoder(size, dim=dim, depth=depth, heads=heads)
        try:
            tokenizer = SpectrogramPatchEmbed(image_size=(mels, self.frames), in_channels=c, dim=encoder.dim,
                                              patch_size=(pf, pt))
        except ValueError as e:
            raise UserError(f"audio tower: {e}") from None
        self.backbone = Backbone(tokenizer, encoder)
        self.dim = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x[..., :self.frames]).mean(1)
