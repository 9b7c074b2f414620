"""Data: sources (files, bundled sets), augmentations, and deterministic training batches."""
from .augment import RandomResizedCrop
from .batches import MaskedBatches, step_generator
from .sources import Loaded, load_images, to_nchw

__all__ = ["Loaded", "MaskedBatches", "RandomResizedCrop", "load_images", "step_generator", "to_nchw"]
