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
    s = gather_along(student, 1).float()  # (Vs, B_global, K)
    with torch.no_grad():
        t = gather_along(teacher.detach(), 1).float()
        if centering == "center":
            p_t = F.softmax((t - center.float()) / teacher_temp, dim=-1)
        else:
            p_t = torch.stack([sinkhorn_knopp(v, temperature=teacher_temp, iterations=sinkhorn_iterations) for v in t])
        entropy = -(p_t * torch.log(p_t.clamp_min(1e-12))).sum(-1).mean()
        new_center = center_momentum * center.float() + (1 - center_momentum) * t.mean((0, 1))
    log_p_s = F.log_softmax(s / student_temp, dim=-1)
    terms = [-(p_t[ti] * log_p_s[si]).sum(-1).mean()
             for ti in range(t.shape[0]) for si in range(s.shape[0]) if si != ti]
    if not terms:
        raise ValueError("dino_loss needs a student crop other than the teacher's single crop")
    return {"loss": torch.stack(terms).mean(), "teacher_entropy": entropy, "center": new_center}


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
