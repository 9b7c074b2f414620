"""Put a series JEPA together: the generic JEPA with a padding-aware series backbone (transformer or dilated CNN)."""
from __future__ import annotations

from omegaconf import DictConfig

from ..build import data_facts, inject, jepa_parts
from ..config import part_kwargs
from ..errors import UserError
from ..registry import build_part, part_name
from .backbone import SeriesBackbone
from .conv import ConvSeriesBackbone, DilatedConvEncoder
from .tokenizer import PatchEmbed1D, PatchGrid1D


def build_series_backbone(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict | None,
                          method: str = "series_jepa") -> SeriesBackbone:
    """The recipe's padding-aware series backbone: ``patch1d`` + a transformer, or ``patch_grid`` + ``dilated_conv``."""
    if len(input_shape) != 2:
        raise UserError(f"method {method} needs series of per-sample shape (channels, length), got {input_shape}: "
                        f"use data.loader=series")
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"), **inject("encoder", cfg, data_facts(input_shape, meta)))
    facts = data_facts(input_shape, meta, dim=encoder.dim)
    tokenizer = build_part("tokenizer", cfg, part_kwargs(cfg, "tokenizer"), **inject("tokenizer", cfg, facts))
    if not isinstance(tokenizer, PatchGrid1D):
        raise UserError(f"method {method} needs a series tokenizer (patch1d, or patch_grid with a dilated_conv "
                        f"encoder), not {part_name('tokenizer', cfg)!r}")
    patch = getattr(tokenizer, "patch_size", None) or 1
    if input_shape[1] < 2 * patch:  # the same rule for the command line and TimeSeriesEmbedder
        raise UserError(f"series of {input_shape[1]} steps are shorter than two patches of {patch} steps (a JEPA "
                        f"predicts some patches from others): use longer series or a smaller tokenizer.patch_size")
    convolutional = isinstance(encoder, DilatedConvEncoder)
    if convolutional == isinstance(tokenizer, PatchEmbed1D):
        raise UserError("encoder dilated_conv goes with tokenizer patch_grid (it embeds every step itself), a "
                        "transformer encoder with tokenizer patch1d: change one of the two")
    return (ConvSeriesBackbone if convolutional else SeriesBackbone)(tokenizer, encoder)


def assemble_series_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict):
    """Series backbone + predictor + masker + EMA target + objective (+ regulariser) -> JEPA."""
    backbone = build_series_backbone(cfg, input_shape, meta)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone,
                      **jepa_parts(cfg, backbone, input_shape, meta))
