"""Objectives: pure functions on tensors returning a dict with "loss"."""
from .distributed import gather_batch
from .latent import latent_regression
from .vcr import vcr_loss

__all__ = ["gather_batch", "latent_regression", "vcr_loss"]
