"""A dilated convolutional series encoder (TS2Vec's architecture) and its padding- and mask-aware backbone."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbone import SeriesBackbone
from .tokenizer import PatchGrid1D


class DilatedBlock(nn.Module):
    """GELU, conv (dilation d), GELU, conv (dilation d), plus a residual (1x1 projection where widths differ)."""

    def __init__(self, cin: int, cout: int, dilation: int, kernel_size: int = 3, project: bool = False):
        super().__init__()
        pad = (kernel_size - 1) * dilation // 2
        self.conv1 = nn.Conv1d(cin, cout, kernel_size, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, kernel_size, padding=pad, dilation=dilation)
        self.proj = nn.Conv1d(cin, cout, 1) if (project or cin != cout) else None

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, cin, L), keep (B, 1, L) float or None: steps with keep 0 are zeroed after each conv."""
        res = x if self.proj is None else self.proj(x)
        h = self.conv1(F.gelu(x))
        if keep is not None:
            h = h * keep
        out = self.conv2(F.gelu(h)) + res
        return out if keep is None else out * keep


class DilatedConvEncoder(nn.Module):
    """A per-step linear input map, then ``depth`` residual blocks of dilated convolutions (dilation
    1, 2, 4, ...) at ``hidden`` channels and a last block to ``dim`` channels (TS2Vec's encoder:
    hidden 64, dim 320, depth 10, receptive field of about 2^(depth+2) steps).

    Args:
        in_channels: C of the input series.
        hidden, dim, depth, kernel_size: widths, number of hidden blocks, odd kernel size.
    Shapes:
        forward(x (B, C, L) finite, hide (B, L) bool | None, padding (B, L) bool | None) -> (B, dim, L);
        steps where ``hide`` is True are zeroed after the input map (TS2Vec's timestamp masking), so
        the output carries nothing of their values; ``padding`` steps are zeroed after every
        convolution, exactly as the convolutions' own zero padding past the end, so a NaN-padded
        series gives its real steps the features of the unpadded series.
    """

    def __init__(self, *, in_channels: int, hidden: int = 64, dim: int = 320, depth: int = 10, kernel_size: int = 3):
        super().__init__()
        if depth < 1 or hidden < 1 or dim < 1:
            raise ValueError(f"depth, hidden and dim must be >= 1, got {depth}, {hidden}, {dim}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.dim, self.depth = int(dim), int(depth)
        self.input = nn.Linear(in_channels, hidden)
        widths = [hidden] * depth + [dim]
        self.blocks = nn.ModuleList([
            DilatedBlock(hidden, w, 2 ** i, kernel_size, project=(i == depth)) for i, w in enumerate(widths)])

    def forward(self, x: torch.Tensor, hide: torch.Tensor | None = None,
                padding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.input(x.transpose(1, 2))                       # (B, L, hidden)
        for m in (hide, padding):
            if m is not None:
                h = h.masked_fill(m[..., None], 0.0)
        no_padding = padding is None or (not torch.compiler.is_exporting() and not bool(padding.any()))
        keep = None if no_padding else (~padding)[:, None].to(h.dtype)  # an exported graph keeps the mask
        h = h.transpose(1, 2)
        for block in self.blocks:
            h = block(h, keep)
        return h                                                # (B, dim, L)


class ConvSeriesBackbone(SeriesBackbone):
    """``PatchGrid1D`` geometry + ``DilatedConvEncoder``: the encoder sees every step of the series
    (padding and steps of dropped tokens zeroed at its input), and each token is the max of its
    patch's step features (TS2Vec's max pooling, per patch).

    Shapes as ``SeriesBackbone``: forward(x (B, C, L), keep_idx (B, Nk) | None) -> (B, Nk, dim). With
    ``keep_idx`` the steps of every other token are hidden from the encoder, so context tokens carry
    nothing of the targets' values (what the JEPA loss needs; a transformer drops those tokens instead).
    """

    def __init__(self, tokenizer: PatchGrid1D, encoder: DilatedConvEncoder):
        if tokenizer.channel_independent:
            raise ValueError("a dilated_conv encoder mixes the channels: use tokenizer.channel_independent=false")
        super().__init__(tokenizer, encoder)

    def _encode(self, x, keep_idx=None, layers=1):
        if layers != 1:
            raise ValueError(f"a dilated_conv encoder has one output layer: use eval.layers=1, not {layers}")
        tok = self.tokenizer
        x = tok.padded(x)
        B, _, L = x.shape
        n, p = tok.grid[-1], tok.patch_size
        padding = ~torch.isfinite(x).any(1)                                     # (B, L)
        valid = ~padding.view(B, n, p).all(-1)                                  # (B, N) token holds data
        hide = None
        if keep_idx is not None:
            kept = torch.zeros(B, n, dtype=torch.bool, device=x.device).scatter_(1, keep_idx, True)
            hide = ~kept.repeat_interleave(p, dim=1)
        f = self.encoder(torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), hide, padding)  # (B, D, L)
        f = f.masked_fill(padding[:, None], float("-inf")).view(B, -1, n, p).amax(-1)  # (B, D, N)
        h = f.transpose(1, 2).masked_fill(~valid[..., None], 0.0)                       # (B, N, D)
        if keep_idx is not None:
            h, valid = h.gather(1, keep_idx[..., None].expand(-1, -1, h.shape[-1])), valid.gather(1, keep_idx)
        return h, valid
