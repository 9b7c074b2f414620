"""A small ResNet that skips masked regions (sparse convolution emulated by re-masking), as a JEPA backbone."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..models.encoder import grid_regions, pool_tokens
from ..models.transformer import require_positive
from ..tokenizers.patch2d import ChannelNorm
from ..tokenizers.posembed import sincos_2d


def cell_mask(keep_idx: torch.Tensor, grid: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """(B, Nk) kept cells of a (H, W) grid -> (B, 1, H, W) float mask, 1 on kept cells, 0 elsewhere."""
    keep = torch.zeros(keep_idx.shape[0], grid[0] * grid[1], dtype=dtype, device=keep_idx.device)
    keep.scatter_(1, keep_idx, 1.0)
    return keep.view(-1, 1, *grid)


class MaskedConv(nn.Module):
    """3x3 convolution + per-pixel channel norm + GELU, with the input and output zeroed where masked.

    Zeroing the input before the convolution keeps masked pixels out of every kept pixel's receptive
    field; zeroing the output keeps masked positions at 0 for the next layer (SparK-style emulation of a
    sparse convolution). The norm is over the channels of one pixel, so nothing mixes positions but the
    convolution itself (a batch norm would pool statistics over masked positions).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm = ChannelNorm(c_out, eps=1e-6)
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: torch.Tensor, mask_in: torch.Tensor | None, mask_out: torch.Tensor | None) -> torch.Tensor:
        if mask_in is not None:
            x = x * mask_in
        x = self.act(self.norm(self.conv(x)))
        return x if mask_out is None else x * mask_out


class MaskedBasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions and a shortcut) that keeps masked positions at zero."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = MaskedConv(c_in, c_out, stride)
        self.conv2 = MaskedConv(c_out, c_out, 1, act=False)
        self.short = None if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), ChannelNorm(c_out, eps=1e-6))
        self.stride = stride

    def forward(self, x: torch.Tensor, mask_in: torch.Tensor | None, mask_out: torch.Tensor | None) -> torch.Tensor:
        y = self.conv2(self.conv1(x, mask_in, mask_out), mask_out, mask_out)
        s = x if self.short is None else self.short(x)  # x is already zero where masked (1x1: no mixing)
        out = F.gelu(y + s)
        return out if mask_out is None else out * mask_out


