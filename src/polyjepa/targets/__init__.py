"""Target builders: what the predictor regresses onto (an EMA teacher) or classifies (quantiser ids)."""
from .ema import EMATarget, ema_update, momentum_at
from .rvq import ResidualVQ, RVQTarget, kmeans, patchify

__all__ = ["EMATarget", "ResidualVQ", "RVQTarget", "ema_update", "kmeans", "momentum_at", "patchify"]
