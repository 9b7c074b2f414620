"""Narrow transformer predictor with a learnable mask token and target positions."""
from __future__ import annotations

import torch
from torch import nn

from .transformer import Block, init_weights, require_positive, run_block


def block_attention_mask(n_context: int, n_blocks: int, block_len: int, device=None) -> torch.Tensor:
    """(L, L) bool, True = may attend, for [context | block 1 | ... | block M] with L = Nc + M*Nt.

    Context tokens attend to the context; the mask tokens of block m attend to the context and to
    block m. So each block is predicted from the context alone, as if it had its own pass, while
    all blocks share one pass (the reference runs M passes over M copies of the context).
    """
    group = torch.cat([torch.zeros(n_context, dtype=torch.long, device=device),
                       torch.arange(1, n_blocks + 1, device=device).repeat_interleave(block_len)])
    return (group[:, None] == group[None, :]) | (group[None, :] == 0)


class MaskTokenPredictor(nn.Module):
    """Predict target-token features from context features (I-JEPA predictor).

    Args:
        in_dim: encoder width D; dim: predictor width Dp; depth, heads: its transformer.
        pos_embed: (N, Dp) fixed positions of the tokenizer's grid at width Dp.
        isolate_targets: give each target block its own attention group (see block_attention_mask);
            False lets all mask tokens attend to each other (cheaper, unmasked attention).
        grad_checkpoint: recompute each block in the backward pass instead of keeping its activations
            (see :class:`~polyjepa.models.encoder.TransformerEncoder`).
    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc), target_idx (B, M, Nt)) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor,
                 mlp_ratio: float = 4.0, isolate_targets: bool = True, grad_checkpoint: bool = False):
        super().__init__()
        require_positive(dim=dim, depth=depth, heads=heads)   # depth 0 could not read the context at all
        self.grad_checkpoint = bool(grad_checkpoint)
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, in_dim)
        self.register_buffer("pos_embed", pos_embed.clone(), persistent=False)
        self.isolate_targets = isolate_targets
        init_weights(self, self.blocks)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
        B, M, Nt = target_idx.shape
        Nc = context_idx.shape[1]
        pos = self.pos_embed.to(z.dtype)
        x = self.embed(z) + pos[context_idx]                                  # (B, Nc, Dp)
        q = self.mask_token + pos[target_idx.reshape(B, M * Nt)]              # (B, M*Nt, Dp)
        x = torch.cat([x, q], dim=1)
        mask = block_attention_mask(Nc, M, Nt, z.device) if self.isolate_targets and M > 1 else None
        for block in self.blocks:
            x = run_block(block, x, mask, recompute=self.grad_checkpoint)
        out = self.proj(self.norm(x[:, Nc:]))                                 # (B, M*Nt, D)
        return out.view(B, M, Nt, -1)


class OutputHead(nn.Module):
    """A predictor followed by a linear map of its output features to another width.

    Args:
        predictor: any predictor with output (..., in_dim); in_dim, out_dim: the widths.
    Shapes:
        forward(*args) -> predictor(*args) mapped to (..., out_dim).
    """

    def __init__(self, predictor: nn.Module, in_dim: int, out_dim: int):
        super().__init__()
        self.predictor = predictor
        self.head = nn.Linear(in_dim, out_dim)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.head(self.predictor(*args, **kwargs))
