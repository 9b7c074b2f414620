"""Names that recipes use for parts, and the builders behind them.

Each family maps a name to (builder, injected): ``injected`` are the arguments the method builder
supplies from other parts (grid, widths, input shape), so a recipe cannot set them.
"""
from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig

from .errors import UserError

DEFAULTS = {"method": "jepa", "tokenizer": "patch2d", "encoder": "vit", "predictor": "mask_token",
            "masker": "multiblock", "target": "ema", "objective": "latent_regression", "regularizer": "vcr",
            "augment": "random_resized_crop"}


def _registry() -> dict[str, dict[str, tuple[Callable, set[str]]]]:
    # Imported lazily so that reading the registry costs nothing until a part is built.
    from .data.augment import RandomResizedCrop
    from .masks.multiblock import MultiBlockMasker
    from .methods.jepa import JEPA
    from .models.encoder import vit_encoder
    from .models.predictor import MaskTokenPredictor
    from .objectives.latent import latent_regression
    from .objectives.vcr import vcr_loss
    from .targets.ema import EMATarget
    from .tokenizers.patch2d import PatchEmbed2D

    return {
        "method": {"jepa": (JEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer"})},
        "tokenizer": {"patch2d": (PatchEmbed2D, {"image_size", "in_channels", "dim"})},
        "encoder": {"vit": (vit_encoder, set())},
        "predictor": {"mask_token": (MaskTokenPredictor, {"in_dim", "pos_embed"})},
        "masker": {"multiblock": (MultiBlockMasker, {"grid"})},
        "target": {"ema": (EMATarget, {"online"})},
        "objective": {"latent_regression": (latent_regression, {"pred", "target"})},
        "regularizer": {"vcr": (vcr_loss, {"z"})},
        "augment": {"random_resized_crop": (RandomResizedCrop, set())},
    }


def part_name(section: str, cfg: DictConfig | dict) -> str | None:
    node = cfg.get(section)
    if node is None:
        return None
    if isinstance(node, str):
        return node
    return node.get("name", DEFAULTS.get(section))


def part_builder(section: str, cfg: DictConfig | dict) -> tuple[Callable | None, set[str]]:
    """(builder, injected argument names) for a section of a recipe; (None, {}) for free sections."""
    reg = _registry()
    if section not in reg:
        return None, set()
    name = part_name(section, cfg)
    if name is None:
        return None, set()
    if name not in reg[section]:
        raise UserError(f"unknown {section} {name!r}: choose one of {', '.join(reg[section])}")
    return reg[section][name]


def build_part(section: str, cfg: DictConfig | dict, kwargs: dict, **injected: Any):
    builder, _ = part_builder(section, cfg)
    if builder is None:
        return None
    try:
        return builder(**kwargs, **injected)
    except (TypeError, ValueError) as e:
        raise UserError(f"cannot build {section} {part_name(section, cfg)!r}: {e}") from None
