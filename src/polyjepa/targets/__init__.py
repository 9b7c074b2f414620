"""Target builders: what the predictor regresses onto."""
from .ema import EMATarget, ema_update, momentum_at
from .gradient import GradientTarget, roa_gradient

__all__ = ["EMATarget", "GradientTarget", "ema_update", "momentum_at", "roa_gradient"]
