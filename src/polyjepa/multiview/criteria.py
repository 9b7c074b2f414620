"""Objectives as multi-view criteria: ``criterion(z (V, B, P), *, n_global, step, progress, teacher, features) -> dict``.

``z`` holds the projections of every view (global views first), ``teacher`` the EMA teacher's
projections of the global views (DINO only), ``features`` the encoder's pooled embeddings (V, B, D).
``step`` seeds anything random that must agree across processes (SIGReg's directions).
"""
from __future__ import annotations

import torch
from torch import nn

from ..objectives.barlow import barlow_twins_loss
from ..objectives.dino import DINOLoss, teacher_temperature
from ..objectives.infonce import nt_xent_loss
from ..objectives.intl import intl_loss
from ..objectives.koleo import koleo_loss
from ..objectives.sigreg import lejepa_loss
from ..objectives.tico import TiCoLoss
from ..objectives.vicreg import vicreg_loss


def _mean_parts(outs: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([o[k] for o in outs]).mean() for k in outs[0]}


class PairCriterion(nn.Module):
    """A two-view loss averaged over the pairs (global view i, any later view j)."""

    uses_teacher = False

    def __init__(self, loss, **kwargs):
        super().__init__()
        self.loss, self.kwargs = loss, kwargs
        loss(torch.randn(4, 3), torch.randn(4, 3), **kwargs)  # bad arguments fail when the recipe is built

    def forward(self, z: torch.Tensor, *, n_global: int, **_) -> dict[str, torch.Tensor]:
        pairs = [(i, j) for i in range(n_global) for j in range(i + 1, z.shape[0])]
        return _mean_parts([self.loss(z[i], z[j], **self.kwargs) for i, j in pairs])


def simclr(*, temperature: float = 0.5) -> PairCriterion:
    """NT-Xent (SimCLR) over view pairs."""
    return PairCriterion(nt_xent_loss, temperature=temperature)


def barlow_twins(*, lambd: float = 0.0051) -> PairCriterion:
    """Barlow Twins over view pairs."""
    return PairCriterion(barlow_twins_loss, lambd=lambd)


def vicreg(*, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0) -> PairCriterion:
    """VICReg over view pairs."""
    return PairCriterion(vicreg_loss, sim_weight=sim_weight, var_weight=var_weight, cov_weight=cov_weight)


class TiCo(nn.Module):
    """TiCo on exactly two views (its covariance memory is built from view 0)."""

    uses_teacher = False

    def __init__(self, *, dim: int, beta: float = 0.9, rho: float = 8.0):
        super().__init__()
        self.loss = TiCoLoss(dim, beta=beta, rho=rho)

    def forward(self, z: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        if z.shape[0] != 2:
            raise ValueError(f"TiCo takes exactly 2 views, got {z.shape[0]}: set views.n_global=2 views.n_local=0")
        return self.loss(z[0], z[1])


class INTL(nn.Module):
    """IterNorm + trace loss over all views, view 0 the anchor."""

    uses_teacher = False

    def __init__(self, *, beta: float | None = None, iterations: int = 4, axis: int = 0):
        super().__init__()
        if axis not in (0, 1):
            raise ValueError(f"INTL axis must be 0 or 1, got {axis}")
        self.beta, self.iterations, self.axis = beta, iterations, axis

    def forward(self, z: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        return intl_loss(z, beta=self.beta, iterations=self.iterations, axis=self.axis)


class LeJEPA(nn.Module):
    """lambd * SIGReg + (1 - lambd) * distance to the mean of the global views; directions seeded by the step."""

    uses_teacher = False

    def __init__(self, *, lambd: float = 0.05, num_slices: int = 256, knots: int = 17):
        super().__init__()
        if not 0 <= lambd <= 1:
            raise ValueError(f"lambd must lie in [0, 1], got {lambd}")
        self.lambd, self.num_slices, self.knots = lambd, num_slices, knots

    def forward(self, z: torch.Tensor, *, n_global: int, step: int = 0, **_) -> dict[str, torch.Tensor]:
        return lejepa_loss(z, n_global=n_global, lambd=self.lambd, num_slices=self.num_slices, knots=self.knots,
                           seed=step)


class DINO(nn.Module):
    """DINO cross-entropy from the teacher's global views to every other student view, plus KoLeo.

    Args:
        dim: number of prototypes (injected from the head).
        teacher_temp: (start, end, warm-up fraction of training) of the teacher temperature.
        koleo_weight: weight of KoLeo on the student's pooled encoder features of the global views.
    """

    uses_teacher = True

    def __init__(self, *, dim: int, student_temp: float = 0.1, teacher_temp: tuple[float, float, float] = (0.04, 0.07, 0.3),
                 centering: str = "center", center_momentum: float = 0.9, koleo_weight: float = 0.0):
        super().__init__()
        if len(teacher_temp) != 3:
            raise ValueError(f"teacher_temp is (start, end, warm-up fraction), got {teacher_temp}")
        self.loss = DINOLoss(dim, student_temp=student_temp, centering=centering, center_momentum=center_momentum)
        self.teacher_temp, self.koleo_weight = tuple(teacher_temp), koleo_weight

    def forward(self, z: torch.Tensor, *, n_global: int, teacher: torch.Tensor, progress: float = 0.0,
                features: torch.Tensor | None = None, **_) -> dict[str, torch.Tensor]:
        start, end, warmup = self.teacher_temp
        temp = teacher_temperature(progress, start=start, end=end, warmup=warmup)
        out = self.loss(z, teacher, teacher_temp=temp)
        if self.koleo_weight and features is not None:
            koleo = torch.stack([koleo_loss(f)["loss"] for f in features[:n_global]]).mean()
            out = {**out, "loss": out["loss"] + self.koleo_weight * koleo, "koleo": koleo}
        return {**out, "teacher_temp": torch.tensor(temp)}
