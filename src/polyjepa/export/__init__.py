"""Save, load, share and export trained encoders (no run directory needed to use them)."""
from .pretrained import PretrainedEncoder, from_pretrained, save_pretrained

__all__ = ["PretrainedEncoder", "from_pretrained", "save_pretrained"]
