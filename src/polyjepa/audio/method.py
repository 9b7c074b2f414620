"""A-JEPA: the core JEPA with the masking curriculum's state in its logged metrics."""
from __future__ import annotations

import torch

from ..methods.jepa import JEPA


class AJEPA(JEPA):
    """JEPA on spectrogram patches (Fei et al. 2023); the same loss, plus masking metrics.

    Besides the loss it reports ``mask_tf_prob`` (the curriculum's probability of time-frequency masks
    at the current progress, when the masker has one), ``mask_context`` and ``mask_target`` (shares of
    the tokens in the context and in the targets) so that the schedule shows in metrics.csv.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._progress = 0.0

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = super().loss(batch)
        n = self.backbone.tokenizer.num_tokens
        ctx, tgt = batch["context_idx"], batch["target_idx"]
        covered = torch.zeros(tgt.shape[0], n, dtype=torch.bool, device=tgt.device)
        covered.scatter_(1, tgt.flatten(1), True)
        extra = {"mask_context": torch.tensor(ctx.shape[1] / n),
                 "mask_target": covered.float().mean().detach().cpu()}
        if hasattr(self.masker, "tf_probability"):
            extra["mask_tf_prob"] = torch.tensor(self.masker.tf_probability(self._progress))
        return {**out, **extra}

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        self._progress = min((step + 1) / max(total_steps, 1), 1.0)  # the progress of the next batch
        return super().update_target(step, total_steps)
