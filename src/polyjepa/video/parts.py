"""Video parts for recipes, and the assemblers of the V-JEPA and VJ-VCR methods."""
from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig

from ..build import build_backbone, build_objective, data_facts, inject
from ..config import part_kwargs
from ..errors import UserError
from ..objectives.latent import latent_regression
from ..registry import build_part
from .backbone import VideoBackbone
from .masks import TubeMaskSet
from .predictor import MultiMaskPredictor
from .sources import load_clips, load_moving_digits
from .tubelet import TubeletEmbed
from .vjepa import VJEPA
from .vjvcr import VJVCR


def _video_backbone(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> VideoBackbone:
    bb = build_backbone(cfg, input_shape, meta)
    grid = getattr(bb.tokenizer, "grid", ())
    if len(grid) != 3:
        raise UserError(f"video methods need a tokenizer with a (time, height, width) grid, got "
                        f"{type(bb.tokenizer).__name__} with grid {grid}: use tokenizer.name=tubelet")
    return VideoBackbone(bb.tokenizer, bb.encoder)


def _objective(cfg: DictConfig, default):
    if cfg.get("objective") is None:
        return default
    return build_objective(cfg, "objective", torch.zeros(2, 4), torch.ones(2, 4))


def assemble_vjepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> VJEPA:
    """Tubelet tokenizer + encoder, a TubeMaskSet, a predictor with one mask token per mask generator,
    an EMA target, an objective (V-JEPA: L1) and an optional regulariser."""
    backbone = _video_backbone(cfg, input_shape, meta)
    tok = backbone.tokenizer
    pred_kwargs = part_kwargs(cfg, "predictor")
    facts = data_facts(input_shape, meta, grid=tok.grid, online=backbone, in_dim=backbone.dim, cond_dim=0,
                       pos_embed=tok.position_embedding(pred_kwargs.get("dim", backbone.dim)))
    masker = build_part("masker", cfg, part_kwargs(cfg, "masker"), **inject("masker", cfg, facts))
    facts["n_masks"] = len(masker) if hasattr(masker, "__len__") else 1
    predictor = build_part("predictor", cfg, pred_kwargs, **inject("predictor", cfg, facts))
    target = build_part("target", cfg, part_kwargs(cfg, "target"), **inject("target", cfg, facts))
    objective = _objective(cfg, functools.partial(latent_regression, kind="l1"))
    regularizer = build_objective(cfg, "regularizer", torch.randn(4, 3)) if cfg.get("regularizer") else None
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, predictor=predictor,
                      masker=masker, target=target, objective=objective, regularizer=regularizer)


def assemble_vjvcr(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> VJVCR:
    """Tubelet tokenizer + one shared encoder, a conditioned predictor, an objective (default L2) and VCR."""
    backbone = _video_backbone(cfg, input_shape, meta)
    tok = backbone.tokenizer
    method_kwargs = part_kwargs(cfg, "method")
    pred_kwargs = part_kwargs(cfg, "predictor")
    facts = data_facts(input_shape, meta, grid=tok.grid, in_dim=backbone.dim, n_masks=1,
                       cond_dim=int(method_kwargs.get("latent_dim", 0)),
                       pos_embed=tok.position_embedding(pred_kwargs.get("dim", backbone.dim)))
    predictor = build_part("predictor", cfg, pred_kwargs, **inject("predictor", cfg, facts))
    objective = _objective(cfg, functools.partial(latent_regression, kind="l2"))
    regularizer = build_objective(cfg, "regularizer", torch.randn(4, 3)) if cfg.get("regularizer") else None
    return build_part("method", cfg, method_kwargs, backbone=backbone, predictor=predictor, objective=objective,
                      regularizer=regularizer)


PARTS = {
    "method": {"vjepa": (VJEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer"}),
               "vjvcr": (VJVCR, {"backbone", "predictor", "objective", "regularizer"})},
    "tokenizer": {"tubelet": (TubeletEmbed, {"input_shape", "dim"})},
    "masker": {"multiblock3d": (TubeMaskSet, {"grid"})},
    "predictor": {"multi_mask_token": (MultiMaskPredictor, {"in_dim", "pos_embed", "n_masks", "cond_dim"})},
    "data": {"moving_digits": (load_moving_digits, {"source"}), "clips": (load_clips, {"source"})},
}

ASSEMBLERS = {"vjepa": assemble_vjepa, "vjvcr": assemble_vjvcr}
# the loaders' lazy forms for data.stream=true (read on access, never whole into memory)
STREAMS = {"clips": "polyjepa.video.stream:open_clips"}
