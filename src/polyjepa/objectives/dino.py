"""DINO self-distillation: student crops predict the (centred, sharpened) teacher's global crops."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_along


def teacher_temperature(progress: float, *, start: float = 0.04, end: float = 0.07, warmup: float = 0.3) -> float:
    """Teacher temperature at training ``progress`` in [0, 1]: linear from start to end over ``warmup``, then end.

    (DINO: 0.04 -> 0.07 over the first 30 of 100 epochs.)
    """
    if warmup <= 0:
        return end
    return start + (end - start) * min(max(progress / warmup, 0.0), 1.0)


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, *, temperature: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Balanced soft assignments of B samples to K prototypes from (B, K) scores -> (B, K), rows summing to 1.

    Q = exp(S / temperature)^T normalised to sum 1; then ``iterations`` times: prototype (row) sums
    to 1/K, sample (column) sums to 1/B; finally times B. In fp32, shifted by the maximum for range.
    (Caron et al., SwAV, NeurIPS 2020; DINOv2's Sinkhorn-Knopp centring.)
    """
    s = scores.float() / temperature
    q = torch.exp(s - s.max()).T  # (K, B)
    k, b = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(1, keepdim=True) / k
        q = q / q.sum(0, keepdim=True) / b
    return (q * b).T


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, *, student_temp: float, teacher_temp: float,
                       center: torch.Tensor | None = None, centering: str = "center",
                       sinkhorn_iterations: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross entropy -sum_k P_t(k) log P_s(k) of every student view against every teacher view, mean over rows.

    P_s = softmax(student / student_temp); P_t = softmax((teacher - center) / teacher_temp) ('center'; no
    shift without ``center``) or the Sinkhorn-Knopp assignments of each teacher view at teacher_temp
    ('sinkhorn'). The teacher is a constant; both sides are computed in fp32.
    Args:
        student: (Vs, n, K) logits; teacher: (Vt, n, K) logits of the same n rows; center: (K,) or None.
    Returns:
        ((Vt, Vs) mean over the n rows of the cross entropy of teacher view t and student view s,
         mean entropy of P_t: -> 0 one-hot collapse, -> log K uniform).
    (Caron et al., DINO, ICCV 2021; Zhou et al., iBOT, ICLR 2022; Caron et al., SwAV, NeurIPS 2020.)
    """
    if student.ndim != 3 or teacher.ndim != 3 or student.shape[1:] != teacher.shape[1:]:
        raise ValueError(f"soft_cross_entropy needs student (Vs, n, K) and teacher (Vt, n, K) logits, got "
                         f"{tuple(student.shape)}, {tuple(teacher.shape)}")
    if centering not in ("center", "sinkhorn"):
        raise ValueError(f"centering must be 'center' or 'sinkhorn', got {centering!r}")
    with torch.no_grad():
        t = teacher.detach().float()
        if centering == "center":
            p_t = F.softmax((t if center is None else t - center.float()) / teacher_temp, dim=-1)
        else:
            p_t = torch.stack([sinkhorn_knopp(v, temperature=teacher_temp, iterations=sinkhorn_iterations) for v in t])
        entropy = -(p_t * torch.log(p_t.clamp_min(1e-12))).sum(-1).mean()
    log_p_s = F.log_softmax(student.float() / student_temp, dim=-1)
    # One (n, K) product per pair: elementwise ops stay fp32 under autocast (a matmul would not), the row sums
    # stay exact to fp32 rounding, and no (Vt, Vs, n, K) product is held in memory.
    ce = torch.stack([torch.stack([-(p * log_p).sum(-1).mean() for log_p in log_p_s]) for p in p_t])
    return ce, entropy


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, *, student_temp: float = 0.1,
              teacher_temp: float = 0.04, centering: str = "center", center_momentum: float = 0.9,
              sinkhorn_iterations: int = 3) -> dict[str, torch.Tensor]:
    """Mean over (student crop s, teacher crop t, s != t) of the cross entropy -sum_k P_t log P_s.

    Args:
        student: (Vs, B, K) student logits of every crop; its first Vt crops are the teacher's crops.
        teacher: (Vt, B, K) teacher logits of the global crops (treated as constants).
        center: (K,) running mean of teacher logits, subtracted before the teacher softmax.
        centering: 'center' (softmax((h - c)/teacher_temp)) or 'sinkhorn' (Sinkhorn-Knopp at teacher_temp).
    Returns:
        {"loss", "teacher_entropy": mean entropy of P_t (-> 0: one-hot collapse, -> log K: uniform),
         "center": the updated (K,) centre, center_momentum * c + (1 - m) * mean over the global batch
         of the teacher logits (a tensor to store, not a scalar)}.
    (Caron et al., DINO, ICCV 2021; Oquab et al., DINOv2, 2023.)
    """
    if student.ndim != 3 or teacher.ndim != 3 or student.shape[1:] != teacher.shape[1:]:
        raise ValueError(f"dino_loss needs student (Vs, B, K) and teacher (Vt, B, K) logits, got "
                         f"{tuple(student.shape)}, {tuple(teacher.shape)}")
    if centering not in ("center", "sinkhorn"):
        raise ValueError(f"centering must be 'center' or 'sinkhorn', got {centering!r}")
    s = gather_along(student, 1)  # (Vs, B_global, K)
    t = gather_along(teacher.detach(), 1)
    ce, entropy = soft_cross_entropy(s, t, student_temp=student_temp, teacher_temp=teacher_temp, center=center,
                                     centering=centering, sinkhorn_iterations=sinkhorn_iterations)  # (Vt, Vs)
    pairs = torch.arange(s.shape[0], device=ce.device) != torch.arange(t.shape[0], device=ce.device)[:, None]
    if not pairs.any():
        raise ValueError("dino_loss needs a student crop other than the teacher's single crop")
    with torch.no_grad():
        new_center = center_momentum * center.float() + (1 - center_momentum) * t.float().mean((0, 1))
    return {"loss": ce[pairs].mean(), "teacher_entropy": entropy, "center": new_center}


class DINOLoss(nn.Module):
    """:func:`dino_loss` with its centre as a buffer (updated in training mode only)."""

    def __init__(self, out_dim: int, *, student_temp: float = 0.1, centering: str = "center",
                 center_momentum: float = 0.9, sinkhorn_iterations: int = 3):
        super().__init__()
        self.student_temp, self.centering = student_temp, centering
        self.center_momentum, self.sinkhorn_iterations = center_momentum, sinkhorn_iterations
        self.register_buffer("center", torch.zeros(out_dim))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, *, teacher_temp: float) -> dict[str, torch.Tensor]:
        out = dino_loss(student, teacher, self.center, student_temp=self.student_temp, teacher_temp=teacher_temp,
                        centering=self.centering, center_momentum=self.center_momentum,
                        sinkhorn_iterations=self.sinkhorn_iterations)
        center = out.pop("center")
        if self.training:
            self.center.copy_(center)
        return out
