"""Concerto: joint 2-D/3-D self-supervised learning for point clouds (Zhang, Wu et al., NeurIPS 2025)."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..methods.jepa import JEPA
from ..models.transformer import gather_tokens
from ..multiview.heads import DINOHead
from ..objectives.dino import soft_cross_entropy
from ..points.augment import PointAugment
from ..points.backbone import PointBackbone
from ..points.tokenizer import PointGroups
from ..targets.ema import ema_update, momentum_at
from .camera import Cameras
from .render import Render, depth_image, patch_group_weights, pool_patches, render_points, visible_patches


def cross_modal_loss(pred: torch.Tensor, weights: torch.Tensor, target: torch.Tensor, *,
                     center: bool = False) -> torch.Tensor:
    """Mean over the image patches that see a point of 1 - cos(pooled point prediction, patch embedding).

    Shapes: pred (B, N, E) per point token, weights (B, R, N) visible points of each token per patch,
    target (B, R, E) the frozen image encoder's patch embeddings -> scalar. With ``center`` the targets
    of those patches have their batch mean (per channel) removed first, so the loss asks for what tells
    patches apart rather than what they share.
    """
    pooled, hit = pool_patches(pred, weights)                                   # (B, R, E), (B, R)
    if not hit.any():
        return pred.sum() * 0                                                   # no patch sees a kept point
    y = target[hit].to(pred)
    if center:
        y = y - y.mean(0, keepdim=True)
    return (1 - F.cosine_similarity(pooled[hit], y, dim=-1)).mean()


def cluster_loss(student: torch.Tensor, teacher: torch.Tensor, *, student_temp: float, teacher_temp: float,
                 iterations: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Online clustering cross-entropy: teacher prototype scores (n, K) -> balanced assignments by
    Sinkhorn-Knopp; the student's (n, K) scores predict them. Returns (loss, teacher assignment entropy)."""
    ce, entropy = soft_cross_entropy(student[None], teacher[None], student_temp=student_temp,
                                     teacher_temp=teacher_temp, centering="sinkhorn", sinkhorn_iterations=iterations)
    return ce[0, 0], entropy


