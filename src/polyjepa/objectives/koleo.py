"""KoLeo: the Kozachenko-Leonenko differential-entropy estimator as a spreading regulariser."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather_batch


def koleo_loss(z: torch.Tensor, *, eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """-mean_i log(min_{j != i} ||u_i - u_j|| + eps) of the l2-normalised rows u of (N, D) z (global batch).

    Small when every embedding's nearest neighbour is far: pushes features apart uniformly on the
    sphere. (Sablayrolles et al., ICLR 2019; weight 0.1 on the CLS token in DINOv2.)
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"koleo_loss needs (N >= 2, D) embeddings, got {tuple(z.shape)}")
    u = F.normalize(gather_batch(z).float(), dim=1)
    with torch.no_grad():  # the neighbour's index only; the distance below carries the gradient
        sim = u @ u.T
        sim.fill_diagonal_(-2.0)
        nearest = sim.argmax(1)
    dist = (u - u[nearest]).norm(dim=1)
    return {"loss": -torch.log(dist + eps).mean()}
