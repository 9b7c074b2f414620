"""Maskers: (batch_size, generator) -> (context_idx (B, Nc), target_idx (B, M, Nt)); pure and seeded."""
from .multiblock import MultiBlockMasker, block_masks, block_size

__all__ = ["MultiBlockMasker", "block_masks", "block_size"]
