"""MultiView: views -> encoder -> projector -> objective (SimCLR, Barlow Twins, VICReg, TiCo, INTL, DINO, LeJEPA)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models.encoder import Backbone
from ..timeseries.views import SeriesViews
from ..targets.ema import ema_update, momentum_at


def encode_any_size(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, N, D) tokens of views of any size that is a multiple of the patch size.

    Views of the tokenizer's own size go through it unchanged; other sizes (local crops) reuse its
    patch projection with its fixed positions resampled to the smaller grid (bicubic, as DINO does).
    """
    tok = backbone.tokenizer
    if tuple(x.shape[-2:]) == tuple(getattr(tok, "image_size", x.shape[-2:])):
        return backbone(x)
    grid = (x.shape[-2] // tok.patch_size, x.shape[-1] // tok.patch_size)
    pos = tok.pos_embed.reshape(1, *tok.grid, -1).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    tokens = tok.proj(x).flatten(2).transpose(1, 2) + pos
    return backbone.encoder(tokens)


class MultiView(nn.Module):
    """A joint-embedding method on several augmented views of each sample.

    Args:
        backbone: tokenizer + encoder; views are mean-pooled over tokens.
        projector: (B, D) -> (B, P) head (an MLP, or DINO's prototype head).
        criterion: ``criterion(z (V, B, P), n_global=, step=, progress=, teacher=, features=) -> dict``
            (see ``polyjepa.multiview.criteria``).
        views: ``views(x, generator) -> {"global": (Vg, B, ...), "local": (Vl, B, ...)}``.
        teacher_momentum: (start, end) of a cosine EMA schedule for a teacher copy of backbone and
            projector (DINO); None: no teacher (LeJEPA, VICReg, ...), and ``update_target`` only counts steps.
        embed_from: 'online' or 'teacher' (the encoder that is evaluated and exported).
        pool: how a view's tokens become the vector the projector sees: 'mean' (images, and series)
            or 'max' (series, TS2Vec's instance read-out); series views go through the backbone's
            padding-aware ``embed``.
    A batch (made by :meth:`make_batch` in the data loader) is {"x", "global", "local"?}.
    """

    def __init__(self, *, backbone: Backbone, projector: nn.Module, criterion: nn.Module, views,
                 teacher_momentum: tuple[float, float] | None = None, embed_from: str = "online",
                 pool: str = "mean"):
        super().__init__()
        if pool not in ("mean", "max") or (pool != "mean" and not isinstance(views, SeriesViews)):
            raise ValueError(f"pool must be 'mean' (any views) or 'max' (series views), got {pool!r}")
        self.pool = pool
        if embed_from not in ("online", "teacher") or (embed_from == "teacher" and teacher_momentum is None):
            raise ValueError(f"embed_from must be 'online', or 'teacher' with a teacher_momentum; got {embed_from!r}")
        if getattr(criterion, "uses_teacher", False) and teacher_momentum is None:
            raise ValueError("this objective needs a teacher: set method.teacher_momentum, e.g. [0.992, 1.0]")
        self.backbone, self.projector, self.criterion, self.views = backbone, projector, criterion, views
        self.embed_from = embed_from
        self.teacher_momentum = tuple(teacher_momentum) if teacher_momentum is not None else None
        self.teacher = None
        if self.teacher_momentum is not None:
            self.teacher = nn.ModuleDict({"backbone": copy.deepcopy(backbone), "projector": copy.deepcopy(projector)})
            self.teacher.requires_grad_(False)
        # Training step and progress, identical on every process; saved with the weights for resume.
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("progress", torch.zeros(()))

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float) -> dict[str, torch.Tensor]:
        return {"x": x, **self.views(x, generator)}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def _pooled(self, backbone: Backbone, views: torch.Tensor) -> torch.Tensor:
        v, b = views.shape[:2]
        flat = views.flatten(0, 1)
        if flat.dim() == 3:  # series (V*B, C, L), NaN-padded crops
            return backbone.embed(flat, pool=self.pool).unflatten(0, (v, b))
        return encode_any_size(backbone, flat).mean(1).unflatten(0, (v, b))  # (V, B, D)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        groups = [batch["global"]] + ([batch["local"]] if "local" in batch else [])
        n_global = batch["global"].shape[0]
        feats = torch.cat([self._pooled(self.backbone, g) for g in groups])           # (V, B, D)
        z = self.projector(feats.flatten(0, 1)).unflatten(0, feats.shape[:2])          # (V, B, P)
        teacher = None
        if self.teacher is not None:
            with torch.no_grad():
                tf = self._pooled(self.teacher["backbone"], batch["global"])
                teacher = self.teacher["projector"](tf.flatten(0, 1)).unflatten(0, tf.shape[:2])
        out = self.criterion(z, n_global=n_global, step=int(self.step), progress=float(self.progress),
                             teacher=teacher, features=feats)
        with torch.no_grad():  # collapse monitors: mean per-feature std over the batch
            out["feature_std"] = feats[0].float().std(0).mean()
            out["projection_std"] = z[0].float().std(0).mean()
        return out

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.projector]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float | None:
        """After optimizer step ``step``: advance the step counter; EMA-update the teacher if there is one."""
        self.step.fill_(step + 1)
        self.progress.fill_(min((step + 1) / max(total_steps, 1), 1.0))
        if self.teacher is None:
            return None
        m = momentum_at(step, total_steps, *self.teacher_momentum, kind="cosine")
        for name in ("backbone", "projector"):
            t_params = list(self.teacher[name].parameters())
            ema_update(t_params, [p.detach() for p in getattr(self, name).parameters()], m)
        return m

    def encoder(self) -> Backbone:
        return self.teacher["backbone"] if self.embed_from == "teacher" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        return self.encoder().embed(x, pool=pool, layers=layers)
