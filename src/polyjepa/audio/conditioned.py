"""Conditioned prediction (Stem-JEPA style): predict one clip's features from a mixture, given which clip."""
from __future__ import annotations

from typing import Callable

import torch

from ..models.conditioned import ConditionedPredictor
from ..models.encoder import Backbone
from ..models.transformer import require_positive
from ..methods.jepa import JEPA
from ..targets.ema import EMATarget


def stem_predictor(*, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor,
                   n_conditions: int = 2, mlp_ratio: float = 4.0) -> ConditionedPredictor:
    """The Stem-JEPA predictor (Riou et al., ISMIR 2024): the core conditioned predictor over all context
    tokens with one prepended condition token from an id table, one prediction per token position.

    ``n_conditions`` ids (an instrument, which clip); 1 = no information (the ablation without a condition).
    Shapes: ``predictor(z (B, N, D), cond=(B,) int64)`` -> (B, N, D).
    """
    require_positive(n_conditions=n_conditions)
    return ConditionedPredictor(in_dim=in_dim, dim=dim, depth=depth, heads=heads, pos_embed=pos_embed,
                                n_conditions=n_conditions, inject="tokens", predict_at="tokens", mlp_ratio=mlp_ratio)


class ConditionedJEPA(JEPA):
    """Predict the target encoder's features of one part of the input from the whole, given a condition.

    A batch (from ``make_batch``) holds x (the mixture the online encoder sees), target_x (the
    part whose EMA features are the target) and cond (B,) (which part). Loss: ``objective`` on every
    token, plus the optional ``regularizer`` on the pooled online embedding of the mixture.

    Args:
        backbone, predictor (a ConditionedPredictor with predict_at='tokens', e.g. ``stem_predictor``),
        target (EMA of backbone), objective,
        regularizer, embed_from: as in JEPA; make_batch: ``make_batch(x, generator, progress) -> dict``
        (e.g. TwoClipMixer), used by the data loader instead of a masker.
    """

    def __init__(self, *, backbone: Backbone, predictor: ConditionedPredictor, target: EMATarget,
                 make_batch: Callable, objective: Callable[..., dict], regularizer: Callable[..., dict] | None = None,
                 embed_from: str = "target"):
        if getattr(predictor, "predict_at", "tokens") != "tokens":
            raise ValueError("conditioned_jepa predicts a part of the input at every token: set predictor.predict_at=tokens")
        super().__init__(backbone=backbone, predictor=predictor, masker=None, target=target, objective=objective,
                         regularizer=regularizer, embed_from=embed_from)
        self.make_batch = make_batch

    def predict(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, N, D) predicted target features of part ``cond`` of mixtures ``x``."""
        return self.predictor(self.backbone(x), cond=cond)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.target(batch["target_x"])                        # (B, N, D), no gradient
        z = self.backbone(batch["x"])                              # (B, N, D)
        return self.add_regularizer(self.objective(self.predictor(z, cond=batch["cond"]), h), z)


def assemble_conditioned(cfg, input_shape: tuple[int, ...], meta: dict) -> ConditionedJEPA:
    """Backbone + conditioned predictor + EMA target + objective (+ regulariser) + two-clip mixer.

    The recipe's ``mixer`` section gives the TwoClipMixer's arguments; the data's normalisation
    statistics (``meta`` mean/std of the ``audio`` loader) are injected.
    """
    from ..build import build_backbone, jepa_parts
    from ..config import part_kwargs
    from ..errors import UserError
    from ..registry import build_part

    if meta.get("mean") is None:
        raise UserError("conditioned audio prediction mixes clips on the log-mel scale: use data.loader=audio")
    backbone = build_backbone(cfg, input_shape, meta)
    parts = jepa_parts(cfg, backbone, input_shape, meta, ("predictor", "target", "mixer"),
                       mean=meta["mean"], std=meta["std"])
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, make_batch=parts.pop("mixer"),
                      **parts)
