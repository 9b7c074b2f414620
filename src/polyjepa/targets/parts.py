"""Target builders beside the EMA teacher, for recipes: ``target: {name: gradient, ...}``."""
from __future__ import annotations

from .gradient import GradientTarget

PARTS = {"target": {"gradient": (GradientTarget, {"image_size", "in_channels", "grid"})}}
