"""Pre-norm transformer blocks with fused QKV and scaled_dot_product_attention."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def require_positive(**sizes) -> None:
    """ValueError naming the first size that is not a positive integer (widths, depths, heads, patches)."""
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


class Attention(nn.Module):
    """Multi-head self-attention. (B, L, D) -> (B, L, D); ``attn_mask`` (L, L) bool, True = may attend."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        require_positive(dim=dim, heads=heads)
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, h, L, hs)
        q, k, v = qkv.unbind(0)   # one stack in the backward pass (indexing would zero-fill and add three times)
        out = attention(q, k, v, attn_mask)                                                  # (B, h, L, hs)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) v over the last two dims; ``attn_mask`` bool, True = may attend.

    PyTorch's fused kernel everywhere except in bf16/fp16 on a CPU: there its backward pass is 4-6x slower than
    the two matrix products it replaces at these sequence lengths (64 tokens, 32-64 per head), so the scores are
    computed explicitly, with the softmax in fp32.
    """
    if q.device.type != "cpu" or q.dtype == torch.float32 or q.dtype == torch.float64:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.float().softmax(-1).to(v.dtype) @ v


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


def run_block(block: nn.Module, x: torch.Tensor, *args, recompute: bool = False) -> torch.Tensor:
    """``block(x, *args)``; with ``recompute`` (and gradients on) through activation checkpointing: only the
    block's inputs are kept for the backward pass, which runs the block again to get its gradients."""
    if recompute and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(block, x, *args, use_reentrant=False)
    return block(x, *args)


def set_grad_checkpoint(module: nn.Module, on: bool = True) -> int:
    """Switch activation checkpointing on (or off) in every part of ``module`` that offers it (encoders,
    predictors: a ``grad_checkpoint`` attribute); returns how many parts were switched."""
    parts = [m for m in module.modules() if hasattr(m, "grad_checkpoint")]
    for m in parts:
        m.grad_checkpoint = bool(on)
    return len(parts)


def init_weights(module: nn.Module, blocks: nn.ModuleList) -> None:
    """Truncated-normal(0.02) linears, unit LayerNorms, and residual projections scaled by 1/sqrt(2 l)
    per layer l (the GPT-2 / I-JEPA rescaling that keeps the residual stream's variance bounded)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for layer, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer))
        block.mlp[2].weight.data.div_(math.sqrt(2.0 * layer))


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), idx (B, ...) -> (B, ..., D): the tokens at idx, per sample."""
    B, D = x.shape[0], x.shape[-1]
    flat = idx.reshape(B, -1)
    out = x.gather(1, flat.unsqueeze(-1).expand(-1, -1, D))
    return out.view(*idx.shape, D)
