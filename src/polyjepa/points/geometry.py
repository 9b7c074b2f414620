"""Point-cloud geometry in torch, vectorised over the batch: checks, farthest-point sampling, kNN groups."""
from __future__ import annotations

import torch

from ..errors import UserError


def check_clouds(x: torch.Tensor, *, min_points: int = 1, what: str = "point clouds") -> None:
    """Raise a one-line UserError unless ``x`` is (B, P, 3) finite floats with at least ``min_points`` points."""
    if x.ndim != 3 or x.shape[-1] != 3:
        raise UserError(f"{what} have shape {tuple(x.shape)}: they must be (clouds, points, 3) xyz coordinates "
                        f"(a single cloud is (1, points, 3))")
    if x.shape[1] < min_points:
        raise UserError(f"{what} have {x.shape[1]} points each, fewer than the {min_points} the tokenizer needs: "
                        f"sample more points per cloud (data.points) or lower tokenizer.n_groups/group_size")
    if not torch.compiler.is_exporting() and not torch.isfinite(x).all():  # a graph cannot raise on values
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise UserError(f"{what} contain NaN or inf coordinates in {bad} clouds: remove or repair them first")


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, 3), (B, M, 3) -> (B, N, M) squared Euclidean distances, computed coordinate-wise.

    Coordinate-wise (not the matmul expansion) so each distance depends only on its two points:
    results do not change with the order of the points.
    """
    return (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)


def farthest_point_sample(x: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (B, n) of ``n`` points chosen greedily, each the farthest from those chosen before.

    The first point is the one farthest from the cloud's centroid, so the result does not depend on
    the order of the points (the reference starts at a random point). Then the covering radius
    max_p min_c |p - c| is within a factor 2 of the best possible for ``n`` centres (Gonzalez 1985).
    Args:
        x: (B, P, 3) clouds with P >= n.
    """
    B, P, _ = x.shape
    if n > P:
        raise ValueError(f"cannot sample {n} distinct points from clouds of {P}")
    rows = torch.arange(B, device=x.device)
    idx = torch.empty(B, n, dtype=torch.long, device=x.device)
    far = (x - x.mean(1, keepdim=True)).pow(2).sum(-1).argmax(1)           # (B,)
    nearest = torch.full((B, P), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(n):
        idx[:, i] = far
        d = (x - x[rows, far].unsqueeze(1)).pow(2).sum(-1)                  # (B, P)
        nearest = torch.minimum(nearest, d)
        far = nearest.argmax(1)
    return idx


def knn(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, M, k) of the ``k`` points nearest each query, nearest first.

    Args:
        query: (B, M, 3); points: (B, P, 3) with P >= k.
    """
    if k > points.shape[1]:
        raise ValueError(f"cannot take {k} neighbours from clouds of {points.shape[1]} points")
    return squared_distances(query, points).topk(k, dim=-1, largest=False, sorted=True).indices


def gather_points(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, P, C), idx (B, ...) -> (B, ..., C)."""
    B, C = x.shape[0], x.shape[-1]
    out = x.gather(1, idx.reshape(B, -1, 1).expand(-1, -1, C))
    return out.view(*idx.shape, C)
