"""Predictors that place mask tokens at data-dependent positions (patch centres)."""
from __future__ import annotations

import torch
from torch import nn

from ..models.predictor import block_attention_mask
from ..models.transformer import Block, attention, init_weights, require_positive
from .tokenizer import centre_mlp


class _CentreQueries(nn.Module):
    """What both point predictors share: the input projection, centre positions, the mask token, the
    output head, and the [context | mask tokens at target centres] inputs."""

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, mlp_ratio: float, pos_hidden: int, block):
        super().__init__()
        require_positive(dim=dim, depth=depth, heads=heads, pos_hidden=pos_hidden)
        self.embed = nn.Linear(in_dim, dim)
        self.pos_embed = centre_mlp(dim, pos_hidden)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, in_dim)

    def inputs(self, z: torch.Tensor, context_centres: torch.Tensor, target_centres: torch.Tensor):
        """(context (B, Nc, Dp), queries (B, M*Nt, Dp), block attention mask ((Nc + M*Nt) square))."""
        B, M, Nt, _ = target_centres.shape
        ctx = self.embed(z) + self.pos_embed(context_centres)
        q = self.mask_token + self.pos_embed(target_centres.reshape(B, M * Nt, 3))
        return ctx, q, block_attention_mask(z.shape[1], M, Nt, z.device)


class PointPredictor(_CentreQueries):
    """Predict target-patch features from context features and the target patches' centres (Point-JEPA).

    The sequence is [context | block 1 | ... | block M]; mask tokens carry the positional embedding of
    their target centres; each block's tokens see the context and their own block only (one pass
    equal to M separate passes, as the core's MaskTokenPredictor).
    Args:
        in_dim: encoder width D; dim, depth, heads: the predictor transformer.
    Shapes:
        forward(z (B, Nc, D), context_centres (B, Nc, 3), target_centres (B, M, Nt, 3)) -> (B, M, Nt, D).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0,
                 pos_hidden: int = 128):
        super().__init__(in_dim=in_dim, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                         pos_hidden=pos_hidden, block=Block)
        init_weights(self, self.blocks)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, z: torch.Tensor, context_centres: torch.Tensor, target_centres: torch.Tensor) -> torch.Tensor:
        B, M, Nt, _ = target_centres.shape
        Nc = z.shape[1]
        ctx, q, mask = self.inputs(z, context_centres, target_centres)  # each block sees context + itself
        x = torch.cat([ctx, q], dim=1)
        for block in self.blocks:
            x = block(x, mask)
        return self.proj(self.norm(x[:, Nc:])).view(B, M, Nt, -1)


class InjectBlock(nn.Module):
    """A pre-norm block whose queries attend to [context | queries]; the context is not updated.

    Shapes: forward(q (B, Lq, D), ctx (B, Lc, D), attn_mask (Lq, Lc + Lq) bool | None) -> (B, Lq, D).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_q, self.norm_ctx, self.norm2 = (nn.LayerNorm(dim, eps=1e-6) for _ in range(3))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, q: torch.Tensor, ctx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, Lq, D = q.shape
        h, hs = self.heads, D // self.heads
        qn = self.norm_q(q)
        kv_in = torch.cat([self.norm_ctx(ctx), qn], dim=1)                   # (B, Lc + Lq, D)
        k, v = self.kv(kv_in).view(B, -1, 2, h, hs).permute(2, 0, 3, 1, 4)   # (B, h, L, hs) each
        query = self.q(qn).view(B, Lq, h, hs).transpose(1, 2)
        out = attention(query, k, v, attn_mask)
        q = q + self.proj(out.transpose(1, 2).reshape(B, Lq, D))
        return q + self.mlp(self.norm2(q))


class ContextInjectedPredictor(_CentreQueries):
    """3D-JEPA's context-aware decoder: the encoder's context features are fed to every layer.

    Only the mask tokens (mask token + target-centre embedding) go through the layers; each layer
    attends to the context (the encoder output with context-centre positions, the same at every
    layer, normalised per layer) and to the tokens of its own target block (Hu et al., 3D-JEPA, 2024).
    Shapes as :class:`PointPredictor`.
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0,
                 pos_hidden: int = 128):
        super().__init__(in_dim=in_dim, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                         pos_hidden=pos_hidden, block=InjectBlock)
        init_weights(self, [])
        for layer, block in enumerate(self.blocks, start=1):  # the residual rescaling of init_weights
            block.proj.weight.data.div_((2.0 * layer) ** 0.5)
            block.mlp[2].weight.data.div_((2.0 * layer) ** 0.5)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, z: torch.Tensor, context_centres: torch.Tensor, target_centres: torch.Tensor) -> torch.Tensor:
        B, M, Nt, _ = target_centres.shape
        ctx, q, mask = self.inputs(z, context_centres, target_centres)
        mask = mask[z.shape[1]:]                                             # (M*Nt, Nc + M*Nt): the queries' rows
        for block in self.blocks:
            q = block(q, ctx, mask)
        return self.proj(self.norm(q)).view(B, M, Nt, -1)
