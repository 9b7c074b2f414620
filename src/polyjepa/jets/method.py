"""J-JEPA: predict the target encoder's embeddings of masked subjets from the rest of the jet."""
from __future__ import annotations

import torch
from torch import nn

from ..targets.ema import EMATarget
from .model import POOLS, JetBackbone, SubjetMasker, SubjetPredictor
from .kinematics import particle_mask


def subjet_means(h: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean token of each target subjet's particles. Shapes: h (B, P, D), labels (B, P), targets (B, M) -> (B, M, D)."""
    member = (labels[:, None, :] == targets[:, :, None]).to(h.dtype)          # (B, M, P)
    return member @ h / member.sum(2, keepdim=True).clamp_min(1)


class JJEPA(nn.Module):
    """J-JEPA (Katel et al., 2024) on particle tokens with subjet masks.

    The online backbone encodes the context particles (those outside the target subjets); the predictor
    turns them plus each target subjet's axis into a predicted embedding; the target is the EMA backbone's
    tokens of the whole jet, averaged over the particles of that subjet; the loss is the squared error
    per feature (L2) averaged over the real targets.

    Args:
        backbone: :class:`JetBackbone`; predictor: :class:`SubjetPredictor`; masker: :class:`SubjetMasker`;
        target: :class:`~polyjepa.targets.ema.EMATarget` of the backbone;
        loss: 'l2' (the paper's) or 'smooth_l1'; embed_from: 'target' or 'online'.
    A batch (``make_batch``) is a dict: x (B, P, 4) and the masker's keys.
    """

    def __init__(self, *, backbone: JetBackbone, predictor: SubjetPredictor, masker: SubjetMasker,
                 target: EMATarget, loss: str = "l2", embed_from: str = "target"):
        super().__init__()
        if loss not in ("l2", "smooth_l1"):
            raise ValueError(f"loss must be 'l2' or 'smooth_l1', got {loss!r}")
        if embed_from not in ("target", "online"):
            raise ValueError(f"embed_from must be 'target' or 'online', got {embed_from!r}")
        self.backbone, self.predictor, self.target, self.masker = backbone, predictor, target, masker
        self.loss_kind, self.embed_from = loss, embed_from

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        return {"x": x, **self.masker(x, generator)}

    def forward(self, batch: dict) -> dict:
        return self.loss(batch)

    def loss(self, batch: dict) -> dict:
        x = batch["x"]
        if "keep" not in batch:  # a batch of jets alone: draw the subjet masks here
            batch = {**batch, **self.masker(x)}
        tv = batch["target_valid"]
        with torch.no_grad():
            h = subjet_means(self.target(x), batch["labels"], batch["targets"])   # (B, M, D)
        z, valid = self.backbone.context(x, batch["keep"])                      # (B, L, D)
        p = self.predictor(z, valid, batch["target_axes"], tv)                   # (B, M, D)
        if self.loss_kind == "l2":
            err = (p - h).pow(2).mean(-1)
        else:
            err = nn.functional.smooth_l1_loss(p, h, reduction="none").mean(-1)
        w = tv.to(err.dtype)
        loss = (err * w).sum() / w.sum().clamp_min(1)
        return {"loss": loss, "target_std": h[tv].std(0).mean().detach() if tv.any() else loss.detach() * 0,
                "context_fraction": (batch["keep"].sum() / particle_mask(x).sum()).detach()}

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.predictor]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        return self.target.update(self.backbone, step, total_steps)

    def encoder(self) -> JetBackbone:
        return self.target.model if self.embed_from == "target" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """(B, P, 4) jets -> (B, F) pooled tokens of the evaluated encoder."""
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r} for jets: use one of mean, max, mean+max")
        return self.encoder().embed(x, pool=pool, layers=layers)
