"""seq-JEPA: aggregate a sequence of views and the actions between them, predict the next view's embedding."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.encoder import Backbone
from ..models.transformer import Block, init_weights, require_positive
from ..targets.ema import EMATarget
from .actions import ImageActions


class SeqJEPA(nn.Module):
    """seq-JEPA (Ghaemi et al., NeurIPS 2025) on images.

    Each image gives ``seq_len`` + 1 views ``actions.apply(x, u_i)``; the last one is the target. The
    relative action between consecutive views, ``u_{i+1} - u_i``, is projected (a bias-free linear
    map and an affine-free batch norm) and concatenated to each view's embedding (the mean token of
    the online backbone); the last slot, whose next view is the target, gets zeros. An aggregator (a
    learned AGG token, slot positions, ``agg_depth`` transformer blocks) reads the sequence; its AGG
    output and the projected action from the last view to the target go through an MLP predictor
    to the EMA encoder's embedding of the target view. Loss ``1 - cos``.

    The per-view embedding (``embed``) should carry the transform (equivariant), the AGG output the
    object (invariant). ``withhold_action`` gives the aggregator and predictor zeros for every action.

    Args:
        backbone: tokenizer + encoder of one view; target: its EMA copy (``normalize='none'``).
        actions: the :class:`ImageActions` that make the views.
        seq_len: views aggregated before the target (the paper: 3).
        action_width: width of the projected action (the paper: 128).
        agg_depth, agg_heads: the aggregator's transformer; pred_hidden: the predictor MLP's hidden width.
        embed_from: 'target' or 'online' encoder for evaluation and export.
    A batch (``make_batch``): x (B, C, H, W), views (B, V, C, H, W) with V = seq_len + 1, action (B, V, A).
    """

    def __init__(self, *, backbone: Backbone, target: EMATarget, actions: ImageActions, seq_len: int = 3,
                 action_width: int = 32, agg_depth: int = 2, agg_heads: int = 4, pred_hidden: int = 512,
                 embed_from: str = "target", withhold_action: bool = False):
        super().__init__()
        require_positive(seq_len=seq_len, action_width=action_width, agg_depth=agg_depth, agg_heads=agg_heads,
                         pred_hidden=pred_hidden)
        if embed_from not in ("target", "online"):
            raise ValueError(f"embed_from must be 'target' or 'online', got {embed_from!r}")
        D = backbone.dim
        self.backbone, self.target, self.actions = backbone, target, actions
        self.seq_len, self.embed_from, self.withhold_action = seq_len, embed_from, withhold_action
        self.action_proj = nn.Sequential(nn.Linear(actions.dim, action_width, bias=False),
                                         nn.BatchNorm1d(action_width, affine=False))
        self.agg_in = nn.Linear(D + action_width, D)
        self.agg_token = nn.Parameter(torch.zeros(1, 1, D))
        self.slot_pos = nn.Parameter(torch.zeros(1, seq_len + 1, D))
        self.agg_blocks = nn.ModuleList([Block(D, agg_heads) for _ in range(agg_depth)])
        self.agg_norm = nn.LayerNorm(D, eps=1e-6)
        self.predictor = nn.Sequential(nn.Linear(D + action_width, pred_hidden), nn.BatchNorm1d(pred_hidden),
                                       nn.ReLU(), nn.Linear(pred_hidden, D))
        init_weights(self.agg_blocks, self.agg_blocks)
        nn.init.trunc_normal_(self.agg_token, std=0.02)
        nn.init.trunc_normal_(self.slot_pos, std=0.02)
        self.masker = None  # batches come from make_batch

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        B, V = len(x), self.seq_len + 1
        u = self.actions.draw(B * V, generator)
        views = self.actions.apply(x.repeat_interleave(V, 0), u)
        return {"x": x, "views": views.view(B, V, *x.shape[1:]), "action": u.view(B, V, -1)}

    def _project(self, rel: torch.Tensor) -> torch.Tensor:
        """(B, S, A) relative actions -> (B, S, Aw) (zeros when the action is withheld)."""
        if self.withhold_action:
            rel = torch.zeros_like(rel)
        B, S, A = rel.shape
        return self.action_proj(rel.reshape(B * S, A)).view(B, S, -1)

    def aggregate(self, emb: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(AGG (B, D), projected last-to-target action (B, Aw)) from view embeddings (B, S, D) and the
        absolute actions (B, S + 1, A) of the S views and the target."""
        rel = self._project(action[:, 1:] - action[:, :-1])              # (B, S, Aw): view i -> view i + 1
        slots = torch.cat([rel[:, :-1], torch.zeros_like(rel[:, -1:])], 1)  # the last slot's next view is the target
        tokens = self.agg_in(torch.cat([emb, slots], -1))                    # (B, S, D)
        x = torch.cat([self.agg_token.expand(len(emb), -1, -1), tokens], 1) + self.slot_pos[:, :emb.shape[1] + 1]
        for block in self.agg_blocks:
            x = block(x)
        return self.agg_norm(x[:, 0]), rel[:, -1]

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        views, action = batch["views"], batch["action"]
        B, V = views.shape[:2]
        S = V - 1
        emb = self.backbone(views[:, :S].flatten(0, 1)).mean(1).view(B, S, -1)  # (B, S, D) online
        with torch.no_grad():
            h = self.target(views[:, S]).mean(1)                               # (B, D) EMA, no gradient
        agg, last = self.aggregate(emb, action)
        p = self.predictor(torch.cat([agg, last], -1))
        loss = (1 - F.cosine_similarity(p.float(), h.float(), dim=-1)).mean()
        return {"loss": loss, "pred_std": p.detach().std(0).mean(), "target_std": h.std(0).mean()}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def trainable_modules(self) -> list[nn.Module]:
        return [self]  # the EMA target's parameters do not require gradients, so the optimiser skips them

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float | None:
        return self.target.update(self.backbone, step, total_steps)

    def encoder(self) -> Backbone:
        return self.target.model if self.embed_from == "target" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """(B, ...) -> (B, F) per-view features of the evaluated encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)

    @torch.no_grad()
    def embed_sequence(self, views: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B, D) AGG representation of ``views`` (B, S, C, H, W) with absolute actions (B, S + 1, A)
        (the last action is the next view's; only differences are read). Uses the online backbone,
        which the aggregator was trained on."""
        B, S = views.shape[:2]
        emb = self.backbone(views.flatten(0, 1)).mean(1).view(B, S, -1)
        return self.aggregate(emb, action)[0]


def assemble_seqjepa(cfg, input_shape: tuple[int, ...], meta: dict) -> SeqJEPA:
    """Backbone + EMA target + image actions -> SeqJEPA."""
    from ..build import build_backbone, data_facts, inject
    from ..config import part_kwargs
    from ..errors import UserError
    from ..registry import build_part

    if len(input_shape) != 3:
        raise UserError(f"seq_jepa transforms images: the data have per-sample shape {tuple(input_shape)}, not (C, H, W)")
    backbone = build_backbone(cfg, input_shape, meta)
    facts = data_facts(input_shape, meta, online=backbone)
    target = build_part("target", cfg, part_kwargs(cfg, "target"), **inject("target", cfg, facts))
    actions = build_part("actions", cfg, part_kwargs(cfg, "actions")) if cfg.get("actions") else ImageActions()
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, target=target, actions=actions)
