"""Concerto parts for recipes: the cameras of the renders, the 2-D encoder trained on them, the method."""
from __future__ import annotations

from omegaconf import DictConfig

from ..config import part_kwargs
from ..masks.multiblock import MultiBlockMasker
from ..methods.jepa import JEPA
from ..models.encoder import Backbone, vit_encoder
from ..models.predictor import MaskTokenPredictor
from ..points.parts import build_point_backbone
from ..registry import build_part
from ..targets.ema import EMATarget
from ..tokenizers.patch2d import PatchEmbed2D
from .camera import orbit_cameras
from .method import Concerto


def depth_ijepa(*, image_size: tuple[int, int], patch_size: int = 4, silhouette: bool = False, dim: int = 64,
                depth: int = 4, heads: int = 4, predictor_dim: int = 32, predictor_depth: int = 2,
                predictor_heads: int = 4, momentum: tuple[float, float] = (0.996, 1.0), n_targets: int = 4,
                target_scale: tuple[float, float] = (0.15, 0.2), context_scale: tuple[float, float] = (0.85, 1.0),
                min_keep: int = 4) -> JEPA:
    """The 2-D encoder of Concerto here: a ViT on rendered depth images (a second channel with ``silhouette``),
    trained by I-JEPA (multi-block masks, mask-token predictor, EMA target with layer norm, smooth-L1).
    It stands in for the paper's frozen DINOv2, which is not available offline."""
    tokenizer = PatchEmbed2D(image_size=tuple(image_size), patch_size=patch_size, in_channels=2 if silhouette else 1,
                             dim=dim)
    backbone = Backbone(tokenizer, vit_encoder("micro", dim=dim, depth=depth, heads=heads))
    predictor = MaskTokenPredictor(in_dim=dim, dim=predictor_dim, depth=predictor_depth, heads=predictor_heads,
                                   pos_embed=tokenizer.position_embedding(predictor_dim))
    masker = MultiBlockMasker(grid=tokenizer.grid, n_targets=n_targets, target_scale=tuple(target_scale),
                              context_scale=tuple(context_scale), min_keep=min_keep)
    return JEPA(backbone=backbone, predictor=predictor, masker=masker, target=EMATarget(backbone, momentum=tuple(momentum)))


def assemble_concerto(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> Concerto:
    """Point backbone (as Point-JEPA's) + cameras + the 2-D encoder on their renders -> Concerto."""
    backbone = build_point_backbone(cfg, input_shape, meta)
    cameras = build_part("cameras", cfg, part_kwargs(cfg, "cameras"))
    image = build_part("teacher2d", cfg, part_kwargs(cfg, "teacher2d"), image_size=cameras.size)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, image=image, cameras=cameras)


PARTS = {
    "method": {"concerto": (Concerto, {"backbone", "image", "cameras"})},
    "cameras": {"orbit": (orbit_cameras, set())},
    "teacher2d": {"depth_ijepa": (depth_ijepa, {"image_size"})},
}

ASSEMBLERS = {"concerto": assemble_concerto}

DEFAULTS = {"cameras": "orbit", "teacher2d": "depth_ijepa"}
