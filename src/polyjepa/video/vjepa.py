"""V-JEPA: predict the EMA encoder's features of masked space-time tubes, one pass per mask generator."""
from __future__ import annotations

import torch

from ..methods.jepa import JEPA
from ..models.transformer import gather_tokens


class VJEPA(JEPA):
    """Video JEPA (Bardes et al., 2024): a JEPA whose masker gives several (context, target) pairs per clip.

    Every pair is encoded and predicted separately (pair k uses the predictor's k-th mask token);
    the losses (and the optional regulariser on each pooled context embedding) are averaged over
    the pairs. The EMA target encoder runs once on the whole clip.

    Args: as :class:`polyjepa.JEPA`, with ``masker`` a :class:`TubeMaskSet` and ``predictor`` a
    :class:`MultiMaskPredictor` with one mask token per generator.
    A batch is a dict: x (B, C, T, H, W), context_idx [(B, Nc_k)], target_idx [(B, 1, Nt_k)].
    """

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        context_idx, target_idx = self.masker(len(x), generator)
        return {"x": x, "context_idx": context_idx, "target_idx": target_idx}

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        x, contexts, targets = batch["x"], batch["context_idx"], batch["target_idx"]
        if isinstance(contexts, torch.Tensor):  # a single pair from a plain masker
            contexts, targets = [contexts], [targets]
        h_all = self.target(x)                                     # (B, N, D), no gradient
        parts: list[dict[str, torch.Tensor]] = []
        for k, (context_idx, target_idx) in enumerate(zip(contexts, targets)):
            z = self.backbone(x, keep_idx=context_idx)             # (B, Nc, D)
            p = self.predictor(z, context_idx, target_idx, mask_index=k)
            parts.append(self.add_regularizer(dict(self.objective(p, gather_tokens(h_all, target_idx))), z))
        return {name: torch.stack([o[name] for o in parts]).mean() for name in parts[0]}
