"""Conditioned prediction (Stem-JEPA style): predict one clip's features from a mixture, given which clip."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..models.encoder import Backbone
from ..models.transformer import Block, init_weights, require_positive
from ..methods.jepa import JEPA
from ..targets.ema import EMATarget


class ConditionedPredictor(nn.Module):
    """A transformer over all context tokens plus one prepended condition token (Riou et al., ISMIR 2024).

    The condition (a class id: instrument, position of a clip, ...) is a learned embedding; the
    output keeps one prediction per token position (the condition token is dropped).

    Args:
        in_dim: encoder width D; dim: predictor width Dp; depth, heads: its transformer.
        pos_embed: (N, Dp) fixed positions of the token grid.
        n_conditions: number of condition ids (1 = no information: the ablation without a condition).
    Shapes:
        forward(z (B, N, D), cond (B,) int64) -> (B, N, D).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor,
                 n_conditions: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        require_positive(dim=dim, depth=depth, heads=heads, n_conditions=n_conditions)
        self.n_conditions = n_conditions
        self.embed = nn.Linear(in_dim, dim)
        self.condition = nn.Embedding(n_conditions, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, in_dim)
        self.register_buffer("pos_embed", pos_embed.clone(), persistent=False)
        init_weights(self, self.blocks)
        nn.init.trunc_normal_(self.condition.weight, std=0.02)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = cond.clamp(max=self.n_conditions - 1)              # a 1-condition predictor ignores the id
        x = self.embed(z) + self.pos_embed.to(z.dtype)            # (B, N, Dp)
        x = torch.cat([self.condition(cond)[:, None], x], dim=1)  # (B, 1 + N, Dp)
        for block in self.blocks:
            x = block(x)
        return self.proj(self.norm(x[:, 1:]))                     # (B, N, D)


class ConditionedJEPA(JEPA):
    """Predict the target encoder's features of one part of the input from the whole, given a condition.

    A batch (from ``make_batch``) holds x (the mixture the online encoder sees), target_x (the
    part whose EMA features are the target) and cond (B,) (which part). Loss: ``objective`` on every
    token, plus the optional ``regularizer`` on the pooled online embedding of the mixture.

    Args:
        backbone, predictor (a ConditionedPredictor), target (EMA of backbone), objective,
        regularizer, embed_from: as in JEPA; make_batch: ``make_batch(x, generator, progress) -> dict``
        (e.g. TwoClipMixer), used by the data loader instead of a masker.
    """

    def __init__(self, *, backbone: Backbone, predictor: ConditionedPredictor, target: EMATarget,
                 make_batch: Callable, objective: Callable[..., dict], regularizer: Callable[..., dict] | None = None,
                 embed_from: str = "target"):
        super().__init__(backbone=backbone, predictor=predictor, masker=None, target=target, objective=objective,
                         regularizer=regularizer, embed_from=embed_from)
        self.make_batch = make_batch

    def predict(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, N, D) predicted target features of part ``cond`` of mixtures ``x``."""
        return self.predictor(self.backbone(x), cond)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.target(batch["target_x"])                        # (B, N, D), no gradient
        z = self.backbone(batch["x"])                              # (B, N, D)
        return self.add_regularizer(self.objective(self.predictor(z, batch["cond"]), h), z)


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
