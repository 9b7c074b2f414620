"""VJ-VCR: predict the representation of future frames from past frames, one shared encoder, VCR against collapse."""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from ..methods.jepa import REG_ON, regularizer_rows
from ..objectives.latent import latent_regression
from .backbone import VideoBackbone
from .predictor import MultiMaskPredictor

LATENTS = ("none", "sampled", "inferred")


class VJVCR(nn.Module):
    """Video JEPA with variance-covariance regularisation (Drozdov, Shwartz-Ziv, LeCun, 2024).

    The first ``context_slots`` time slots of the token grid are the past, the rest the future.
    One encoder embeds the past tokens and, separately, the future tokens; the predictor turns the
    past into the future's token features (mask tokens at the future positions). The prediction
    target is the shared encoder's output with the gradient stopped (the objective detaches it);
    collapse is prevented by ``regularizer`` (VCR) on the pooled past and the pooled future
    embeddings, both of which carry gradients. No EMA teacher.

    Latent variable (for non-deterministic futures), added to every mask token:
        'none'; 'sampled': z ~ N(0, I) per clip; 'inferred': z = mu + sigma * eps with (mu, log sigma^2)
        read from the pooled future embedding (stop-grad) and a KL(q || N(0, I)) penalty of weight
        ``latent_kl`` that limits how much of the future it can carry.

    Args:
        backbone: tokenizer (with a (T, H, W) grid) + encoder.
        predictor: :class:`MultiMaskPredictor` with ``cond_dim = latent_dim`` (0 without a latent).
        objective: ``objective(pred, target) -> {"loss", ...}`` (default L2 latent regression).
        regularizer: ``regularizer(e (n, D)) -> {"loss", ...}``, applied to the past and the future embeddings.
        reg_on: 'pooled' (the regulariser sees each clip's mean token, n = B) or 'tokens' (every token
            is a sample, n = B * tokens, as VCR regularises a feature map's channels at every location).
        stop_grad: treat the future's features as a constant target (True) or let the prediction
            error train the future's encoding too (False; collapse is then held off by the regulariser alone).
    A batch is a dict: x (B, C, T, H, W) and, with a latent, noise (B, latent_dim).
    """

    def __init__(self, *, backbone: VideoBackbone, predictor: MultiMaskPredictor, context_slots: int,
                 objective: Callable[..., dict] | None = None, regularizer: Callable[..., dict] | None = None,
                 latent: str = "none", latent_dim: int = 0, latent_kl: float = 1.0, reg_on: str = "pooled",
                 stop_grad: bool = True):
        super().__init__()
        T = backbone.tokenizer.grid[0]
        if not 1 <= context_slots < T:
            raise ValueError(f"context_slots must leave past and future time slots: 1 <= context_slots < {T} "
                             f"(the clip has {T} tubelet slots): "
                             + (f"set method.context_slots to {T // 2}" if T >= 2 else "use longer clips"))
        if latent not in LATENTS:
            raise ValueError(f"unknown latent {latent!r}: use one of {', '.join(LATENTS)}")
        if reg_on not in REG_ON:
            raise ValueError(f"reg_on must be 'pooled' or 'tokens', got {reg_on!r}")
        if (latent == "none") != (latent_dim == 0):
            raise ValueError(f"latent={latent!r} needs latent_dim {'0' if latent == 'none' else '> 0'}, got {latent_dim}")
        self.backbone, self.predictor = backbone, predictor
        backbone.split_slots = context_slots  # whole clips are embedded as past and future apart, as trained
        self.objective = objective or functools.partial(latent_regression, kind="l2")
        self.regularizer = regularizer
        self.latent, self.latent_dim, self.latent_kl = latent, latent_dim, latent_kl
        self.reg_on, self.stop_grad = reg_on, stop_grad
        self.infer = nn.Linear(backbone.dim, 2 * latent_dim) if latent == "inferred" else None
        per_slot = backbone.tokenizer.num_tokens // T
        self.register_buffer("context_idx", torch.arange(context_slots * per_slot)[None], persistent=False)
        self.register_buffer("target_idx", torch.arange(context_slots * per_slot, T * per_slot)[None], persistent=False)
        self.masker = None  # batches come from make_batch

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        batch = {"x": x}
        if self.latent_dim:
            batch["noise"] = torch.randn(len(x), self.latent_dim, generator=generator)
        return batch

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["x"]
        B = len(x)
        tokens = self.backbone.tokenizer(x)                                        # (B, N, D)
        context_idx, target_idx = self.context_idx.expand(B, -1), self.target_idx.expand(B, -1)
        z_past = self.backbone.encoder(tokens, context_idx)                        # (B, Nc, D)
        z_future = self.backbone.encoder(tokens, target_idx)                       # (B, Nt, D)
        cond, extra = None, {}
        if self.latent == "sampled":
            cond = batch["noise"].to(z_past.dtype)
        elif self.latent == "inferred":
            mu, logvar = self.infer(z_future.detach().mean(1)).chunk(2, dim=1)
            cond = mu + torch.exp(0.5 * logvar) * batch["noise"].to(mu.dtype)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
            extra = {"latent_kl": kl}
        p = self.predictor(z_past, context_idx, target_idx[:, None], cond=cond)    # (B, 1, Nt, D)
        out = dict(self.objective(p, z_future[:, None]))
        if not self.stop_grad:  # objectives detach their target; add the gradient towards the future, same value
            back = self.objective(z_future[:, None], p.detach())["loss"]
            out["loss"] = out["loss"] + back - back.detach()
        if extra:
            out.update(extra, loss=out["loss"] + self.latent_kl * extra["latent_kl"])
        if self.regularizer is not None:
            r_past = self.regularizer(regularizer_rows(z_past, self.reg_on))
            r_future = self.regularizer(regularizer_rows(z_future, self.reg_on))
            out.update({f"reg_{n}": (r_past[n] + r_future[n]) / 2 for n in r_past},
                       loss=out["loss"] + (r_past["loss"] + r_future["loss"]) / 2)
        return out

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.predictor] + ([self.infer] if self.infer is not None else [])

    def update_target(self, step: int, total_steps: int) -> None:
        return None  # no teacher

    def encoder(self) -> VideoBackbone:
        return self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        return self.backbone.embed(x, pool=pool, layers=layers)
