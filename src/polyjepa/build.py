"""Build a method from a validated recipe and the shape of the data."""
from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig

from .config import part_kwargs
from .errors import UserError
from .models.encoder import Backbone
from .registry import build_part, part_builder


def build_backbone(cfg: DictConfig, input_shape: tuple[int, ...]) -> Backbone:
    """Tokenizer + encoder for inputs of shape (C, H, W)."""
    enc_kwargs = part_kwargs(cfg, "encoder")
    encoder = build_part("encoder", cfg, enc_kwargs)
    C, H, W = input_shape
    tokenizer = build_part("tokenizer", cfg, part_kwargs(cfg, "tokenizer"),
                           image_size=(H, W), in_channels=C, dim=encoder.dim)
    return Backbone(tokenizer, encoder)


def build_method(cfg: DictConfig, input_shape: tuple[int, ...], seed: int = 0):
    """The recipe's method for inputs of ``input_shape`` (without the batch), initialised from ``seed``.

    Parameter initialisation runs under a forked RNG so the caller's global random state is untouched.
    """
    if len(input_shape) != 3:
        raise UserError(f"this recipe needs images (C, H, W) but the data have per-sample shape {tuple(input_shape)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_backbone(cfg, input_shape)
        grid = backbone.tokenizer.grid
        pred_kwargs = part_kwargs(cfg, "predictor")
        pdim = pred_kwargs.get("dim", backbone.dim)
        predictor = build_part("predictor", cfg, pred_kwargs, in_dim=backbone.dim,
                               pos_embed=backbone.tokenizer.position_embedding(pdim))
        masker = build_part("masker", cfg, part_kwargs(cfg, "masker"), grid=grid)
        target = build_part("target", cfg, part_kwargs(cfg, "target"), online=backbone)
        objective = build_objective(cfg, "objective", torch.zeros(2, 4), torch.ones(2, 4))
        regularizer = build_objective(cfg, "regularizer", torch.randn(4, 3)) if cfg.get("regularizer") else None
        return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, predictor=predictor,
                          masker=masker, target=target, objective=objective, regularizer=regularizer)


def build_objective(cfg: DictConfig, section: str, *example: torch.Tensor):
    """The recipe's objective (or regulariser) with its arguments bound, checked once on a tiny input."""
    builder, _ = part_builder(section, cfg)
    objective = functools.partial(builder, **part_kwargs(cfg, section))
    try:
        objective(*example)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad {section} config: {e}") from None
    return objective


def build_augment(cfg: DictConfig):
    if cfg.get("augment") is None:
        return None
    return build_part("augment", cfg, part_kwargs(cfg, "augment"))
