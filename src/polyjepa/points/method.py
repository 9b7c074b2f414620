"""Point-cloud JEPA: the core JEPA with patch centres (data-dependent positions) handed to the predictor."""
from __future__ import annotations

import torch
from torch import nn

from ..methods.jepa import JEPA
from ..models.transformer import gather_tokens
from .augment import PointAugment
from .tokenizer import PointGroups

TARGET_TOKENS = ("full", "shape", "residual")


def chamfer_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Symmetric squared-distance Chamfer between point sets, averaged over the sets (Point-MAE's CD-L2).

    Shapes: pred (n, K1, 3), true (n, K2, 3) -> scalar: mean over sets of [mean nearest squared distance
    pred -> true + mean nearest squared distance true -> pred].
    """
    d = (pred.unsqueeze(2) - true.unsqueeze(1)).pow(2).sum(-1)              # (n, K1, K2)
    return d.amin(2).mean() + d.amin(1).mean()


class PointJEPA(JEPA):
    """JEPA for point clouds (Point-JEPA, 3D-JEPA): same parts and EMA target as the core JEPA.

    Differences: positions are patch centres that depend on the cloud, so the predictor receives the
    context and target centres; and the method makes its own batches (``make_batch``, run in the data
    loader): it groups each cloud once (FPS + kNN + sequencer, no parameters) for both encoders and
    draws the masks, which may use the centres (3D-JEPA's spatial blocks).
    A batch is a dict: x (B, P, 3), centres (B, G, 3), patches (B, G, K, 3), context_idx (B, Nc),
    target_idx (B, M, Nt), with ``target_view`` target_centres / target_patches (the target
    branch's view), and with an ``invariance`` term x2_centres / x2_patches (the second view; the
    JEPA's x, centres and patches are then the first view); without centres/patches the clouds are
    grouped in the step.

    Options that keep the predictor from reading its target off the target centres (which it is given):
        target_tokens: what the EMA encoder's target tokens carry. 'full' (Point-JEPA): the tokens of the
            cloud. 'shape': the tokens of a pass with every centre moved to the origin, so the centre
            embedding is one constant and the targets do not depend on where the patches are.
            'residual': the full tokens minus those of a pass with the patch shapes removed (every patch
            collapsed onto its centre: the centres-only tokens), layer-normalised again: the part of the
            target that the outline does not give.
        target_view: PointAugment arguments (e.g. ``{rotate: true, max_angle: 180, scale: [0.8, 1.2]}``)
            for a second draw applied to the target branch's centres and patches only; the predictor still
            gets the context frame's target centres. None: both branches see the same view.
        reconstruct: weight of a Point-MAE-style auxiliary loss: a linear head on the predicted target
            tokens regresses the target patches' re-centred points (Chamfer L2 divided by the batch's mean
            squared patch radius, so 1 is about the loss of predicting every point at the centre). 0: off.
        Other arguments as :class:`~polyjepa.methods.jepa.JEPA`.
    """

    def __init__(self, *, target_tokens: str = "full", target_view: dict | None = None, reconstruct: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if target_tokens not in TARGET_TOKENS:
            raise ValueError(f"target_tokens must be one of {', '.join(TARGET_TOKENS)}, got {target_tokens!r}")
        if reconstruct < 0:
            raise ValueError(f"reconstruct is a loss weight >= 0, got {reconstruct}")
        self.target_tokens, self.reconstruct = target_tokens, float(reconstruct)
        self.target_view = PointAugment(**{"translate": 0.0, **dict(target_view)}) if target_view else None
        tok = self.backbone.tokenizer
        self.patch_head = nn.Linear(self.backbone.dim, tok.group_size * 3) if reconstruct else None

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        view2 = None
        if self.invariance is not None:  # two views: the JEPA on the first, the invariance term's second
            x, x2 = self.invariance.view(x, generator), self.invariance.view(x, generator)
            view2 = self.backbone.tokenizer.group(x2)
        groups = self.backbone.tokenizer.group(x)
        kwargs = {"centres": groups.centres} if getattr(self.masker, "uses_centres", False) else {}
        context_idx, target_idx = self.masker(len(x), generator, **kwargs)
        batch = {"x": x, "centres": groups.centres, "patches": groups.patches,
                 "context_idx": context_idx, "target_idx": target_idx}
        if self.target_view is not None:
            A, t = self.target_view.transform(x, generator)                  # (B, 3, 3), (B, 3)
            batch["target_centres"] = groups.centres @ A.transpose(1, 2) + t.unsqueeze(1)
            batch["target_patches"] = torch.einsum("bgkj,bij->bgki", groups.patches, A)
        if view2 is not None:
            batch["x2_centres"], batch["x2_patches"] = view2.centres, view2.patches
        return batch

    @torch.no_grad()
    def targets(self, groups: PointGroups) -> torch.Tensor:
        """(B, G, D) target tokens of every patch, as ``target_tokens`` says."""
        if self.target_tokens == "shape":
            return self.target(PointGroups(torch.zeros_like(groups.centres), groups.patches))
        h = self.target(groups)
        if self.target_tokens == "residual":
            h = h - self.target(PointGroups(groups.centres, torch.zeros_like(groups.patches)))
            h = torch.nn.functional.layer_norm(h, h.shape[-1:])
        return h

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        context_idx, target_idx = batch["context_idx"], batch["target_idx"]
        if "centres" in batch:
            groups = PointGroups(batch["centres"], batch["patches"])
        else:
            groups = self.backbone.tokenizer.group(batch["x"])
        target_groups = PointGroups(batch["target_centres"], batch["target_patches"]) if "target_centres" in batch else groups
        h = gather_tokens(self.targets(target_groups), target_idx)           # (B, M, Nt, D), no gradient
        z = self.backbone(groups, keep_idx=context_idx)                      # (B, Nc, D)
        p = self.predictor(z, gather_tokens(groups.centres, context_idx), gather_tokens(groups.centres, target_idx))
        out = self.objective(p, h)
        if self.patch_head is not None:
            true = gather_tokens(groups.patches.flatten(2), target_idx).flatten(0, 2).unflatten(-1, (-1, 3))  # (n, K, 3)
            pred = self.patch_head(p).flatten(0, 2).unflatten(-1, (-1, 3))
            cd = chamfer_l2(pred, true) / true.pow(2).sum(-1).mean().clamp_min(1e-12)
            out = {**out, "loss": out["loss"] + self.reconstruct * cd, "chamfer": cd.detach()}
        out = self.add_regularizer(out, z)
        if self.invariance is None:
            return out
        if "x2_centres" not in batch:
            raise ValueError("a PointJEPA with an invariance term trains on batches from its make_batch "
                             "(they carry the second view, x2_centres and x2_patches)")
        return self.add_invariance(out, z, PointGroups(batch["x2_centres"], batch["x2_patches"]), groups)

    def trainable_modules(self) -> list[nn.Module]:
        return super().trainable_modules() + ([self.patch_head] if self.patch_head is not None else [])

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean+max", layers: int = 1) -> torch.Tensor:
        """(B, P, 3) clouds -> (B, F) pooled features of the evaluated encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)
