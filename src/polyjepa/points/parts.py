"""Point-cloud parts for recipes (Point-JEPA, 3D-JEPA) and the assembler of the point_jepa method."""
from __future__ import annotations

from omegaconf import DictConfig

from ..build import data_facts, inject, jepa_parts
from ..config import part_kwargs
from ..errors import UserError
from ..registry import build_part
from .augment import PointAugment
from .backbone import PointBackbone
from .data import load_points
from .masks import SequenceBlockMasker, SpatialBlockMasker
from .method import PointJEPA
from .predictor import ContextInjectedPredictor, PointPredictor
from .tokenizer import PointGroupTokenizer

METHOD_PARTS = {"backbone", "predictor", "masker", "target", "objective", "regularizer"}

PARTS = {
    "method": {"point_jepa": (PointJEPA, METHOD_PARTS)},
    "tokenizer": {"point_groups": (PointGroupTokenizer, {"dim"})},
    "predictor": {"point_mask_token": (PointPredictor, {"in_dim"}),
                  "point_context_injected": (ContextInjectedPredictor, {"in_dim"})},
    "masker": {"sequence_blocks": (SequenceBlockMasker, {"grid"}),
               "spatial_blocks": (SpatialBlockMasker, {"grid"})},
    "augment": {"point_augment": (PointAugment, set())},
    "data": {"points": (load_points, {"source"})},
}


def build_point_backbone(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict | None = None) -> PointBackbone:
    """Point-group tokenizer + the recipe's encoder, for clouds of per-sample shape (points, 3)."""
    if len(input_shape) != 2 or input_shape[1] != 3:
        raise UserError(f"method point_jepa needs point clouds (points, 3) per sample, got {tuple(input_shape)}: "
                        f"use data.loader=points")
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"))
    facts = data_facts(input_shape, meta, dim=encoder.dim)
    tokenizer = build_part("tokenizer", cfg, part_kwargs(cfg, "tokenizer"), **inject("tokenizer", cfg, facts))
    need = max(getattr(tokenizer, "n_groups", 1), getattr(tokenizer, "group_size", 1))
    if input_shape[0] < need:
        raise UserError(f"clouds of {input_shape[0]} points are fewer than the tokenizer's {need} "
                        f"(n_groups, group_size): raise data.points or lower tokenizer.n_groups/group_size")
    return PointBackbone(tokenizer, encoder)


def assemble_point_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> PointJEPA:
    """Point tokenizer + encoder + position-aware predictor + masker + EMA target + objective -> PointJEPA."""
    backbone = build_point_backbone(cfg, input_shape, meta)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone,
                      **jepa_parts(cfg, backbone, input_shape, meta))


ASSEMBLERS = {"point_jepa": assemble_point_jepa}
