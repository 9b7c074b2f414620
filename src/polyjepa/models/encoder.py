"""Transformer encoder over a subset of tokens, and the backbone = tokenizer + encoder."""
from __future__ import annotations

import torch
from torch import nn

from .transformer import Block, gather_tokens, init_weights, require_positive, run_block


class TransformerEncoder(nn.Module):
    """A stack of pre-norm blocks over the kept tokens only, then a final LayerNorm.

    Args:
        dim: width D; depth: blocks; heads: attention heads; mlp_ratio: MLP hidden / D.
        grad_checkpoint: keep only each block's input during a training forward and recompute the block in the
            backward pass (activation checkpointing): the activation memory of a step falls to about one
            block's worth plus the block inputs, for about a third more compute. Values and gradients are
            those of the plain forward. Without gradients (evaluation, an EMA target) it changes nothing.
    Shapes:
        forward(tokens (B, N, D), keep_idx (B, Nk) | None) -> (B, Nk, D) (Nk = N without keep_idx).
    """

    def __init__(self, *, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 grad_checkpoint: bool = False):
        super().__init__()
        require_positive(dim=dim, depth=depth, heads=heads)
        self.dim, self.depth, self.heads = dim, depth, heads
        self.grad_checkpoint = bool(grad_checkpoint)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        init_weights(self, self.blocks)

    def forward(self, tokens: torch.Tensor, keep_idx: torch.Tensor | None = None,
                layers: int = 1) -> torch.Tensor:
        """``layers`` > 1 returns the mean of the last ``layers`` block outputs, each normalised."""
        # token-major memory, whatever layout the tokenizer produced: the blocks' norms and linear layers would
        # otherwise copy a strided stream at every layer
        x = tokens.contiguous() if keep_idx is None else gather_tokens(tokens, keep_idx)
        outs = []
        for i, block in enumerate(self.blocks):
            x = run_block(block, x, recompute=self.grad_checkpoint)
            if i >= self.depth - layers:
                outs.append(self.norm(x))
        return outs[0] if layers == 1 else torch.stack(outs).mean(0)


def grid_regions(pool: str) -> int:
    """K of a ``grid:K`` read-out (regions per side), checked to be a positive integer."""
    k = pool.split(":", 1)[1]
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"pool {pool!r}: K in grid:K is the number of regions per side, a positive integer")
    return int(k)


TOKEN_POOLS = ("mean", "max", "mean+max", "mean+std", "tokens")


def pool_tokens(h: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, N, D) token features -> (B, F): ``mean``/``max`` over tokens (F = D), ``mean+max`` or
    ``mean+std`` (F = 2D), ``tokens`` flattened (F = N*D)."""
    if pool == "mean":
        return h.mean(1)
    if pool == "max":
        return h.amax(1)
    if pool == "mean+max":
        return torch.cat([h.mean(1), h.amax(1)], dim=1)
    if pool == "mean+std":
        return torch.cat([h.mean(1), h.std(1)], dim=1)
    if pool == "tokens":
        return h.flatten(1)
    raise ValueError(f"unknown pool {pool!r}: use one of {', '.join(TOKEN_POOLS)}")


class Backbone(nn.Module):
    """Tokenizer + encoder: the network whose embeddings a user keeps.

    Shapes:
        forward(x, keep_idx (B, Nk) | None) -> (B, Nk, D) token features.
        embed(x) -> (B, F) pooled features for probes; F = D for ``pool="mean"``.
    """

    def __init__(self, tokenizer: nn.Module, encoder: TransformerEncoder):
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = encoder

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, layers: int = 1) -> torch.Tensor:
        if keep_idx is not None and getattr(self.tokenizer, "masks_input", False):  # it hides the dropped input
            return self.encoder(self.tokenizer(x, keep_idx), keep_idx, layers=layers)
        return self.encoder(self.tokenizer(x), keep_idx, layers=layers)

    def embed(self, x: torch.Tensor, *, pool: str = "mean", layers: int = 1) -> torch.Tensor:
        """Pooled features of all tokens.

        ``mean`` over tokens (B, D); ``mean+std`` (B, 2D); ``tokens`` flattened (B, N*D);
        ``tokens+input`` the flattened tokens followed by the flattened tokenizer output (B, 2*N*D); ``grid:K``
        averages a 2-D token grid into K x K regions and concatenates them with the mean (B, (K*K+1)*D),
        keeping coarse layout (tokenizers with a ``grid`` only).
        """
        if pool == "tokens+input":  # the encoder's tokens, then the tokenizer's (what each token started as)
            tokens = self.tokenizer(x)  # once: forward without keep_idx is encoder(tokenizer(x))
            return torch.cat([self.encoder(tokens, layers=layers).flatten(1), tokens.flatten(1)], dim=1)
        h = self(x, layers=layers)  # (B, N, D)
        if pool in ("mean", "mean+std", "tokens"):
            return pool_tokens(h, pool)
        if pool.startswith("grid:") and hasattr(self.tokenizer, "grid"):
            k = grid_regions(pool)
            B, N, D = h.shape
            g = h.transpose(1, 2).reshape(B, D, *self.tokenizer.grid)
            regions = torch.nn.functional.adaptive_avg_pool2d(g, k).flatten(2).transpose(1, 2)  # (B, k*k, D)
            return torch.cat([h.mean(1), regions.flatten(1)], dim=1)
        raise ValueError(f"unknown pool {pool!r}: use 'mean', 'mean+std', 'tokens', 'tokens+input' or 'grid:K' "
                         f"(2-D grids)")


SIZES = {
    "micro": dict(dim=64, depth=4, heads=4),
    "nano": dict(dim=128, depth=6, heads=4),
    "tiny": dict(dim=192, depth=12, heads=3),
    "small": dict(dim=384, depth=12, heads=6),
    "base": dict(dim=768, depth=12, heads=12),
    "large": dict(dim=1024, depth=24, heads=16),
}


def vit_encoder(size: str = "tiny", *, dim: int | None = None, depth: int | None = None, heads: int | None = None,
                mlp_ratio: float = 4.0, qkv_bias: bool = True, grad_checkpoint: bool = False) -> TransformerEncoder:
    """A ViT encoder of a named size (micro, nano, tiny, small, base, large); dim/depth/heads override it.
    ``grad_checkpoint`` recomputes each block in the backward pass instead of storing its activations."""
    if size not in SIZES:
        raise ValueError(f"unknown encoder size {size!r}: choose one of {', '.join(SIZES)}")
    given = {k: v for k, v in dict(dim=dim, depth=depth, heads=heads).items() if v is not None}
    return TransformerEncoder(**{**SIZES[size], **given}, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                              grad_checkpoint=grad_checkpoint)


def vit_tiny(**overrides) -> TransformerEncoder:
    """``vit_encoder("tiny", ...)``: ViT-Tiny (192 wide, 12 deep, 3 heads); keyword arguments override it."""
    return vit_encoder("tiny", **overrides)


def vit_small(**overrides) -> TransformerEncoder:
    """``vit_encoder("small", ...)``: ViT-Small (384 wide, 12 deep, 6 heads); keyword arguments override it."""
    return vit_encoder("small", **overrides)


def vit_base(**overrides) -> TransformerEncoder:
    """``vit_encoder("base", ...)``: ViT-Base (768 wide, 12 deep, 12 heads); keyword arguments override it."""
    return vit_encoder("base", **overrides)
