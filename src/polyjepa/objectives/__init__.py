"""Objectives: pure functions on tensors returning a dict with "loss"."""
from .latent import latent_regression

__all__ = ["latent_regression"]
