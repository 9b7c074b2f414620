"""Point-cloud parts for recipes (Point-JEPA, 3D-JEPA) and the assembler of the point_jepa method."""
from __future__ import annotations

from omegaconf import DictConfig

from ..build import data_facts, inject, invariance_part, jepa_parts
from ..config import part_kwargs
from ..errors import UserError
from ..methods.invariance import Invariance
from ..registry import build_part
from .asymdsd import AsymDSD, CrossAttentionPredictor
from .augment import PointAugment
from .backbone import PointBackbone
from .data import load_points
from .masks import SequenceBlockMasker, SpatialBlockMasker
from .method import PointJEPA
from .predictor import ContextInjectedPredictor, PointPredictor
from .tokenizer import PointGroupTokenizer

METHOD_PARTS = {"backbone", "predictor", "masker", "target", "objective", "regularizer", "invariance"}


def point_invariance(*, in_dim: int, weight: float = 1.0, scale: tuple[float, float] | None = (0.8, 1.2),
                     rotate: bool = True, max_angle: float = 180.0, translate: float = 0.2, up_axis: int = 2,
                     hidden: int = 512, out_dim: int = 256, layers: int = 3, sim_weight: float = 25.0,
                     var_weight: float = 25.0, cov_weight: float = 1.0, first: str = "context") -> Invariance:
    """The invariance term (two-view VICReg, :class:`~polyjepa.methods.invariance.Invariance`) with
    point-cloud views: each view is a :class:`PointAugment` draw (per-axis scale, rotation about the up
    axis, translation). The projector, VICReg weights and ``first`` are Invariance's."""
    view = PointAugment(scale=scale, rotate=rotate, max_angle=max_angle, translate=translate, up_axis=up_axis)
    return Invariance(in_dim=in_dim, weight=weight, view=view, hidden=hidden, out_dim=out_dim, layers=layers,
                      sim_weight=sim_weight, var_weight=var_weight, cov_weight=cov_weight, first=first)

PARTS = {
    "method": {"point_jepa": (PointJEPA, METHOD_PARTS), "asymdsd": (AsymDSD, {"backbone", "predictor"})},
    "tokenizer": {"point_groups": (PointGroupTokenizer, {"dim"})},
    "predictor": {"point_mask_token": (PointPredictor, {"in_dim"}),
                  "point_context_injected": (ContextInjectedPredictor, {"in_dim"}),
                  "point_cross_attention": (CrossAttentionPredictor, {"in_dim"})},
    "masker": {"sequence_blocks": (SequenceBlockMasker, {"grid"}),
               "spatial_blocks": (SpatialBlockMasker, {"grid"})},
    "augment": {"point_augment": (PointAugment, set())},
    "invariance": {"point_vicreg": (point_invariance, {"in_dim"})},
    "data": {"points": (load_points, {"source"})},
}


def build_point_backbone(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict | None = None) -> PointBackbone:
    """Point-group tokenizer + the recipe's encoder, for clouds of per-sample shape (points, 3)."""
    if len(input_shape) != 2 or input_shape[1] != 3:
        raise UserError(f"the point-cloud methods need point clouds (points, 3) per sample, got {tuple(input_shape)}: "
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
    parts = jepa_parts(cfg, backbone, input_shape, meta)
    if cfg.get("invariance") is not None:  # optional two-view VICReg term
        parts["invariance"] = invariance_part(cfg, backbone.dim, "point_vicreg")
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, **parts)


def assemble_asymdsd(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> AsymDSD:
    """Point tokenizer + encoder (student; the teacher is its EMA copy) + cross-attention predictor -> AsymDSD."""
    backbone = build_point_backbone(cfg, input_shape, meta)
    predictor = build_part("predictor", cfg, part_kwargs(cfg, "predictor"), in_dim=backbone.dim)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, predictor=predictor)


ASSEMBLERS = {"point_jepa": assemble_point_jepa, "asymdsd": assemble_asymdsd}
# the loader's lazy form for data.stream=true (clouds converted on access, never all in memory)
STREAMS = {"points": "polyjepa.points.stream:open_points"}
