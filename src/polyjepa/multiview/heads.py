"""Heads on top of the pooled encoder output: an MLP projector, and DINO's prototype head."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..objectives.distributed import gather_batch, is_distributed


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics come from the global batch of every process.

    torch's SyncBatchNorm refuses CPU tensors; this one gathers the rows with the autograd-aware
    :func:`gather_batch`, normalises them all, and keeps this process's slice, so a DDP step equals the
    single-process step on the concatenated batch in value and gradient (on CPU with gloo as on GPUs).
    Every process must hold the same number of rows. Without a process group, or in eval mode, it is
    plain BatchNorm1d (same state dict).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        n = x.shape[0]
        rank = dist.get_rank()
        return super().forward(gather_batch(x))[rank * n:(rank + 1) * n]


class Projector(nn.Module):
    """(Linear -> BatchNorm -> ReLU) x (layers - 1) -> Linear (the SimCLR / VICReg / Barlow projector).

    The BatchNorms take their statistics over the global batch under DDP (:class:`GlobalBatchNorm1d`).

    Args:
        in_dim: encoder width (injected); hidden, out_dim: widths; layers >= 1 (1: a linear map);
        last_bn: a BatchNorm without affine after the last layer (Barlow Twins' standardisation is in its loss).
    Shapes: (B, in_dim) -> (B, out_dim).
    """

    def __init__(self, *, in_dim: int, hidden: int = 512, out_dim: int = 128, layers: int = 3, last_bn: bool = False):
        super().__init__()
        if layers < 1:
            raise ValueError(f"projector layers must be >= 1, got {layers}")
        mods, d = [], in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden), GlobalBatchNorm1d(hidden), nn.ReLU(inplace=True)]
            d = hidden
        mods.append(nn.Linear(d, out_dim))
        if last_bn:
            mods.append(GlobalBatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*mods)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DINOHead(nn.Module):
    """MLP (GELU) -> l2-normalised bottleneck -> weight-normalised linear map to ``out_dim`` prototypes.

    The prototype weights are normalised in the forward pass (weight norm with the gain fixed to 1,
    as DINO does). Shapes: (B, in_dim) -> (B, out_dim) logits. (Caron et al., DINO, ICCV 2021.)
    """

    def __init__(self, *, in_dim: int, hidden: int = 512, bottleneck: int = 64, out_dim: int = 1024, layers: int = 3):
        super().__init__()
        mods, d = [], in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden), nn.GELU()]
            d = hidden
        mods.append(nn.Linear(d, bottleneck))
        self.mlp = nn.Sequential(*mods)
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck))
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        return F.linear(z, F.normalize(self.prototypes, dim=-1))
