"""Point backbone: the group tokenizer + the core transformer over kept tokens, with point-cloud pools."""
from __future__ import annotations

import torch

from ..models.encoder import Backbone, TransformerEncoder, pool_tokens
from ..models.transformer import gather_tokens
from .tokenizer import PointGroups, PointGroupTokenizer

POOLS = ("mean", "max", "mean+max", "mean+std")


class PointBackbone(Backbone):
    """Tokenizer + encoder for point clouds.

    Shapes:
        forward(x (B, P, 3) | PointGroups, keep_idx (B, Nk) | None, layers) -> (B, Nk, D).
        embed(x, pool, layers) -> (B, F): ``mean`` or ``max`` over patch tokens (F = D), ``mean+max``
        (the Point-MAE/Point-JEPA SVM read-out) or ``mean+std`` (F = 2D).
    """

    def __init__(self, tokenizer: PointGroupTokenizer, encoder: TransformerEncoder):
        super().__init__(tokenizer, encoder)

    def forward(self, x: torch.Tensor | PointGroups, keep_idx: torch.Tensor | None = None,
                layers: int = 1) -> torch.Tensor:
        if keep_idx is not None:
            # Tokens are per patch: embed the kept patches only (the context is a quarter to half of them).
            groups = x if isinstance(x, PointGroups) else self.tokenizer.group(x)
            x, keep_idx = PointGroups(gather_tokens(groups.centres, keep_idx), gather_tokens(groups.patches.flatten(2), keep_idx).unflatten(-1, groups.patches.shape[-2:])), None
        return self.encoder(self.tokenizer(x), keep_idx, layers=layers)

    def embed(self, x: torch.Tensor | PointGroups, *, pool: str = "mean+max", layers: int = 1) -> torch.Tensor:
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r} for point clouds: use one of {', '.join(POOLS)}")
        return pool_tokens(self(x, layers=layers), pool)                    # (B, G, D) -> (B, F)
