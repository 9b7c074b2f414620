"""Tokenizer + encoder for padded series: padding tokens are never attended to nor pooled."""
from __future__ import annotations

import torch

from ..models.encoder import Backbone, TransformerEncoder, grid_regions
from ..models.transformer import gather_tokens


def encode_masked(encoder: TransformerEncoder, tokens: torch.Tensor, valid: torch.Tensor | None,
                  layers: int = 1) -> torch.Tensor:
    """Run ``encoder``'s blocks with a key-padding mask.

    Args:
        tokens: (B, N, D); valid: (B, N) bool, True = a real token (None: all real). Every sample
            needs at least one real token.
    Returns:
        (B, N, D) as ``TransformerEncoder.forward`` (mean of the last ``layers`` normalised outputs);
        no query attends to a padding token, so real tokens do not depend on padding.
    """
    # no mask when every token is real (the faster kernel); a graph being exported keeps the mask, as it
    # must hold for any input
    all_real = valid is None or (not torch.compiler.is_exporting() and bool(valid.all()))
    mask = None if all_real else valid[:, None, None, :]  # (B, 1, 1, N) -> heads, queries
    x, outs = tokens, []
    for i, block in enumerate(encoder.blocks):
        x = block(x, mask)
        if i >= encoder.depth - layers:
            outs.append(encoder.norm(x))
    return outs[0] if layers == 1 else torch.stack(outs).mean(0)


def masked_mean(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, N, D), (B, N) bool -> (B, D) mean over the real tokens."""
    w = valid.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp_min(1)


def segment_means(h: torch.Tensor, valid: torch.Tensor, time_steps: int, k: int) -> torch.Tensor:
    """(B, N, D) tokens on a (C, time_steps) or (time_steps,) grid -> (B, k, D): means over k equal
    segments of each sample's own real time span (channels averaged)."""
    B, N, D = h.shape
    C = N // time_steps
    h = h.view(B, C, time_steps, D)
    v = valid.view(B, C, time_steps).to(h.dtype)
    n_real = v.amax(1).sum(1).clamp_min(1)                                    # (B,) real time steps
    seg = (torch.arange(time_steps, device=h.device)[None] * k) // n_real[:, None].long()  # (B, T)
    onehot = torch.nn.functional.one_hot(seg.clamp(max=k - 1), k).to(h.dtype)  # (B, T, k)
    w = onehot[:, None] * v[..., None]                                         # (B, C, T, k)
    sums = torch.einsum("bctk,bctd->bkd", w, h)
    return sums / w.sum((1, 2))[..., None].clamp_min(1)


class SeriesBackbone(Backbone):
    """``Backbone`` for a ``PatchEmbed1D``: a key-padding mask from NaN padding in attention and pooling.

    Shapes:
        forward(x (B, C, L), keep_idx (B, Nk) | None) -> (B, Nk, D).
        embed(x) -> (B, F): ``mean`` or ``max`` (B, D), ``mean+std``/``mean+max`` (B, 2D), ``grid:K`` = mean plus
        the means of K equal time segments of each series' real span (B, (K+1)D), ``tokens`` (B, N*D).
    """

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, layers: int = 1) -> torch.Tensor:
        return self._encode(x, keep_idx, layers)[0]

    def _encode(self, x, keep_idx=None, layers=1):
        tokens, valid = self.tokenizer(x), self.tokenizer.token_mask(x)
        if keep_idx is not None:
            tokens, valid = gather_tokens(tokens, keep_idx), valid.gather(1, keep_idx)
        return encode_masked(self.encoder, tokens, valid, layers), valid

    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        h, valid = self._encode(x, layers=layers)
        mean = masked_mean(h, valid)
        if pool == "mean":
            return mean
        if pool == "mean+std":
            var = masked_mean((h - mean[:, None]).pow(2), valid)
            return torch.cat([mean, var.clamp_min(0).sqrt()], dim=1)
        if pool in ("max", "mean+max"):
            mx = h.masked_fill(~valid[..., None], float("-inf")).amax(1)
            return mx if pool == "max" else torch.cat([mean, mx], dim=1)
        if pool == "tokens":
            return (h * valid[..., None].to(h.dtype)).flatten(1)
        if pool.startswith("grid:"):
            k = grid_regions(pool)
            seg = segment_means(h, valid, self.tokenizer.grid[-1], k)
            return torch.cat([mean, seg.flatten(1)], dim=1)
        raise ValueError(f"unknown pool {pool!r}: use 'mean', 'max', 'mean+std', 'mean+max', 'tokens' or 'grid:K'")
