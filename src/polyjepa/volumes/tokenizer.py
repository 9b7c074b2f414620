"""Cubic patches of a volume as tokens."""
from __future__ import annotations

from torch import nn

from ..errors import UserError
from ..video.tubelet import TubeletEmbed


class VolumePatchEmbed(TubeletEmbed):
    """Non-overlapping (patch x patch x patch) cubes of a (C, D, H, W) volume, each projected to a token, plus
    fixed 3-D sin-cos positions.

    Args:
        input_shape: per-sample volume shape (C, D, H, W); each side a multiple of ``patch_size``.
        patch_size: cube side; dim: token width.
    Shapes: forward (B, C, D, H, W) -> (B, N, dim), N = (D/p)(H/p)(W/p), depth-major.
    """

    def __init__(self, *, input_shape: tuple[int, ...], patch_size: int, dim: int):
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 4 or any(s % patch_size for s in shape[1:]) or patch_size < 1:
            raise UserError(f"volume patches of side {patch_size} need a (channels, D, H, W) volume whose sides are "
                            f"multiples of {patch_size}, got {shape}: choose a patch size that divides every side")
        super().__init__(input_shape=shape, patch_size=patch_size, tubelet_size=patch_size, dim=dim)


def volume_backbone(*, input_shape: tuple[int, ...], patch_size: int, dim: int = 96, depth: int = 3,
                    heads: int = 4) -> nn.Module:
    """A patch tokenizer and a pre-norm transformer: ``embed(x) -> (B, dim)`` by mean pooling."""
    from ..models.encoder import Backbone, TransformerEncoder

    return Backbone(VolumePatchEmbed(input_shape=input_shape, patch_size=patch_size, dim=dim),
                    TransformerEncoder(dim=dim, depth=depth, heads=heads))
