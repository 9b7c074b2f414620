"""1-D patch embedding for (B, C, L) series, NaN-padded to a common length."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..tokenizers.posembed import sincos_1d, sincos_2d


def instance_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each series and channel over its finite time steps; NaN (padding) stays NaN.

    Args:
        x: (B, C, L), NaN where a series is padded.
    Returns:
        (B, C, L): (x - mean) / sqrt(var + eps) with mean/var over the finite values of each (b, c)
        (RevIN without the affine part; Kim et al., ICLR 2022).
    """
    finite = torch.isfinite(x)
    n = finite.sum(-1, keepdim=True).clamp_min(1)
    x0 = torch.where(finite, x, torch.zeros_like(x))
    mean = x0.sum(-1, keepdim=True) / n
    var = (torch.where(finite, x0 - mean, torch.zeros_like(x)).pow(2)).sum(-1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps)


class PatchGrid1D(nn.Module):
    """The token geometry of a (B, C, L) series cut into patches of ``patch_size`` steps, without weights.

    Args:
        length: L of the input (shorter series are NaN-padded at the end up to L).
        in_channels: C of the input.
        patch_size: steps per patch; None picks ceil(L / max_tokens).
        max_tokens: the token budget used when ``patch_size`` is None.
        channel_independent: one token per channel and patch (grid (C, N)) instead of one per patch (grid (N,)).
    Shapes:
        padded(x): (B, C, L') with L' <= L -> (B, C, N * patch_size), NaN where there is no data;
        token_mask(x) -> (B, T) bool, True where the patch holds at least one finite value;
        position_embedding(dim) -> (T, dim) fixed sin-cos positions.
    A convolutional series encoder (``encoder: dilated_conv``) uses this alone as its tokenizer
    (``tokenizer: patch_grid``): it sees every step and pools its features per patch into tokens.
    """

    def __init__(self, *, length: int, in_channels: int, patch_size: int | None = None, max_tokens: int = 64,
                 channel_independent: bool = False):
        super().__init__()
        if patch_size is None:
            patch_size = max(1, math.ceil(length / max_tokens))
        if patch_size < 1 or max_tokens < 1:
            raise ValueError(f"patch_size and max_tokens must be >= 1, got {patch_size} and {max_tokens}")
        self.length, self.in_channels, self.patch_size = int(length), int(in_channels), int(patch_size)
        self.channel_independent = channel_independent
        n = math.ceil(self.length / self.patch_size)
        self.grid = (self.in_channels, n) if channel_independent else (n,)
        self.num_tokens = math.prod(self.grid)

    def position_embedding(self, dim: int) -> torch.Tensor:
        """(T, dim) fixed sin-cos positions (time; or channel x time when channel-independent)."""
        if self.channel_independent:
            return sincos_2d(dim, self.grid)
        return sincos_1d(dim, torch.arange(self.grid[0]))

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        B, C, L = x.shape
        if C != self.in_channels or L > self.length:
            raise ValueError(f"expected series of {self.in_channels} channels and at most {self.length} steps, "
                             f"got {tuple(x.shape[1:])}")
        total = self.grid[-1] * self.patch_size
        if L < total:
            x = torch.cat([x, x.new_full((B, C, total - L), float("nan"))], dim=-1)
        return x

    def token_mask(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, T) bool: which tokens hold data (not only padding)."""
        x = self.padded(x)
        B, C, _ = x.shape
        finite = torch.isfinite(x).view(B, C, self.grid[-1], self.patch_size).any(-1)  # (B, C, N)
        return finite.flatten(1) if self.channel_independent else finite.any(1)


class PatchEmbed1D(PatchGrid1D):
    """Cut a series into non-overlapping patches of ``patch_size`` steps and project each to a token.

    Args:
        length: L of the input (shorter series are NaN-padded at the end up to L).
        in_channels: C of the input.
        dim: token width D.
        patch_size: steps per patch; None picks ceil(L / max_tokens).
        max_tokens: the token budget used when ``patch_size`` is None.
        channel_independent: False mixes all channels of a patch into one token (grid (N,));
            True makes one token per channel and patch (grid (C, N), channel-major), with a 2-D
            position code (channel, time) as in PatchTST's channel independence.
        instance_norm: standardise each series and channel first (see ``instance_normalize``); this
            drops each series' level and scale, which some tasks need (off in the bundled recipes).
        embed: 'linear' (one linear map of the patch) or 'conv' (TS-JEPA's patch embedding: a
            width-3 convolution inside the patch, GELU, then a linear map of the result).
    Shapes:
        forward: (B, C, L') with L' <= L -> (B, T, D) with T = N or C*N, N = ceil(L / patch_size);
        token_mask(x) -> (B, T) bool, True where the patch holds at least one finite value.
    """

    def __init__(self, *, length: int, in_channels: int, dim: int, patch_size: int | None = None,
                 max_tokens: int = 64, channel_independent: bool = False, instance_norm: bool = True,
                 embed: str = "linear"):
        super().__init__(length=length, in_channels=in_channels, patch_size=patch_size, max_tokens=max_tokens,
                         channel_independent=channel_independent)
        self.dim, self.instance_norm = dim, instance_norm
        if embed not in ("linear", "conv"):
            raise ValueError(f"unknown embed {embed!r}: use 'linear' or 'conv'")
        self.embed_kind = embed
        chans = 1 if channel_independent else self.in_channels
        hidden = max(dim // 4, 8)
        self.conv = nn.Conv1d(chans, hidden, kernel_size=3, padding=1) if embed == "conv" else None
        self.proj = nn.Linear((hidden if embed == "conv" else chans) * self.patch_size, dim)
        self.register_buffer("pos_embed", self.position_embedding(dim)[None], persistent=False)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.instance_norm:
            x = instance_normalize(x)
        x = self.padded(x)
        x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        B, C, _ = x.shape
        n, p = self.grid[-1], self.patch_size
        patches = x.view(B, C, n, p)
        if self.channel_independent:
            patches = patches.reshape(B, C * n, 1, p)                   # (B, T=C*N, 1, p), channel-major
        else:
            patches = patches.permute(0, 2, 1, 3)                       # (B, T=N, C, p)
        if self.conv is not None:  # per patch: (B*T, c, p) -> (B*T, hidden, p), no mixing across patches
            T, c = patches.shape[1], patches.shape[2]
            patches = torch.nn.functional.gelu(self.conv(patches.reshape(B * T, c, p))).view(B, T, -1, p)
        return self.proj(patches.flatten(2)) + self.pos_embed.to(x.dtype)
