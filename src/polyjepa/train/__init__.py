"""Training: schedules, checkpoints, metrics, and the Fabric loop (imported lazily: Fabric costs seconds)."""
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .schedules import cosine, warmup_cosine

__all__ = ["cosine", "latest_checkpoint", "load_checkpoint", "save_checkpoint", "warmup_cosine"]
