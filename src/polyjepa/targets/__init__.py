"""Target builders: what the predictor regresses onto (an EMA teacher, hand-crafted gradient features) or
classifies (quantiser ids)."""
from .ema import EMATarget, ema_update, momentum_at
from .gradient import GradientTarget, roa_gradient
from .rvq import ResidualVQ, RVQTarget, kmeans, patchify

__all__ = ["EMATarget", "GradientTarget", "ResidualVQ", "RVQTarget", "ema_update", "kmeans", "momentum_at",
           "patchify", "roa_gradient"]
