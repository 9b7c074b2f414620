"""Point-cloud JEPA: the core JEPA with patch centres (data-dependent positions) handed to the predictor."""
from __future__ import annotations

import torch

from ..methods.jepa import JEPA
from ..models.transformer import gather_tokens
from .tokenizer import PointGroups


class PointJEPA(JEPA):
    """JEPA for point clouds (Point-JEPA, 3D-JEPA): same parts and EMA target as the core JEPA.

    Differences: positions are patch centres that depend on the cloud, so the predictor receives the
    context and target centres; and the method makes its own batches (``make_batch``, run in the data
    loader): it groups each cloud once (FPS + kNN + sequencer, no parameters) for both encoders and
    draws the masks, which may use the centres (3D-JEPA's spatial blocks).
    A batch is a dict: x (B, P, 3), centres (B, G, 3), patches (B, G, K, 3), context_idx (B, Nc),
    target_idx (B, M, Nt); without centres/patches the clouds are grouped in the step.
    """

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        groups = self.backbone.tokenizer.group(x)
        kwargs = {"centres": groups.centres} if getattr(self.masker, "uses_centres", False) else {}
        context_idx, target_idx = self.masker(len(x), generator, **kwargs)
        return {"x": x, "centres": groups.centres, "patches": groups.patches,
                "context_idx": context_idx, "target_idx": target_idx}

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        context_idx, target_idx = batch["context_idx"], batch["target_idx"]
        if "centres" in batch:
            groups = PointGroups(batch["centres"], batch["patches"])
        else:
            groups = self.backbone.tokenizer.group(batch["x"])
        h = gather_tokens(self.target(groups), target_idx)                   # (B, M, Nt, D), no gradient
        z = self.backbone(groups, keep_idx=context_idx)                      # (B, Nc, D)
        p = self.predictor(z, gather_tokens(groups.centres, context_idx), gather_tokens(groups.centres, target_idx))
        return self.add_regularizer(self.objective(p, h), z)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean+max", layers: int = 1) -> torch.Tensor:
        """(B, P, 3) clouds -> (B, F) pooled features of the evaluated encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)
