"""IWM: an image world model, predicting the target view's features from the source view and the action."""
from __future__ import annotations

from typing import Callable

import torch

from ..data.batches import draw_masks
from ..methods.jepa import JEPA
from ..models.conditioned import ConditionedPredictor
from ..models.encoder import Backbone
from ..models.transformer import gather_tokens
from ..targets.ema import EMATarget
from .actions import ImageActions
from .retrieval import rank_of_true


class IWM(JEPA):
    """Image World Model (Garrido et al., 2024): JEPA between two views that differ by a known transform.

    Each image x is the source view; the target view is ``actions.apply(x, u)`` for a random action u
    (rotation, zoom, shift, brightness, contrast). The online encoder sees the source's context
    tokens (multi-block masking, target blocks removed); the predictor, given u, predicts the EMA
    encoder's features of the *target view* at the target blocks. ``withhold_action`` trains the same
    predictor with u replaced by zeros: the ablation that is not told what happened.

    Args:
        backbone, masker, target, objective, regularizer, embed_from, reg_on: as in :class:`JEPA`.
        predictor: a :class:`ConditionedPredictor` with ``cond_dim = actions.dim``.
        actions: the :class:`ImageActions` that make target views.
        withhold_action: give the predictor zeros instead of the action.
    A batch (from ``make_batch``): x (B, C, H, W) source, target_x the target view, action (B, A),
    context_idx (B, Nc), target_idx (B, M, Nt).
    """

    def __init__(self, *, backbone: Backbone, predictor: ConditionedPredictor, masker, target: EMATarget,
                 actions: ImageActions, objective: Callable[..., dict], regularizer: Callable[..., dict] | None = None,
                 embed_from: str = "target", reg_on: str = "pooled", withhold_action: bool = False):
        if not isinstance(predictor, ConditionedPredictor) or predictor.predict_at != "targets":
            raise ValueError("iwm needs the conditioned predictor that predicts target blocks: "
                             "set predictor.name=conditioned (predict_at: targets)")
        if predictor.cond_dim != actions.dim:
            raise ValueError(f"the predictor reads conditions of width {predictor.cond_dim} but an action has "
                             f"{actions.dim} numbers: set predictor.cond_dim={actions.dim}")
        super().__init__(backbone=backbone, predictor=predictor, masker=masker, target=target, objective=objective,
                         regularizer=regularizer, embed_from=embed_from, reg_on=reg_on)
        self.actions, self.withhold_action = actions, withhold_action

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        u = self.actions.draw(len(x), generator)
        context_idx, target_idx = draw_masks(self.masker, x, generator, progress)
        return {"x": x, "target_x": self.actions.apply(x, u), "action": u, "context_idx": context_idx,
                "target_idx": target_idx}

    def condition(self, action: torch.Tensor) -> torch.Tensor:
        """What the predictor is told: the action, or zeros of its shape when it is withheld."""
        return torch.zeros_like(action) if self.withhold_action else action

    def predict(self, x: torch.Tensor, action: torch.Tensor, context_idx: torch.Tensor,
                target_idx: torch.Tensor) -> torch.Tensor:
        """(B, M, Nt, D) predicted target-view features at ``target_idx`` after ``action`` on ``x``'s context."""
        z = self.backbone(x, keep_idx=context_idx)
        return self.predictor(z, context_idx, target_idx, cond=self.condition(action.to(z.dtype)))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        context_idx, target_idx = batch["context_idx"], batch["target_idx"]
        h = gather_tokens(self.target(batch["target_x"]), target_idx)     # (B, M, Nt, D), no gradient
        z = self.backbone(batch["x"], keep_idx=context_idx)                # (B, Nc, D)
        p = self.predictor(z, context_idx, target_idx, cond=self.condition(batch["action"].to(z.dtype)))
        return self.add_regularizer(self.objective(p, h), z)

    @torch.no_grad()
    def action_ranks(self, x: torch.Tensor, generator: torch.Generator, candidates: int = 16) -> torch.Tensor:
        """(B,) rank of the true outcome among ``candidates`` transforms of each image (IWM's retrieval).

        For each image, ``candidates`` actions are drawn; the prediction for the first (from the source's
        context, masks from ``generator``) is compared by squared distance with the EMA encoder's
        features of all ``candidates`` target views at the same target blocks.
        """
        B = len(x)
        u = self.actions.draw(B * candidates, generator).view(B, candidates, -1)
        context_idx, target_idx = draw_masks(self.masker, x, generator)
        p = self.predict(x, u[:, 0], context_idx, target_idx).flatten(1)                     # (B, F)
        views = self.actions.apply(x.repeat_interleave(candidates, 0), u.flatten(0, 1))      # (B*K, C, H, W)
        h = gather_tokens(self.target(views), target_idx.repeat_interleave(candidates, 0))   # (B*K, M, Nt, D)
        dist = (h.view(B, candidates, -1) - p[:, None]).square().sum(-1)                     # (B, K)
        return rank_of_true(dist, 0)


def assemble_iwm(cfg, input_shape: tuple[int, ...], meta: dict) -> IWM:
    """Backbone + conditioned predictor (told the actions' width) + masker + EMA target + actions -> IWM."""
    from ..build import build_backbone, jepa_parts
    from ..config import part_kwargs
    from ..errors import UserError
    from ..registry import build_part, part_name

    backbone = build_backbone(cfg, input_shape, meta)
    if len(input_shape) != 3:
        raise UserError(f"iwm transforms images: the data have per-sample shape {tuple(input_shape)}, not (C, H, W)")
    actions = build_part("actions", cfg, part_kwargs(cfg, "actions")) if cfg.get("actions") else ImageActions()
    if part_name("predictor", cfg) != "conditioned":
        raise UserError(f"iwm tells its predictor the action: set predictor.name=conditioned, not "
                        f"{part_name('predictor', cfg)!r}")
    width = part_kwargs(cfg, "predictor").get("cond_dim", actions.dim)
    if width != actions.dim:
        raise UserError(f"predictor.cond_dim={width} but an action has {actions.dim} numbers "
                        f"({', '.join(actions.NAMES)}): set predictor.cond_dim={actions.dim} or drop it")
    parts = jepa_parts(cfg, backbone, input_shape, meta, ("masker", "target"))
    tok = backbone.tokenizer
    pred_kwargs = {**part_kwargs(cfg, "predictor"), "cond_dim": actions.dim}
    predictor = build_part("predictor", cfg, pred_kwargs, in_dim=backbone.dim,
                           pos_embed=tok.position_embedding(pred_kwargs.get("dim", backbone.dim)))
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, predictor=predictor,
                      actions=actions, **parts)
