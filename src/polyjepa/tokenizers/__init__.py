"""Tokenizers: raw modality input -> tokens (B, N, D), with a grid or coordinates for maskers."""
from .patch2d import ConvStem2D, PatchEmbed2D
from .posembed import sincos_1d, sincos_2d

__all__ = ["ConvStem2D", "PatchEmbed2D", "sincos_1d", "sincos_2d"]
