"""Methods: own one part of each family; expose loss(batch) -> dict and embed(x) -> (B, F)."""
from .jepa import JEPA

__all__ = ["JEPA"]
