"""Objectives: pure functions on tensors returning a dict with "loss"."""
from .latent import latent_regression
from .vcr import vcr_loss

__all__ = ["latent_regression", "vcr_loss"]
