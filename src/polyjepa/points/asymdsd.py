"""AsymDSD: asymmetric dual self-distillation on point clouds (Leijenaar & Kasaei, 2025).

An EMA teacher and a student share a point-patch ViT. Two objectives train the student:

- invariance (DINO): the pooled student token of every crop (2 global, some local crops with fewer
  patches) predicts the teacher's prototype distribution of the other global crop (centred, sharpened
  with a warmed-up temperature), plus KoLeo on the student's global-crop features;
- masked latent prediction (iBOT-style): the student encoder sees only the visible patches of each
  global crop (inverse-block masks), a cross-attention-only predictor places mask queries (mask token +
  target centre) on the context tokens, and a patch head turns its outputs into prototype logits that
  are trained by cross entropy against the teacher's patch head on the full crop.

The global read-out is the mean patch token (the encoder has no CLS token, so that the evaluated
backbone is the same :class:`~polyjepa.points.backbone.PointBackbone` as Point-JEPA's).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..models.transformer import attention, gather_tokens, init_weights
from ..multiview.heads import DINOHead
from ..objectives.dino import DINOLoss, soft_cross_entropy, teacher_temperature
from ..objectives.koleo import koleo_loss
from ..targets.ema import ema_update, momentum_at
from .augment import PointAugment
from .backbone import PointBackbone
from .geometry import check_clouds, gather_points, knn, squared_distances
from .predictor import InjectBlock, _CentreQueries
from .tokenizer import PointGroups, group_points


class CrossBlock(InjectBlock):
    """A pre-norm block whose queries attend to the context only (no attention between queries): the
    parts of 3D-JEPA's :class:`~polyjepa.points.predictor.InjectBlock`, with the queries left out of the keys.

    Shapes: forward(q (B, Lq, D), ctx (B, Lc, D)) -> (B, Lq, D); each query's output depends on that
    query and the context alone.
    """

    def forward(self, q: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        B, Lq, D = q.shape
        h, hs = self.heads, D // self.heads
        k, v = self.kv(self.norm_ctx(ctx)).view(B, -1, 2, h, hs).permute(2, 0, 3, 1, 4)  # (B, h, Lc, hs)
        query = self.q(self.norm_q(q)).view(B, Lq, h, hs).transpose(1, 2)
        out = attention(query, k, v)
        q = q + self.proj(out.transpose(1, 2).reshape(B, Lq, D))
        return q + self.mlp(self.norm2(q))


class CrossAttentionPredictor(_CentreQueries):
    """AsymDSD's predictor: mask queries (mask token + centre embedding) cross-attend to the context tokens.

    There is no self-attention: the queries never see each other, so each prediction depends on its
    own target centre and the context only (tested), and any number of queries costs the same per query.
    Args:
        in_dim: encoder width D (injected); dim, depth, heads: the predictor (AsymDSD: 192, 6, 3).
    Shapes:
        forward(z (B, Nc, D), context_centres (B, Nc, 3), target_centres (B, M, Nt, 3)) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, dim: int = 64, depth: int = 2, heads: int = 4, mlp_ratio: float = 4.0,
                 pos_hidden: int = 128):
        super().__init__(in_dim=in_dim, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                         pos_hidden=pos_hidden, block=CrossBlock)
        init_weights(self, [])
        for layer, block in enumerate(self.blocks, start=1):  # residual branches scaled down with depth
            block.proj.weight.data.div_((2.0 * layer) ** 0.5)
            block.mlp[2].weight.data.div_((2.0 * layer) ** 0.5)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, z: torch.Tensor, context_centres: torch.Tensor, target_centres: torch.Tensor) -> torch.Tensor:
        B, M, Nt, _ = target_centres.shape
        ctx = self.embed(z) + self.pos_embed(context_centres)
        q = self.mask_token + self.pos_embed(target_centres.reshape(B, M * Nt, 3))
        for block in self.blocks:
            q = block(q, ctx)
        return self.proj(self.norm(q)).view(B, M, Nt, -1)


