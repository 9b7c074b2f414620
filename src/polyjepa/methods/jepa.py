"""JEPA: encode the context, predict the target encoder's features of the masked blocks."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..data.batches import draw_masks
from ..models.encoder import Backbone
from ..models.transformer import gather_tokens
from ..objectives.distributed import gather_batch
from ..objectives.latent import latent_regression
from ..targets.ema import EMATarget


REG_ON = ("pooled", "tokens")


def regularizer_rows(z: torch.Tensor, reg_on: str) -> torch.Tensor:
    """(B, N, D) token features -> the (n, D) rows a regulariser sees: each sample's mean token
    (``pooled``, n = B) or every token (``tokens``, n = B * N); gathered over every process."""
    if reg_on not in REG_ON:
        raise ValueError(f"reg_on must be 'pooled' or 'tokens', got {reg_on!r}")
    return gather_batch(z.mean(1) if reg_on == "pooled" else z.reshape(-1, z.shape[-1]))


class JEPA(nn.Module):
    """Joint-embedding predictive architecture (I-JEPA and the masked-prediction family).

    Args:
        backbone: online tokenizer + encoder (trained by gradient).
        predictor: maps context features + target positions to target features.
        masker: ``masker(batch_size, generator) -> (context_idx, target_idx)``; used by the data
            loader, kept here so that a method carries everything needed to make its batches.
        target: EMA teacher built from ``backbone``.
        objective: ``objective(pred, target) -> {"loss", ...}``; default smooth-L1 latent regression.
        regularizer: optional ``regularizer(e (n, D)) -> {"loss", ...}`` on the context encoder's
            output (e.g. VCR as in VJ-VCR), added to the loss; keeps embeddings from collapsing to
            what positions alone predict.
        embed_from: 'target' (the EMA encoder, as I-JEPA evaluates) or 'online'.
        reg_on: what the regulariser sees: 'pooled' (each sample's mean context token, n = B) or
            'tokens' (every context token is a sample, n = B * Nc).
        invariance: optional :class:`~polyjepa.methods.invariance.Invariance`: the data loader draws two
            random views of each image (batch keys ``x`` and ``x2``); the JEPA runs on the first, the
            second is encoded whole, and its mean token is pulled towards the first's mean context
            token by a VICReg term added to the loss.
    A batch is a dict: x (B, ...) raw input, context_idx (B, Nc), target_idx (B, M, Nt) (+ x2 (B, ...)).
    """

    def __init__(self, *, backbone: Backbone, predictor: nn.Module, masker, target: EMATarget,
                 objective: Callable[..., dict] = latent_regression, regularizer: Callable[..., dict] | None = None,
                 embed_from: str = "target", reg_on: str = "pooled", invariance: nn.Module | None = None):
        super().__init__()
        if embed_from not in ("target", "online"):
            raise ValueError(f"embed_from must be 'target' or 'online', got {embed_from!r}")
        if reg_on not in REG_ON:
            raise ValueError(f"reg_on must be 'pooled' or 'tokens', got {reg_on!r}")
        self.reg_on = reg_on
        self.backbone = backbone
        self.predictor = predictor
        self.target = target
        self.masker = masker
        self.objective, self.regularizer, self.embed_from = objective, regularizer, embed_from
        self.invariance = invariance
        if invariance is not None and not hasattr(type(self), "make_batch"):
            # the data loader then calls make_batch (masks + second view) instead of the masker; a subclass
            # with its own make_batch (point clouds) draws the views there
            self.make_batch = self._batch_with_view

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, context_idx, target_idx = batch["x"], batch["context_idx"], batch["target_idx"]
        h = gather_tokens(self.target(x), target_idx)            # (B, M, Nt, D), no gradient
        z = self.backbone(x, keep_idx=context_idx)                # (B, Nc, D): context tokens only
        p = self.predictor(z, context_idx, target_idx)            # (B, M, Nt, D)
        out = self.add_regularizer(self.objective(p, h), z)
        return self.add_invariance(out, z, batch["x2"], x) if self.invariance is not None else out

    def add_invariance(self, out: dict[str, torch.Tensor], z: torch.Tensor, view2, view1=None) -> dict[str, torch.Tensor]:
        """``out`` plus the invariance term between the mean context token of ``z`` (B, N, D) and the
        mean token of the backbone on the second view ``view2`` (whatever the backbone takes); with
        ``invariance.views`` = k > 1, ``view2`` is a (B, k, ...) tensor of whole views; with
        ``invariance.first='whole'`` the whole first view ``view1`` replaces the context tokens."""
        whole_first = self.invariance.first == "whole"
        if whole_first and view1 is None:
            raise ValueError("invariance.first='whole' needs the first view: pass view1")
        views = ([view1] if whole_first else []) + (list(view2.unbind(1)) if self.invariance.views > 1 else [view2])
        inv = self.invariance(*([] if whole_first else [z.mean(1)]), *self._whole_embeddings(views))
        return {**out, "loss": out["loss"] + inv["loss"], **{f"inv_{k}": v for k, v in inv.items()}}

    def _whole_embeddings(self, views: list) -> list[torch.Tensor]:
        """Mean token of the backbone on each whole view; tensors of one shape go through in one batch."""
        if len(views) > 1 and all(torch.is_tensor(v) and v.shape == views[0].shape for v in views):
            return list(self.backbone(torch.cat(views)).mean(1).chunk(len(views)))
        return [self.backbone(v).mean(1) for v in views]

    def _batch_with_view(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        """``make_batch`` of a JEPA with an invariance term: two views of ``x`` (masks for the first)."""
        x1 = self.invariance.view(x, generator)
        k = self.invariance.views
        x2 = (self.invariance.view(x, generator) if k == 1
              else torch.stack([self.invariance.view(x, generator) for _ in range(k)], 1))
        context_idx, target_idx = draw_masks(self.masker, x1, generator, progress)
        return {"x": x1, "x2": x2, "context_idx": context_idx, "target_idx": target_idx}

    def add_regularizer(self, out: dict[str, torch.Tensor], z: torch.Tensor) -> dict[str, torch.Tensor]:
        """``out`` plus the regulariser on the context embedding ``z`` (B, N, D) (see ``reg_on``), if there is one."""
        if self.regularizer is None:
            return out
        reg = self.regularizer(regularizer_rows(z, self.reg_on))  # batch statistics over every process
        return {**out, "loss": out["loss"] + reg["loss"], **{f"reg_{k}": v for k, v in reg.items()}}

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.predictor] + ([self.invariance] if self.invariance is not None else [])

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float | None:
        return self.target.update(self.backbone, step, total_steps)

    def encoder(self) -> Backbone:
        """The backbone whose embeddings are evaluated and exported."""
        return self.target.model if self.embed_from == "target" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """(B, ...) -> (B, F) pooled features of the evaluated encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)
