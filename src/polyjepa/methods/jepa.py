"""JEPA: encode the context, predict the target encoder's features of the masked blocks."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.encoder import Backbone
from ..models.transformer import gather_tokens
from ..objectives.distributed import gather_batch
from ..objectives.latent import latent_regression
from ..targets.ema import EMATarget


def position_std_hinge(z: torch.Tensor, idx: torch.Tensor, num_tokens: int, gamma: float = 1.0,
                       eps: float = 1e-4) -> torch.Tensor:
    """Mean hinge ``relu(gamma - std)`` of every (token position, channel)'s standard deviation over the batch.

    Args:
        z: (B, Nk, D) features of the kept tokens; idx: (B, Nk) their positions in [0, num_tokens).
    Returns:
        a scalar: the hinge averaged over channels and over the positions kept by at least two samples.
    Features that position alone predicts (the same at a position for every sample, e.g. on blank
    image borders) have zero std there and are penalised; mean pooling keeps only such a shortcut.
    """
    B, Nk, D = z.shape
    z = z.float()
    onehot = torch.zeros(B, Nk, num_tokens, device=z.device).scatter_(2, idx.unsqueeze(-1), 1.0)  # (B, Nk, N)
    count = onehot.sum((0, 1))                                                   # (N,)
    s1 = torch.einsum("bkn,bkd->nd", onehot, z)                                  # (N, D)
    s2 = torch.einsum("bkn,bkd->nd", onehot, z * z)
    valid = count >= 2
    c = count[valid].unsqueeze(-1)
    var = (s2[valid] - s1[valid].pow(2) / c) / (c - 1)
    return F.relu(gamma - torch.sqrt(var.clamp_min(0) + eps)).mean()


class JEPA(nn.Module):
    """Joint-embedding predictive architecture (I-JEPA and the masked-prediction family).

    Args:
        backbone: online tokenizer + encoder (trained by gradient).
        predictor: maps context features + target positions to target features.
        masker: ``masker(batch_size, generator) -> (context_idx, target_idx)``; used by the data
            loader, kept here so that a method carries everything needed to make its batches.
        target: EMA teacher built from ``backbone``.
        objective: ``objective(pred, target) -> {"loss", ...}``; default smooth-L1 latent regression.
        regularizer: optional ``regularizer(e (B, D)) -> {"loss", ...}`` on the context encoder's
            pooled output (e.g. VCR as in VJ-VCR), added to the loss; keeps pooled embeddings from
            collapsing to what positions alone predict.
        embed_from: 'target' (the EMA encoder, as I-JEPA evaluates) or 'online'.
        position_var: weight of ``position_std_hinge`` on the context features (0 = off, I-JEPA):
            every token position's features must vary across the batch, which rules out the
            shortcut where both encoders output what the position alone predicts.
        position_gamma: the std each (position, channel) is held above.
    A batch is a dict: x (B, ...) raw input, context_idx (B, Nc), target_idx (B, M, Nt).
    """

    def __init__(self, *, backbone: Backbone, predictor: nn.Module, masker, target: EMATarget,
                 objective: Callable[..., dict] = latent_regression, regularizer: Callable[..., dict] | None = None,
                 embed_from: str = "target", position_var: float = 0.0, position_gamma: float = 1.0):
        super().__init__()
        if embed_from not in ("target", "online"):
            raise ValueError(f"embed_from must be 'target' or 'online', got {embed_from!r}")
        self.backbone = backbone
        self.predictor = predictor
        self.target = target
        self.masker = masker
        self.objective, self.regularizer, self.embed_from = objective, regularizer, embed_from
        self.position_var, self.position_gamma = float(position_var), float(position_gamma)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, context_idx, target_idx = batch["x"], batch["context_idx"], batch["target_idx"]
        h = gather_tokens(self.target(x), target_idx)            # (B, M, Nt, D), no gradient
        z = self.backbone(x, keep_idx=context_idx)                # (B, Nc, D): context tokens only
        p = self.predictor(z, context_idx, target_idx)            # (B, M, Nt, D)
        out = self.objective(p, h)
        if self.regularizer is not None:
            reg = self.regularizer(gather_batch(z.mean(1)))  # batch statistics over every process
            out = {**out, "loss": out["loss"] + reg["loss"], **{f"reg_{k}": v for k, v in reg.items()}}
        if self.position_var > 0:
            pos_std = position_std_hinge(z, context_idx, self.backbone.tokenizer.num_tokens, self.position_gamma)
            out = {**out, "loss": out["loss"] + self.position_var * pos_std, "pos_std_hinge": pos_std}
        return out

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.predictor]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        return self.target.update(self.backbone, step, total_steps)

    def encoder(self) -> Backbone:
        """The backbone whose embeddings are evaluated and exported."""
        return self.target.model if self.embed_from == "target" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """(B, ...) -> (B, F) pooled features of the evaluated encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)