class Concerto(nn.Module):
    """Concerto at point-group scale: 3-D self-distillation plus a cross-modal JEPA onto a frozen 2-D encoder.

    A training run has two stages. First (the first ``image_share`` of the steps) the 2-D encoder learns
    by I-JEPA on depth renders of the training clouds (``image``: a :class:`~polyjepa.methods.jepa.JEPA`
    on images); from then on its EMA encoder is frozen and is the 2-D teacher. Then the 3-D student
    (``backbone``, point groups + transformer) trains on the terms below. Each stage has its own learning-rate
    warm-up and cosine (:meth:`schedule_stages`) and its own EMA momentum schedule.

    - self-distillation (Sonata): two augmented views of each cloud, grouped once so that token g is the
      same patch in both; the student sees view 1 with ``mask_ratio`` of its tokens dropped, the EMA
      teacher sees view 2 whole; per kept token the student's prototype scores predict the teacher's
      Sinkhorn-balanced assignments (cross-entropy);
    - the cross-modal JEPA: view 1 is rendered from ``cameras``; each point of each kept group is projected,
      kept if the z-buffer shows it, and assigned to its image patch; a small head maps the student's
      tokens to the 2-D encoder's width, they are averaged per patch over the visible points, and the
      frozen 2-D patch embeddings (layer-normalised) are the targets of a cosine loss.

    Loss = ``sd_weight`` * self-distillation + ``cross_weight`` * cross-modal (Concerto: 1 + 1).

    Args:
        backbone: point tokenizer + encoder (the student; its EMA copy is the 3-D teacher).
        image: a JEPA on (C, H, W) renders (the 2-D encoder and its I-JEPA training).
        cameras: the V cameras of the renders, images of ``image``'s size.
        image_share: fraction of the steps spent training the 2-D encoder (0: none; then it stays at its
            random initialisation, which only makes sense with ``cross_weight`` 0).
        sd_weight, cross_weight: weights of the two 3-D losses (0 switches one off).
        prototypes, head_hidden, bottleneck: the self-distillation head (DINO head: MLP, l2-normalised
            bottleneck, weight-normalised prototypes).
        student_temp, teacher_temp: softmax temperatures of the clustering cross-entropy.
        momentum: (start, end) cosine schedule of the 3-D teacher's EMA over the 3-D stage.
        mask_ratio: fraction of view-1 tokens the student does not see.
        scale, translate, jitter: the view augmentation (per-axis scale range, shift range, Gaussian point
            noise in the patches); no rotation (the shapes are aligned, and orientation is class information).
        splat: pixels around each projected point that it covers in the renders; tolerance: depth slack
            (world units) for a point to count as visible; depth_range: (near, far) mapped to (1, 0) in
            the rendered depth images.
        cross_hidden: hidden width of the cross-modal head (0: a linear map).
        center_targets: remove the batch mean of the 2-D patch embeddings before the cosine (see
            :func:`cross_modal_loss`).
        embed_from: 'target' (the 3-D EMA teacher, evaluated and exported) or 'online'.
    """

    def __init__(self, *, backbone: PointBackbone, image: JEPA, cameras: Cameras, image_share: float = 0.3,
                 sd_weight: float = 1.0, cross_weight: float = 1.0, prototypes: int = 128, head_hidden: int = 256,
                 bottleneck: int = 64, student_temp: float = 0.1, teacher_temp: float = 0.05,
                 momentum: tuple[float, float] = (0.994, 1.0), mask_ratio: float = 0.5,
                 scale: tuple[float, float] = (0.8, 1.2), translate: float = 0.1, jitter: float = 0.01,
                 splat: int = 1, tolerance: float = 0.1, depth_range: tuple[float, float] = (1.5, 4.5),
                 cross_hidden: int = 128, center_targets: bool = False, embed_from: str = "target"):
        super().__init__()
        if not 0 <= image_share < 1:
            raise ValueError(f"image_share is a fraction of the steps in [0, 1), got {image_share}")
        if sd_weight < 0 or cross_weight < 0 or sd_weight + cross_weight == 0:
            raise ValueError(f"sd_weight and cross_weight are >= 0 and not both 0, got {sd_weight}, {cross_weight}")
        if not 0 <= mask_ratio < 1:
            raise ValueError(f"mask_ratio is a fraction in [0, 1), got {mask_ratio}")
        if embed_from not in ("target", "online"):
            raise ValueError(f"embed_from must be 'target' or 'online', got {embed_from!r}")
        if tuple(image.backbone.tokenizer.image_size) != tuple(cameras.size):
            raise ValueError(f"the 2-D encoder reads {tuple(image.backbone.tokenizer.image_size)} images but the "
                             f"cameras render {tuple(cameras.size)}")
        self.backbone, self.image = backbone, image
        self.sd_head = DINOHead(in_dim=backbone.dim, hidden=head_hidden, bottleneck=bottleneck, out_dim=prototypes)
        self.teacher = nn.ModuleDict({"backbone": copy.deepcopy(backbone), "head": copy.deepcopy(self.sd_head)})
        self.teacher.requires_grad_(False)
        width = image.backbone.dim
        self.cross_head = (nn.Linear(backbone.dim, width) if cross_hidden == 0 else
                           nn.Sequential(nn.Linear(backbone.dim, cross_hidden), nn.GELU(), nn.Linear(cross_hidden, width)))
        self.cameras = cameras
        for i, name in enumerate(("rotation", "translation", "intrinsics")):  # moves with the module's device
            self.register_buffer(f"camera_{name}", cameras[i].clone(), persistent=False)
        self.image_share, self.sd_weight, self.cross_weight = float(image_share), float(sd_weight), float(cross_weight)
        self.student_temp, self.teacher_temp = float(student_temp), float(teacher_temp)
        self.momentum, self.mask_ratio = (float(momentum[0]), float(momentum[1])), float(mask_ratio)
        self.view = PointAugment(scale=tuple(scale) if scale is not None else None, rotate=False, translate=translate)
        self.jitter, self.splat, self.tolerance = float(jitter), int(splat), float(tolerance)
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.embed_from, self.center_targets = embed_from, bool(center_targets)
        self.masker = image.masker                       # the 2-D stage's masks (drawn in make_batch)
        # Training progress, identical on every process; saved with the weights so that a resume keeps the stage.
        self.register_buffer("progress", torch.zeros(()))

    # -- batches (built in the data loader) -------------------------------------------------------------
    def cams(self) -> Cameras:
        return self.cameras._replace(rotation=self.camera_rotation, translation=self.camera_translation,
                                     intrinsics=self.camera_intrinsics)

    def render(self, x: torch.Tensor, cams: Cameras | None = None) -> tuple[torch.Tensor, Render]:
        """(B, P, 3) clouds -> ((B, V, C, H, W) network input of the renders, the Render)."""
        r = render_points(x, self.cams().to(x) if cams is None else cams, splat=self.splat)
        near, far = self.depth_range
        silhouette = self.image.backbone.tokenizer.in_channels == 2
        return depth_image(r.depth, near=near, far=far, silhouette=silhouette), r

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        """Clouds (B, P, 3) at training ``progress`` -> what that step's stage uses.

        2-D stage (progress < image_share): renders of one augmented view and the I-JEPA masks. 3-D stage: both
        views' groups and the student's kept tokens, plus (with a cross-modal term) the renders of view 1 and
        the patch/token correspondence; without one nothing is rendered. ``image_stage`` says which stage.
        """
        if progress < self.image_share:
            A, t = self.view.transform(x, generator)                            # renders of one augmented view
            images, _ = self.render(x @ A.transpose(1, 2) + t.unsqueeze(1))
            context_idx, target_idx = self.image.masker(len(x) * images.shape[1], generator)
            return {"x": x, "image_stage": torch.tensor(True), "images": images, "context_idx": context_idx,
                    "target_idx": target_idx}
        tok = self.backbone.tokenizer
        groups = tok.group(x)                                                   # on the cloud itself: tokens match
        B, G, K, _ = groups.patches.shape
        views = []
        for _ in range(2):
            A, t = self.view.transform(x, generator)                            # (B, 3, 3), (B, 3)
            centres = groups.centres @ A.transpose(1, 2) + t.unsqueeze(1)
            patches = torch.einsum("bgkj,bij->bgki", groups.patches, A)
            if self.jitter:
                patches = patches + self.jitter * torch.randn(patches.shape, generator=generator).to(patches)
            views.append((centres, patches, A, t))
        (c1, p1, A1, t1), (c2, p2, _, _) = views
        n_keep = max(1, round((1 - self.mask_ratio) * G))
        keep_idx = torch.rand(B, G, generator=generator).argsort(1)[:, :n_keep].sort(1).values.to(x.device)
        batch = {"x": x, "image_stage": torch.tensor(False), "centres": c1, "patches": p1, "centres2": c2,
                 "patches2": p2, "keep_idx": keep_idx}
        if not self.cross_weight:
            return batch
        cams = self.cams().to(x)
        images, r = self.render(x @ A1.transpose(1, 2) + t1.unsqueeze(1), cams)  # view 1 as a whole cloud
        pts = (c1.unsqueeze(2) + p1).reshape(B, G * K, 3)                       # every grouped point of view 1
        patch = self.image.backbone.tokenizer.patch_size
        patch_idx = visible_patches(pts, r, cams, patch=patch, tolerance=self.tolerance)
        group_idx = torch.arange(G, device=x.device).repeat_interleave(K)
        weights = patch_group_weights(patch_idx, group_idx, n_patches=self.image.backbone.tokenizer.num_tokens,
                                      n_groups=G)                               # (B, V * Np, G)
        return {**batch, "images": images, "weights": weights}

    # -- losses -------------------------------------------------------------------------------------------
    def in_image_stage(self) -> bool:
        return float(self.progress) < self.image_share

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    @torch.no_grad()
    def image_targets(self, images: torch.Tensor) -> torch.Tensor:
        """(B, V, C, H, W) renders -> (B, V * Np, E) layer-normalised patch embeddings of the frozen 2-D encoder."""
        y = self.image.target.model(images.flatten(0, 1))                      # (B * V, Np, E)
        return F.layer_norm(y, y.shape[-1:]).reshape(images.shape[0], -1, y.shape[-1])

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss of the batch's stage (``make_batch`` decides it from the step, so batch and loss agree)."""
        zero = batch["x"].new_zeros(())
        if bool(batch["image_stage"]):
            out = self.image.loss({"x": batch["images"].flatten(0, 1), "context_idx": batch["context_idx"],
                                   "target_idx": batch["target_idx"]})
            return {"loss": out["loss"], "image_jepa": out["loss"].detach(), "sd": zero, "cross": zero,
                    "sd_entropy": zero}
        keep = batch["keep_idx"]
        z = self.backbone(PointGroups(batch["centres"], batch["patches"]), keep_idx=keep)  # (B, Nk, D): kept only
        total, sd, cross, entropy = zero, zero, zero, zero
        if self.sd_weight:
            with torch.no_grad():
                h = self.teacher["backbone"](PointGroups(batch["centres2"], batch["patches2"]))  # (B, G, D)
                t = self.teacher["head"](gather_tokens(h, keep).flatten(0, 1))                  # (B * Nk, K)
            sd, entropy = cluster_loss(self.sd_head(z.flatten(0, 1)), t, student_temp=self.student_temp,
                                       teacher_temp=self.teacher_temp)
            total = total + self.sd_weight * sd
        if self.cross_weight:
            y = self.image_targets(batch["images"])                             # (B, R, E), no gradient
            w = batch["weights"].gather(2, keep.unsqueeze(1).expand(-1, batch["weights"].shape[1], -1))  # (B, R, Nk)
            cross = cross_modal_loss(self.cross_head(z), w, y, center=self.center_targets)
            total = total + self.cross_weight * cross
        return {"loss": total, "image_jepa": zero, "sd": sd.detach(), "cross": cross.detach(),
                "sd_entropy": entropy}

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.sd_head, self.cross_head, self.image.backbone, self.image.predictor]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float | None:
        """After optimizer step ``step``: the 2-D stage's EMA, or the 3-D teacher's; advance the progress."""
        total = max(total_steps, 1)
        start = self.image_start(total)
        self.progress.fill_(min((step + 1) / total, 1.0))
        if step < start:
            return self.image.update_target(step, start)
        m = momentum_at(step - start, total - start, *self.momentum, kind="cosine")
        for name, online in (("backbone", self.backbone), ("head", self.sd_head)):
            ema_update(list(self.teacher[name].parameters()), list(online.parameters()), m)
        return m

    def image_start(self, total_steps: int) -> int:
        """The first step of the 3-D stage: steps s with s / total < image_share train the 2-D encoder."""
        s = min(math.ceil(self.image_share * total_steps), total_steps)
        while s > 0 and (s - 1) / total_steps >= self.image_share:           # guard against rounding
            s -= 1
        while s < total_steps and s / total_steps < self.image_share:
            s += 1
        return s

    def schedule_stages(self, total_steps: int) -> list[int]:
        """The first steps of the two stages: each has its own learning-rate warm-up and cosine over its own
        steps, so the 3-D student starts at the warm-up's first learning rate rather than mid-schedule."""
        return [0, self.image_start(max(total_steps, 1))]

    def encoder(self) -> PointBackbone:
        return self.teacher["backbone"] if self.embed_from == "target" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean+max", layers: int = 1) -> torch.Tensor:
        """(B, P, 3) clouds -> (B, F) pooled features of the evaluated 3-D encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)

    @torch.no_grad()
    def embed_renders(self, x: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) clouds -> (B, V * E): the frozen 2-D encoder's mean patch embedding of each view's render."""
        images, _ = self.render(x)
        h = self.image.target.model(images.flatten(0, 1)).mean(1)              # (B * V, E)
        return h.reshape(len(x), -1)

