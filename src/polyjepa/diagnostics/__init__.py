"""Label-free representation diagnostics."""
from .rankme import rankme

__all__ = ["rankme"]
