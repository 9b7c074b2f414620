"""Objectives: pure functions on tensors returning a dict with "loss" (thin modules where there is state)."""
from .barlow import barlow_twins_loss
from .dino import DINOLoss, dino_loss, sinkhorn_knopp, soft_cross_entropy, teacher_temperature
from .distributed import gather_batch
from .infonce import nt_xent_loss
from .intl import intl_loss, iter_norm, trace_loss
from .koleo import koleo_loss
from .latent import latent_regression
from .sigreg import epps_pulley, lejepa_loss, sigreg_loss
from .tico import TiCoLoss, tico_loss
from .vcr import vcr_loss
from .vicreg import vicreg_loss

__all__ = ["DINOLoss", "TiCoLoss", "barlow_twins_loss", "dino_loss", "epps_pulley", "gather_batch", "intl_loss",
           "iter_norm", "koleo_loss", "latent_regression", "lejepa_loss", "nt_xent_loss", "sigreg_loss",
           "sinkhorn_knopp", "soft_cross_entropy", "teacher_temperature", "tico_loss", "trace_loss", "vcr_loss",
           "vicreg_loss"]
