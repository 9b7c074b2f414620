"""Target builders: what the predictor regresses onto."""
from .ema import EMATarget, ema_update, momentum_at

__all__ = ["EMATarget", "ema_update", "momentum_at"]
