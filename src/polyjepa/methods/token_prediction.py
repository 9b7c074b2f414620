"""Masked token prediction: predict the discrete ids of the masked tokens (one classifier per codebook)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from ..models.encoder import Backbone
from ..models.transformer import gather_tokens
from .jepa import JEPA


def codebook_cross_entropy(logits: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over codebooks of the cross-entropy of (..., C, K) logits against (..., C) int64 ids.

    Returns {"loss", "ce_<c>" per codebook, "acc_1" (top-1 accuracy of the first codebook)}.
    """
    C, K = logits.shape[-2:]
    flat = logits.reshape(-1, C, K).float()            # upcast: the softmax over K codes in fp32
    tgt = ids.reshape(-1, C)
    per = torch.stack([F.cross_entropy(flat[:, c], tgt[:, c]) for c in range(C)])
    out = {"loss": per.mean(), **{f"ce_{c + 1}": per[c].detach() for c in range(C)}}
    out["acc_1"] = (flat[:, 0].argmax(-1) == tgt[:, 0]).float().mean().detach()
    return out


class TokenPrediction(JEPA):
    """Masked prediction of discrete targets (MuQ's objective on Mel-RVQ tokens, HuBERT/BEST-RQ style).

    The context encoder sees the context tokens; the predictor produces a feature at every target
    position; a linear head per codebook turns it into logits over that codebook's codes; the loss is
    the cross-entropy against the target's ids (``target(x)`` -> (B, N, C), e.g. :class:`RVQTarget`),
    averaged over codebooks. There is no teacher to update, so the evaluated encoder is the online one.

    Args:
        backbone, predictor, masker, regularizer, reg_on: as in JEPA.
        target: a frozen discrete target with ``n_codebooks``, ``n_codes`` and (optionally) ``fit(x, seed=)``.
    A batch is a dict: x (B, ...), context_idx (B, Nc), target_idx (B, M, Nt).
    """

    def __init__(self, *, backbone: Backbone, predictor: nn.Module, masker, target: nn.Module,
                 regularizer: Callable[..., dict] | None = None, reg_on: str = "pooled", embed_from: str = "online"):
        if embed_from != "online":
            raise ValueError("token prediction has no teacher encoder: set method.embed_from=online")
        super().__init__(backbone=backbone, predictor=predictor, masker=masker, target=target,
                         objective=codebook_cross_entropy, regularizer=regularizer, embed_from="online", reg_on=reg_on)
        width = predictor.proj.out_features if hasattr(predictor, "proj") else backbone.dim
        self.heads = nn.Linear(width, target.n_codebooks * target.n_codes)

    def fit_targets(self, x, *, seed: int = 0) -> None:
        """Fit the target (e.g. the quantiser's codebooks) on the training inputs; the trainer calls this once."""
        if hasattr(self.target, "fit"):
            self.target.fit(x, seed=seed)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, context_idx, target_idx = batch["x"], batch["context_idx"], batch["target_idx"]
        ids = gather_tokens(self.target(x), target_idx)                # (B, M, Nt, C), no gradient
        z = self.backbone(x, keep_idx=context_idx)                     # (B, Nc, D)
        p = self.predictor(z, context_idx, target_idx)                 # (B, M, Nt, D)
        logits = self.heads(p).unflatten(-1, (self.target.n_codebooks, self.target.n_codes))
        return self.add_regularizer(self.objective(logits, ids), z)

    def trainable_modules(self) -> list[nn.Module]:
        return super().trainable_modules() + [self.heads]


def assemble_token_prediction(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> TokenPrediction:
    """Backbone + predictor + masker + discrete target (+ regulariser) -> TokenPrediction."""
    from ..build import build_backbone, jepa_parts
    from ..config import part_kwargs
    from ..errors import UserError
    from ..registry import build_part

    backbone = build_backbone(cfg, input_shape, meta)
    if cfg.get("objective") is not None:
        raise UserError("token prediction's loss is the cross-entropy per codebook: drop the objective section")
    parts = jepa_parts(cfg, backbone, input_shape, meta, objective=False)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, **parts)
