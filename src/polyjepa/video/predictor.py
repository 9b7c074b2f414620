"""Mask-token predictor with one learnable mask token per mask type and an optional conditioning input."""
from __future__ import annotations

import torch
from torch import nn

from ..models.predictor import MaskTokenPredictor, block_attention_mask


class MultiMaskPredictor(MaskTokenPredictor):
    """The I-JEPA predictor with ``n_masks`` mask tokens (V-JEPA: one per mask generator, zero-initialised)
    and, when ``cond_dim`` > 0, a conditioning vector (e.g. VJ-VCR's latent variable) added to every mask token.

    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc), target_idx (B, M, Nt), mask_index: int,
                cond (B, cond_dim) | None) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor, n_masks: int = 1,
                 cond_dim: int = 0, mlp_ratio: float = 4.0, isolate_targets: bool = True):
        super().__init__(in_dim=in_dim, dim=dim, depth=depth, heads=heads, pos_embed=pos_embed, mlp_ratio=mlp_ratio,
                         isolate_targets=isolate_targets)
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        self.n_masks, self.cond_dim = n_masks, cond_dim
        self.mask_token = nn.Parameter(torch.zeros(n_masks, 1, dim))
        self.cond = nn.Linear(cond_dim, dim) if cond_dim else None

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor, mask_index: int = 0,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        B, M, Nt = target_idx.shape
        Nc = context_idx.shape[1]
        pos = self.pos_embed.to(z.dtype)
        x = self.embed(z) + pos[context_idx]                                        # (B, Nc, Dp)
        q = self.mask_token[mask_index] + pos[target_idx.reshape(B, M * Nt)]        # (B, M*Nt, Dp)
        if self.cond is not None:
            if cond is None:
                raise ValueError(f"this predictor takes a (B, {self.cond_dim}) conditioning input")
            q = q + self.cond(cond).unsqueeze(1)
        x = torch.cat([x, q], dim=1)
        mask = block_attention_mask(Nc, M, Nt, z.device) if self.isolate_targets and M > 1 else None
        for block in self.blocks:
            x = block(x, mask)
        return self.proj(self.norm(x[:, Nc:])).view(B, M, Nt, -1)
