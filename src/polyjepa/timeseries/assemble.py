"""Put a series JEPA together: the generic JEPA with a padding-aware ``SeriesBackbone``."""
from __future__ import annotations

from omegaconf import DictConfig

from ..build import data_facts, inject, jepa_parts
from ..config import part_kwargs
from ..errors import UserError
from ..registry import build_part, part_name
from .backbone import SeriesBackbone


def assemble_series_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict):
    """Tokenizer (``patch1d``) + encoder + predictor + masker + EMA target + objective (+ regulariser)."""
    if len(input_shape) != 2:
        raise UserError(f"method series_jepa needs series of per-sample shape (channels, length), got {input_shape}: "
                        f"use data.loader=series")
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"))
    facts = data_facts(input_shape, meta, dim=encoder.dim)
    tokenizer = build_part("tokenizer", cfg, part_kwargs(cfg, "tokenizer"), **inject("tokenizer", cfg, facts))
    if not hasattr(tokenizer, "token_mask"):
        raise UserError(f"method series_jepa needs a series tokenizer with token_mask (patch1d), not "
                        f"{part_name('tokenizer', cfg)!r}")
    backbone = SeriesBackbone(tokenizer, encoder)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone,
                      **jepa_parts(cfg, backbone, input_shape, meta))
