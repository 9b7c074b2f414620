"""AD-L-JEPA on bird's-eye-view maps: a conv encoder of the context cells, a conv predictor that fills the masked
cells, an EMA target encoder of the target cells, learnable mask and empty tokens (Zhu et al., AAAI 2026).

The paper encodes voxels with a sparse 3-D conv net whose output is a BEV map 8 times coarser than its voxels;
here a dense 2-D conv net reads the (5, rows, cols) BEV feature grid (:func:`~polyjepa.bev.grid.bev_features`) and
down-samples it ``stride`` times. Masking acts on the output cells: a cell is non-empty when any input cell under
it holds a point, and dropping a cell's points is zeroing its input cells (every BEV channel of an empty cell is 0).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..targets.ema import EMATarget
from .adl_jepa import CellSplit, adl_jepa_loss, split_cells

OCCUPIED_CHANNEL = 1      # the occupancy channel of bev_features
EMBED_FROM = ("target", "online")


def _conv(cin: int, cout: int, stride: int = 1, norm: str = "group") -> nn.Sequential:
    layer = nn.BatchNorm2d(cout) if norm == "batch" else nn.GroupNorm(min(8, cout), cout)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), layer, nn.ReLU())


class BEVEncoder(nn.Module):
    """Dense conv encoder of BEV feature grids: a 3x3 conv at the input resolution, a 3x3 conv of stride
    ``stride``, then ``blocks`` 3x3 convs, each with GroupNorm and ReLU (GroupNorm: the EMA copy and the
    context encoder see half scenes while training and whole scenes at evaluation, so no running statistics).

    Shapes: forward(x (B, C, H, W)) -> (B, D, H / stride, W / stride); embed(x) -> (B, D) (mean over cells).
    """

    def __init__(self, *, in_channels: int, widths: tuple[int, int] = (16, 64), blocks: int = 2, stride: int = 2):
        super().__init__()
        if len(widths) != 2 or min(widths) < 1 or blocks < 0 or stride < 1:
            raise ValueError(f"widths must be two sizes >= 1, blocks >= 0, stride >= 1; got {widths}, {blocks}, {stride}")
        w0, w1 = int(widths[0]), int(widths[1])
        self.stride, self.dim = int(stride), w1
        self.net = nn.Sequential(_conv(in_channels, w0), _conv(w0, w1, stride),
                                 *[_conv(w1, w1) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, layers: int = 1) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """Pooled cell features: ``mean`` (B, D) or ``mean+std`` (B, 2D) over the cells."""
        h = self(x).flatten(2)
        if pool == "mean":
            return h.mean(2)
        if pool == "mean+std":
            return torch.cat([h.mean(2), h.std(2)], 1)
        raise ValueError(f"a BEV encoder pools 'mean' or 'mean+std', not {pool!r}")


class BEVConvPredictor(nn.Module):
    """``depth`` x [3x3 conv -> BatchNorm -> ReLU] on the (B, D, h, w) context map (the paper: 3 layers)."""

    def __init__(self, *, dim: int, depth: int = 3, hidden: int | None = None):
        super().__init__()
        if depth < 1:
            raise ValueError(f"predictor depth must be >= 1, got {depth}")
        hidden = hidden or dim
        sizes = [dim] + [hidden] * (depth - 1) + [dim]
        self.net = nn.Sequential(*[_conv(a, b, norm="batch") for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class CellTokens(nn.Module):
    """The learnable mask token (masked cells of the context map) and empty token (empty cells), (D,) each."""

    def __init__(self, dim: int):
        super().__init__()
        self.mask = nn.Parameter(torch.randn(dim))
        self.empty = nn.Parameter(torch.randn(dim))


class ADLJEPA(nn.Module):
    """AD-L-JEPA: predict the EMA encoder's embeddings of the masked BEV cells from the context cells.

    Per sample, half of the non-empty cells are context and half targets, and the empty cells are split the
    same way (:func:`~polyjepa.bev.adl_jepa.split_cells`). The online encoder sees the points of the context
    cells only; on its map, non-empty context cells keep its output, context-empty cells take the empty token and
    every other cell the mask token. The predictor maps that to a full map. The EMA encoder sees the points of
    the target cells only; on its map, target-empty cells take the empty token. All maps are L2-normalised per
    cell; the loss is :func:`~polyjepa.bev.adl_jepa.adl_jepa_loss` (empty-cell targets weighted 0.25).

    Args:
        encoder: the online (context) encoder, e.g. :class:`BEVEncoder`.
        predictor: a map-to-map network of width ``encoder.dim``.
        target: EMA copy of ``encoder`` (``normalize: none``: the map is L2-normalised here).
        context_ratio: share of each kind of cell that is context (the paper masks 0.5).
        gamma: the variance hinge's floor on each channel's std; None: 1/sqrt(D), which is the paper's 1/16 at
            its D = 256 (the std of a channel of unit vectors spread evenly over D channels).
        embed_from: which encoder ``encoder()`` returns for evaluation: 'target' (EMA) or 'online'.
    A batch (``make_batch``) is a dict: x (B, C, H, W) and the (B, H / stride, W / stride) bool masks context,
    target, context_empty, target_empty.
    """

    def __init__(self, *, encoder: BEVEncoder, predictor: nn.Module, target: EMATarget, context_ratio: float = 0.5,
                 nonempty_weight: float = 0.75, empty_weight: float = 0.25, alpha: float = 1.0, beta: float = 1.0,
                 gamma: float | None = None, embed_from: str = "target"):
        super().__init__()
        if not 0 < context_ratio < 1:
            raise ValueError(f"context_ratio must be in (0, 1), got {context_ratio}")
        if embed_from not in EMBED_FROM:
            raise ValueError(f"embed_from must be 'target' or 'online', got {embed_from!r}")
        self.backbone, self.predictor, self.target = encoder, predictor, target
        self.tokens = CellTokens(encoder.dim)
        self.context_ratio, self.embed_from = float(context_ratio), embed_from
        self.weights = {"nonempty_weight": nonempty_weight, "empty_weight": empty_weight, "alpha": alpha, "beta": beta,
                        "gamma": 1 / math.sqrt(encoder.dim) if gamma is None else float(gamma)}

    def occupied_cells(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) BEV grids -> (B, H / stride, W / stride) bool: output cells over at least one point."""
        return F.max_pool2d(x[:, OCCUPIED_CHANNEL:OCCUPIED_CHANNEL + 1], self.backbone.stride)[:, 0] > 0

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float = 0.0) -> dict:
        s = split_cells(self.occupied_cells(x), generator, context_ratio=self.context_ratio)
        return {"x": x, **s._asdict()}

    def _keep(self, x: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """``x`` with the input cells outside ``cells`` (B, h, w) zeroed: the cloud without their points."""
        k = self.backbone.stride
        return x * cells.repeat_interleave(k, 1).repeat_interleave(k, 2).unsqueeze(1).to(x.dtype)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        s = CellSplit(*(batch[k] for k in CellSplit._fields))
        mask_token = self.tokens.mask.view(1, -1, 1, 1)
        empty_token = self.tokens.empty.view(1, -1, 1, 1)
        z = self.backbone(self._keep(x, s.context))                                   # (B, D, h, w)
        fill = torch.where(s.context_empty.unsqueeze(1), empty_token, mask_token)
        context = F.normalize(torch.where(s.context.unsqueeze(1), z, fill), dim=1)
        pred = F.normalize(self.predictor(context), dim=1)
        with torch.no_grad():
            h = self.target(self._keep(x, s.target))
        # The target's empty cells take the same learnable token, with its gradient (the authors' code does not
        # detach it either): the token is pulled toward what the predictor says about empty cells.
        h = F.normalize(torch.where(s.target_empty.unsqueeze(1), empty_token, h), dim=1)
        return adl_jepa_loss(pred, h, context, s, **self.weights)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.backbone, self.predictor, self.tokens]

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        return self.target.update(self.backbone, step, total_steps)

    def encoder(self) -> BEVEncoder:
        """The encoder whose embeddings are evaluated and exported."""
        return self.target.model if self.embed_from == "target" else self.backbone

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        return self.encoder().embed(x, pool=pool, layers=layers)

    @torch.no_grad()
    def cell_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) whole scenes -> (B, D, H / stride, W / stride) per-cell features of the evaluated encoder."""
        return self.encoder()(x)