class SparseResNet(nn.Module):
    """A small ResNet over images whose masked cells it never reads.

    A 3x3 stem (at full resolution, or halving it with ``stem_stride=2``), then one stage per width in
    ``widths`` (the first at stride 1, each later one halving the resolution) of ``blocks`` basic blocks,
    and a final per-pixel LayerNorm. The
    output map is the token grid: (H / s) x (W / s) cells of width D = widths[-1], s = stem_stride * 2^(S-1),
    S = len(widths). Given ``keep_idx`` (cells of that grid), the pixels of every other cell are zeroed and
    every layer's input and output are re-zeroed there, so no kept feature depends on a masked pixel.

    Args:
        image_size: (H, W); both must be multiples of the total stride s.
        in_channels: C of the input images.
        widths: channels per stage; blocks: basic blocks per stage; stem_stride: 1 or 2.
    Shapes:
        forward(x (B, C, H, W), keep_idx (B, Nk) | None) -> (B, Nk, D) (all N = h*w cells without keep_idx).
    """

    def __init__(self, *, image_size: tuple[int, int], in_channels: int, widths: tuple[int, ...] = (32, 64, 128),
                 blocks: int = 1, stem_stride: int = 1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        require_positive(in_channels=in_channels, blocks=blocks, **{f"widths[{i}]": w for i, w in enumerate(widths)})
        if not widths:
            raise ValueError("widths needs at least one stage width")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        h, w = int(image_size[0]), int(image_size[1])
        self.stem_stride = stem_stride
        self.stride = stem_stride * 2 ** (len(widths) - 1)
        if h % self.stride or w % self.stride or h < self.stride or w < self.stride:
            raise UserError(f"image size {h}x{w} does not tile into cells of {self.stride}x{self.stride} pixels (the "
                            f"encoder's stem and {len(widths)} stages halve it "
                            f"{len(widths) - 1 + (stem_stride == 2)} times): resize or pad the images to multiples "
                            f"of {self.stride}, or use fewer encoder.widths")
        self.image_size, self.in_channels, self.widths, self.dim = (h, w), in_channels, widths, widths[-1]
        self.grid = (h // self.stride, w // self.stride)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.stem = MaskedConv(in_channels, widths[0], stem_stride)
        stages, c_in = [], widths[0]
        for i, c in enumerate(widths):
            stages.append(nn.ModuleList([MaskedBasicBlock(c_in if j == 0 else c, c, 2 if i > 0 and j == 0 else 1)
                                         for j in range(blocks)]))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.norm = ChannelNorm(self.dim, eps=1e-6)

    def position_embedding(self, dim: int) -> torch.Tensor:
        """(N, dim) fixed sine-cosine positions of the cell grid (for a transformer predictor)."""
        return sincos_2d(dim, self.grid)

    def check_input(self, x: torch.Tensor) -> None:
        """UserError unless ``x`` is a (B, C, H, W) batch of the channels and size this encoder was built for."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise UserError(f"this encoder takes images of shape ({self.in_channels}, {self.image_size[0]}, "
                            f"{self.image_size[1]}) (channels, height, width), got a batch of shape {tuple(x.shape)}: "
                            f"convert the images to {self.in_channels} channel(s) of that size, or pretrain on "
                            f"images like these")

    def masks(self, keep_idx: torch.Tensor | None, dtype: torch.dtype) -> list[torch.Tensor | None]:
        """The keep mask at the input's and at each stage's resolution (finest first); Nones without keep_idx."""
        if keep_idx is None:
            return [None] * (len(self.widths) + 1)
        m = cell_mask(keep_idx, self.grid, dtype)  # (B, 1, h, w) at the coarsest resolution
        factors = [self.stride] + [2 ** (len(self.widths) - 1 - i) for i in range(len(self.widths))]
        return [m.repeat_interleave(f, 2).repeat_interleave(f, 3) for f in factors]

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, layers: int = 1) -> torch.Tensor:
        """``layers`` > 1 averages the normalised outputs of the last ``layers`` blocks of the last stage."""
        self.check_input(x)
        masks = self.masks(keep_idx, x.dtype)      # [input, stage 0, ..., stage S-1]
        x = self.stem(x, masks[0], masks[1])
        masks = masks[1:]
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x, masks[max(i - 1, 0)] if block.stride > 1 else masks[i], masks[i])
                if i == len(self.stages) - 1:
                    outs.append(x)
        if layers > len(outs):
            raise ValueError(f"layers={layers} but the last stage has {len(outs)} block(s)")
        h = torch.stack([self.norm(o) for o in outs[-layers:]]).mean(0)  # (B, D, h, w)
        if masks[-1] is not None:
            h = h * masks[-1]
        h = h.flatten(2).transpose(1, 2)                                  # (B, N, D)
        return h if keep_idx is None else torch.gather(h, 1, keep_idx[..., None].expand(-1, -1, h.shape[-1]))


class CNNBackbone(nn.Module):
    """A convolutional backbone with the interface of :class:`~polyjepa.models.encoder.Backbone`.

    ``grid`` (for maskers) and ``dim`` come from the network; ``embed`` pools its cell features like a
    ViT backbone pools tokens (``mean``, ``max``, ``mean+max``, ``mean+std``, ``tokens``, ``grid:K``).
    """

    def __init__(self, network: SparseResNet):
        super().__init__()
        self.network = network

    @property
    def dim(self) -> int:
        return self.network.dim

    @property
    def grid(self) -> tuple[int, int]:
        return self.network.grid

    @property
    def tokenizer(self) -> SparseResNet:
        """Where the method assembler looks for the token ``grid``: the network's cell grid."""
        return self.network

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, layers: int = 1) -> torch.Tensor:
        return self.network(x, keep_idx, layers=layers)

    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        h = self(x, layers=layers)  # (B, N, D)
        if pool.startswith("grid:"):
            k = grid_regions(pool)
            B, N, D = h.shape
            g = h.transpose(1, 2).reshape(B, D, *self.grid)
            regions = F.adaptive_avg_pool2d(g, k).flatten(2).transpose(1, 2)  # (B, k*k, D)
            return torch.cat([h.mean(1), regions.flatten(1)], dim=1)
        return pool_tokens(h, pool)


def sparse_resnet(*, image_size: tuple[int, int], in_channels: int, widths: tuple[int, ...] = (32, 64, 128),
                  blocks: int = 1, stem_stride: int = 1) -> CNNBackbone:
    """The ``sparse_resnet`` encoder of recipes: a :class:`SparseResNet` wrapped as a backbone."""
    return CNNBackbone(SparseResNet(image_size=image_size, in_channels=in_channels, widths=widths, blocks=blocks,
                                    stem_stride=stem_stride))