def inverse_block_mask(centres: torch.Tensor, generator: torch.Generator, *, ratio: float = 0.7,
                       block_ratio: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-block masks: the visible patches are a union of spatial blocks, the rest are masked.

    ``n_vis = max(1, round((1 - ratio) G))`` patches stay visible: those nearest any of
    ``ceil(n_vis / round(block_ratio G))`` random seed patches (blocks of about ``block_ratio`` of the
    patches around each seed, so the masked region is contiguous space rather than scattered points).
    Shapes: centres (B, G, 3) -> (visible_idx (B, n_vis), masked_idx (B, G - n_vis)), each sorted.
    """
    B, G, _ = centres.shape
    if not 0 < ratio < 1 or not 0 < block_ratio <= 1:
        raise ValueError(f"need 0 < mask ratio < 1 and 0 < block_ratio <= 1, got {ratio}, {block_ratio}")
    n_vis = max(1, round((1 - ratio) * G))
    if n_vis >= G:
        raise ValueError(f"mask ratio {ratio} masks no patch of {G}: raise the ratio or the patch count")
    block = max(1, round(block_ratio * G))
    n_seeds = min(G, math.ceil(n_vis / block))
    seeds = torch.rand(B, G, generator=generator).argsort(1)[:, :n_seeds].to(centres.device)
    c = centres.detach()
    d = squared_distances(gather_points(c, seeds), c).amin(1)               # (B, G) to the nearest seed
    order = d.argsort(dim=1, stable=True)
    return order[:, :n_vis].sort(1).values, order[:, n_vis:].sort(1).values


def ibot_patch_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, *, student_temp: float = 0.1,
                    teacher_temp: float = 0.07, center_momentum: float = 0.9) -> dict[str, torch.Tensor]:
    """Cross entropy -sum_k P_t log P_s over masked patches (iBOT's patch loss), mean over patches.

    Args:
        student: (n, K) student patch logits of the masked patches; teacher: (n, K) the teacher's
            logits of the same patches (constants); center: (K,) running mean of the teacher's logits.
    P_t = softmax((teacher - center) / teacher_temp), P_s = softmax(student / student_temp).
    Returns {"loss", "teacher_entropy", "center": m * center + (1 - m) * mean of the teacher logits}.
    (Zhou et al., iBOT, ICLR 2022.)
    """
    if student.ndim != 2 or student.shape != teacher.shape:
        raise ValueError(f"ibot_patch_loss needs (n, K) student and teacher logits, got {tuple(student.shape)}, "
                         f"{tuple(teacher.shape)}")
    ce, entropy = soft_cross_entropy(student[None], teacher[None], student_temp=student_temp,
                                     teacher_temp=teacher_temp, center=center)
    with torch.no_grad():
        new_center = center_momentum * center.float() + (1 - center_momentum) * teacher.detach().float().mean(0)
    loss = ce[0, 0]
    return {"loss": loss, "teacher_entropy": entropy, "center": new_center}


def crop_cloud(x: torch.Tensor, generator: torch.Generator, n_points: int) -> torch.Tensor:
    """The ``n_points`` points nearest a random point of each cloud, centred and scaled into the unit ball.

    Shapes: (B, P, 3) -> (B, n_points, 3).
    """
    B, P, _ = x.shape
    seed = torch.randint(0, P, (B, 1), generator=generator).to(x.device)
    crop = gather_points(x, knn(gather_points(x, seed), x, n_points)[:, 0])  # (B, n_points, 3)
    crop = crop - crop.mean(1, keepdim=True)
    return crop / crop.norm(dim=-1).amax(1).clamp_min(1e-6)[:, None, None]


class AsymDSD(nn.Module):
    """Asymmetric dual self-distillation: DINO on pooled crop tokens + iBOT-style masked latent prediction.

    Args:
        backbone: the student :class:`PointBackbone` (its tokenizer's n_groups / group_size are the
            global crops' patches); the teacher is an EMA copy.
        predictor: a :class:`CrossAttentionPredictor`.
        n_local, local_groups: local crops per cloud and their patches (AsymDSD: 4 crops of 16 patches).
        global_scale, local_scale: fraction of the cloud's points in a global / local crop (one draw per batch).
        rotate, scale: augmentation of every crop: rotation about ``up_axis``, anisotropic per-axis scale.
        mask_ratio, block_ratio: inverse-block masking of the student's global crops (0.7, 0.1).
        cls_weight, mpm_weight: weights of the two objectives (0 turns one off: the ablations).
        head_hidden, head_bottleneck, cls_prototypes, patch_prototypes: the two DINO heads
            (AsymDSD: 1024, 256, 4096 prototypes).
        student_temp; teacher_temp: (start, end, warm-up fraction) for the CLS branch;
            patch_teacher_temp: the same for the patch branch; center_momentum: both centres.
        koleo_weight: KoLeo on the student's pooled global-crop features (AsymDSD: 0.01).
        momentum: (start, end) of the cosine EMA schedule (AsymDSD: 0.995 -> 1).
        embed_from: 'teacher' (evaluated and exported) or 'online'.
    A batch (from :meth:`make_batch`, in the data loader) holds per sample: global centres/patches
    (B, 2, G, ...), local centres/patches (B, n_local, Gl, ...), visible_idx (B, 2, Nv), masked_idx (B, 2, Nm).
    """

    def __init__(self, *, backbone: PointBackbone, predictor: nn.Module, n_local: int = 4, local_groups: int = 8,
                 global_scale: tuple[float, float] = (0.4, 1.0), local_scale: tuple[float, float] = (0.1, 0.4),
                 rotate: bool = True, scale: tuple[float, float] | None = (0.8, 1.2), up_axis: int = 2,
                 mask_ratio: float = 0.7, block_ratio: float = 0.1, cls_weight: float = 1.0, mpm_weight: float = 1.0,
                 head_hidden: int = 256, head_bottleneck: int = 64, cls_prototypes: int = 512,
                 patch_prototypes: int = 512, student_temp: float = 0.1,
                 teacher_temp: tuple[float, float, float] = (0.04, 0.07, 0.3),
                 patch_teacher_temp: tuple[float, float, float] = (0.05, 0.07, 0.3), center_momentum: float = 0.9,
                 koleo_weight: float = 0.01, momentum: tuple[float, float] = (0.995, 1.0), embed_from: str = "teacher"):
        super().__init__()
        if embed_from not in ("teacher", "online"):
            raise ValueError(f"embed_from must be 'teacher' or 'online', got {embed_from!r}")
        if cls_weight < 0 or mpm_weight < 0 or cls_weight + mpm_weight == 0:
            raise ValueError(f"cls_weight and mpm_weight are >= 0 and not both 0, got {cls_weight}, {mpm_weight}")
        for name, (lo, hi) in (("global_scale", global_scale), ("local_scale", local_scale)):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must satisfy 0 < lo <= hi <= 1, got {(lo, hi)}")
        tok = backbone.tokenizer
        if n_local < 0 or (n_local and not 2 <= local_groups <= tok.n_groups):
            raise ValueError(f"need n_local >= 0 and 2 <= local_groups <= {tok.n_groups}, got {n_local}, {local_groups}")
        for name, t in (("teacher_temp", teacher_temp), ("patch_teacher_temp", patch_teacher_temp)):
            if len(t) != 3:
                raise ValueError(f"{name} is (start, end, warm-up fraction), got {t}")
        inverse_block_mask(torch.zeros(1, tok.n_groups, 3), torch.Generator(), ratio=mask_ratio,
                           block_ratio=block_ratio)                         # bad ratios fail at build time
        self.backbone, self.predictor = backbone, predictor
        self.n_local, self.local_groups = n_local, local_groups
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.view = PointAugment(scale=scale, rotate=rotate, translate=0.0, up_axis=up_axis)
        self.mask_ratio, self.block_ratio = mask_ratio, block_ratio
        self.cls_weight, self.mpm_weight, self.koleo_weight = float(cls_weight), float(mpm_weight), float(koleo_weight)
        head = dict(in_dim=backbone.dim, hidden=head_hidden, bottleneck=head_bottleneck)
        self.cls_head = DINOHead(**head, out_dim=cls_prototypes)
        self.patch_head = DINOHead(**head, out_dim=patch_prototypes)
        self.dino = DINOLoss(cls_prototypes, student_temp=student_temp, center_momentum=center_momentum)
        self.register_buffer("patch_center", torch.zeros(patch_prototypes))
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.teacher_temp, self.patch_teacher_temp = tuple(teacher_temp), tuple(patch_teacher_temp)
        self.momentum, self.embed_from = tuple(momentum), embed_from
        self.teacher = nn.ModuleDict({"backbone": copy.deepcopy(backbone), "cls_head": copy.deepcopy(self.cls_head),
                                      "patch_head": copy.deepcopy(self.patch_head)})
        self.teacher.requires_grad_(False)
        self.register_buffer("progress", torch.zeros(()))

    # ---- batches (data loader) ----
    def _crop_points(self, n_points: int, scale: tuple[float, float], generator: torch.Generator, need: int) -> int:
        s = scale[0] + (scale[1] - scale[0]) * float(torch.rand(1, generator=generator))
        return min(n_points, max(need, round(s * n_points)))

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        tok = self.backbone.tokenizer
        G, K = tok.n_groups, tok.group_size
        check_clouds(x, min_points=max(G, K))
        P = x.shape[1]

        def crops(n: int, groups: int, scale) -> PointGroups:
            out = []
            for _ in range(n):
                k = self._crop_points(P, scale, generator, max(groups, K))
                c = self.view(crop_cloud(x, generator, k), generator)
                out.append(group_points(c, groups, K, sequence=tok.sequence))
            return PointGroups(torch.stack([g.centres for g in out], 1), torch.stack([g.patches for g in out], 1))

        glob = crops(2, G, self.global_scale)                                  # (B, 2, G, 3), (B, 2, G, K, 3)
        masks = [inverse_block_mask(glob.centres[:, v], generator, ratio=self.mask_ratio, block_ratio=self.block_ratio)
                 for v in range(2)]
        batch = {"x": x, "global_centres": glob.centres, "global_patches": glob.patches,
                 "visible_idx": torch.stack([m[0] for m in masks], 1), "masked_idx": torch.stack([m[1] for m in masks], 1)}
        if self.n_local:
            loc = crops(self.n_local, self.local_groups, self.local_scale)
            batch["local_centres"], batch["local_patches"] = loc.centres, loc.patches
        return batch

    # ---- loss ----
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        gc, gp = batch["global_centres"], batch["global_patches"]          # (B, 2, G, 3), (B, 2, G, K, 3)
        B = gc.shape[0]
        flat = PointGroups(gc.flatten(0, 1), gp.flatten(0, 1))             # (2B, G, ...), crop-major per sample
        vis, msk = batch["visible_idx"].flatten(0, 1), batch["masked_idx"].flatten(0, 1)  # (2B, Nv), (2B, Nm)
        progress = float(self.progress)
        with torch.no_grad():
            t_tokens = self.teacher["backbone"](flat)                       # (2B, G, D): full global crops
        z = self.backbone(flat, keep_idx=vis)                               # (2B, Nv, D): visible patches only
        pooled = z.mean(1)                                                  # (2B, D)
        out: dict[str, torch.Tensor] = {}
        total = z.new_zeros(())
        if self.cls_weight:
            feats = [pooled.view(B, 2, -1).transpose(0, 1)]                 # (2, B, D)
            if "local_centres" in batch:
                lc, lp = batch["local_centres"], batch["local_patches"]
                zl = self.backbone(PointGroups(lc.flatten(0, 1), lp.flatten(0, 1)))
                feats.append(zl.mean(1).view(B, lc.shape[1], -1).transpose(0, 1))
            feats = torch.cat(feats)                                        # (V, B, D)
            student = self.cls_head(feats.flatten(0, 1)).unflatten(0, feats.shape[:2])
            with torch.no_grad():
                teacher = self.teacher["cls_head"](t_tokens.mean(1)).view(B, 2, -1).transpose(0, 1)
            temp = teacher_temperature(progress, start=self.teacher_temp[0], end=self.teacher_temp[1],
                                       warmup=self.teacher_temp[2])
            cls = self.dino(student, teacher, teacher_temp=temp)
            koleo = torch.stack([koleo_loss(f)["loss"] for f in feats[:2]]).mean()
            total = total + self.cls_weight * (cls["loss"] + self.koleo_weight * koleo)
            out.update(cls_loss=cls["loss"].detach(), cls_entropy=cls["teacher_entropy"], koleo=koleo.detach())
        if self.mpm_weight:
            pred = self.predictor(z, gather_tokens(flat.centres, vis), gather_tokens(flat.centres, msk)[:, None])
            student = self.patch_head(pred.flatten(0, 2))                   # (2B * Nm, K)
            with torch.no_grad():
                teacher = self.teacher["patch_head"](gather_tokens(t_tokens, msk).flatten(0, 1))
            temp = teacher_temperature(progress, start=self.patch_teacher_temp[0], end=self.patch_teacher_temp[1],
                                       warmup=self.patch_teacher_temp[2])
            mpm = ibot_patch_loss(student, teacher, self.patch_center, student_temp=self.student_temp,
                                  teacher_temp=temp, center_momentum=self.center_momentum)
            if self.training:
                self.patch_center.copy_(mpm["center"])
            total = total + self.mpm_weight * mpm["loss"]
            out.update(mpm_loss=mpm["loss"].detach(), mpm_entropy=mpm["teacher_entropy"])
        with torch.no_grad():
            out["feature_std"] = pooled.float().std(0).mean()
        return {"loss": total, **out}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def trainable_modules(self) -> list[nn.Module]:
        mods = [self.backbone]
        if self.cls_weight:
            mods.append(self.cls_head)
        if self.mpm_weight:
            mods += [self.predictor, self.patch_head]
        return mods

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        """After optimizer step ``step``: the teacher <- EMA of the student (cosine momentum schedule)."""
        self.progress.fill_(min((step + 1) / max(total_steps, 1), 1.0))
        m = momentum_at(step, total_steps, *self.momentum, kind="cosine")
        for name in ("backbone", "cls_head", "patch_head"):
            ema_update(list(self.teacher[name].parameters()), [p.detach() for p in getattr(self, name).parameters()], m)
        return m

    def encoder(self) -> PointBackbone:
        return self.teacher["backbone"] if self.embed_from == "teacher" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean+max", layers: int = 1) -> torch.Tensor:
        """(B, P, 3) clouds -> (B, F) pooled features of the evaluated encoder."""
        return self.encoder().embed(x, pool=pool, layers=layers)
