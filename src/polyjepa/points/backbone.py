"""Point backbone: the group tokenizer + the core transformer over kept tokens, with point-cloud pools."""
from __future__ import annotations

import torch

from ..models.encoder import Backbone, TransformerEncoder, pool_tokens
from ..models.transformer import gather_tokens
from .tokenizer import PointGroups, PointGroupTokenizer

POOLS = ("mean", "max", "mean+max", "mean+std")


def cell_pool(h: torch.Tensor, centres: torch.Tensor, k: int) -> torch.Tensor:
    """The mean token of the patches whose centre lies in each of k^3 equal cells of the cube [-1, 1]^3
    (clouds are centred into the unit ball; centres outside the cube count in the nearest cell).

    Shapes: h (B, G, D), centres (B, G, 3) -> (B, k^3 * D); an empty cell gives zeros.
    """
    cell = ((centres.clamp(-1, 1) + 1) / 2 * k).long().clamp(max=k - 1)   # (B, G, 3) in [0, k)
    idx = (cell[..., 0] * k + cell[..., 1]) * k + cell[..., 2]             # (B, G)
    onehot = torch.nn.functional.one_hot(idx, k ** 3).to(h.dtype)          # (B, G, k^3)
    sums = torch.einsum("bgc,bgd->bcd", onehot, h)
    return (sums / onehot.sum(1).clamp(min=1)[..., None]).flatten(1)


def split_pool(pool: str) -> tuple[str | None, int]:
    """('mean+max', 2) for 'mean+max+cells:2', (None, 2) for 'cells:2', ('mean', 0) for 'mean'; checked."""
    if "cells:" not in pool:
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r} for point clouds: use one of {', '.join(POOLS)}, "
                             f"'cells:K' or '<pool>+cells:K'")
        return pool, 0
    base, _, k = pool.rpartition("cells:")
    base = base[:-1] if base.endswith("+") else base
    if not k.isdigit() or int(k) < 1 or (base and base not in POOLS):
        raise ValueError(f"pool {pool!r}: write cells:K or <pool>+cells:K with K >= 1 cells per side and <pool> "
                         f"one of {', '.join(POOLS)}")
    return base or None, int(k)


def pool_points(h: torch.Tensor, centres: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, G, D) patch tokens with their (B, G, 3) centres -> (B, F) by ``pool`` (see :meth:`PointBackbone.embed`)."""
    base, k = split_pool(pool)
    parts = ([pool_tokens(h, base)] if base else []) + ([cell_pool(h, centres, k)] if k else [])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class PointBackbone(Backbone):
    """Tokenizer + encoder for point clouds.

    Shapes:
        forward(x (B, P, 3) | PointGroups, keep_idx (B, Nk) | None, layers) -> (B, Nk, D).
        embed(x, pool, layers) -> (B, F): ``mean`` or ``max`` over patch tokens (F = D), ``mean+max``
        (the Point-MAE/Point-JEPA SVM read-out) or ``mean+std`` (F = 2D); ``cells:K`` the mean token of
        the patches in each of K^3 cells of the cube around the cloud (F = K^3 D: where the parts are, for
        aligned shapes), ``<pool>+cells:K`` both side by side.
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
        split_pool(pool)                                                    # a bad pool fails before any work
        groups = x if isinstance(x, PointGroups) else self.tokenizer.group(x)
        return pool_points(self(groups, layers=layers), groups.centres, pool)  # (B, G, D) -> (B, F)
