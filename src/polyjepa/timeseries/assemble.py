"""Put a series JEPA together: the generic JEPA with a padding-aware ``SeriesBackbone``."""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from ..build import build_objective, data_facts, inject
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
    pred_kwargs = part_kwargs(cfg, "predictor")
    pdim = pred_kwargs.get("dim", backbone.dim)
    facts = data_facts(input_shape, meta, in_dim=backbone.dim, grid=tokenizer.grid,
                       pos_embed=tokenizer.position_embedding(pdim), online=backbone)
    predictor = build_part("predictor", cfg, pred_kwargs, **inject("predictor", cfg, facts))
    masker = build_part("masker", cfg, part_kwargs(cfg, "masker"), **inject("masker", cfg, facts))
    target = build_part("target", cfg, part_kwargs(cfg, "target"), **inject("target", cfg, facts))
    objective = build_objective(cfg, "objective", torch.zeros(2, 4), torch.ones(2, 4))
    regularizer = build_objective(cfg, "regularizer", torch.randn(4, 3)) if cfg.get("regularizer") else None
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, predictor=predictor,
                      masker=masker, target=target, objective=objective, regularizer=regularizer)
