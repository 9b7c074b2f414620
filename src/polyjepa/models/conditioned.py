"""Conditioned predictor: the I-JEPA predictor told what happened between context and target.

The condition is a real vector per sample (B, C) or a sequence of them (B, S, C): transform
parameters, an action, an action chunk. Integer ids (B,) or (B, S) (an instrument, which clip)
are the same thing with an embedding table as the condition encoder. World models (IWM, seq-JEPA,
ACT-JEPA), Stem-JEPA and action-conditioned video all use this one part.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .predictor import block_attention_mask
from .transformer import Block, init_weights, require_positive

INJECT = ("tokens", "add", "film")
PREDICT_AT = ("targets", "tokens")


class ConditionEncoder(nn.Module):
    """Condition -> (B, S, Dp) embeddings: an MLP on real vectors, or an embedding table on ids.

    Args:
        dim: Dp, the predictor's width.
        cond_dim: C, the width of a real condition vector (the MLP reads C per vector); 0 for ids.
        n_conditions: size of the id table (ids instead of vectors); ids past the last are read as
            the last, so a one-id table ignores the condition (the ablation without it).
        hidden: the MLP's hidden width (default Dp).
        flatten: a sequence (B, S, C) is read as one vector of width S*C (one embedding per sample).
    Shapes:
        forward(cond (B, C) | (B, S, C) float, or (B,) | (B, S) int) -> (B, S', Dp), S' = 1 with flatten.
    """

    def __init__(self, *, dim: int, cond_dim: int = 0, n_conditions: int = 0, hidden: int | None = None,
                 cond_len: int = 1, flatten: bool = False):
        super().__init__()
        if (cond_dim > 0) == (n_conditions > 0):
            raise ValueError(f"a condition is either real vectors (cond_dim > 0) or ids (n_conditions > 0), "
                             f"got cond_dim={cond_dim}, n_conditions={n_conditions}")
        require_positive(cond_len=cond_len)
        self.cond_dim, self.n_conditions, self.cond_len, self.flatten = cond_dim, n_conditions, cond_len, flatten
        if n_conditions:  # the table itself (key ``weight``), initialised as nn.Embedding initialises its own
            self.weight = nn.Parameter(torch.empty(n_conditions, dim))
            nn.init.normal_(self.weight)
        else:
            width = cond_dim * cond_len if flatten else cond_dim
            hidden = hidden or dim
            self.net = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def expected(self) -> str:
        if self.n_conditions:
            return f"integer ids in [0, {self.n_conditions}) of shape (B,) or (B, S)"
        if self.flatten and self.cond_len > 1:
            return f"a sequence of shape (B, {self.cond_len}, {self.cond_dim})"
        return f"vectors of width {self.cond_dim}: shape (B, {self.cond_dim}) or (B, S, {self.cond_dim})"

    def check(self, cond: torch.Tensor, batch: int) -> torch.Tensor:
        """``cond`` as (B, S, C) floats or (B, S) ids, or a UserError naming the expected shape."""
        if self.n_conditions:
            if cond.is_floating_point() or cond.ndim not in (1, 2) or cond.shape[0] != batch:
                raise UserError(f"condition of shape {tuple(cond.shape)} ({cond.dtype}): this predictor takes "
                                f"{self.expected()} with B={batch}")
            return cond if cond.ndim == 2 else cond[:, None]
        seq = cond if cond.ndim == 3 else cond[:, None] if cond.ndim == 2 else None
        ok = seq is not None and cond.is_floating_point() and seq.shape[0] == batch and seq.shape[2] == self.cond_dim
        if ok and self.flatten:
            ok = seq.shape[1] == self.cond_len
        elif ok:
            ok = seq.shape[1] <= self.cond_len
        if not ok:
            raise UserError(f"condition of shape {tuple(cond.shape)} ({cond.dtype}): this predictor takes "
                            f"{self.expected()} with B={batch}" + ("" if self.flatten else f", S <= {self.cond_len}")
                            + ": set predictor.cond_dim/cond_len to the condition's width and length")
        return seq

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        if self.n_conditions:
            return F.embedding(cond.clamp(max=self.n_conditions - 1), self.weight)  # (B, S, Dp)
        if self.flatten:
            return self.net(cond.flatten(1))[:, None]                   # (B, 1, Dp)
        return self.net(cond)                                           # (B, S, Dp)


class ConditionedPredictor(nn.Module):
    """The mask-token predictor (I-JEPA) with a condition: transform parameters, actions or ids.

    How the condition enters (``inject``):
        'tokens': each condition vector becomes one extra token (MLP or id embedding, plus a
            learned index embedding for sequences) that every token attends to; dropped at the
            output (IWM's sequence conditioning; Stem-JEPA's class token).
        'add': the (flattened) condition's embedding is added to every mask token (IWM's feature
            conditioning: concatenating the condition to each mask token and projecting is this,
            up to a constant). A constant condition is then a learned shift of the mask token.
        'film': every block's input is scaled and shifted, x * (1 + g) + b, with (g, b) a linear map
            of the condition's embedding, zero-initialised (so training starts from the plain predictor).

    Without a condition (``cond=None``) every mode computes exactly :class:`MaskTokenPredictor` with the
    same weights (the state-dict keys of those weights are the same).

    Args:
        in_dim: encoder width D; dim: predictor width Dp; depth, heads: its transformer.
        pos_embed: (N, Dp) fixed positions of the token grid.
        cond_dim: width C of a real condition vector; n_conditions: or the number of condition ids.
        cond_len: the longest condition sequence S ('tokens'), or its exact length ('add', 'film',
            which read the sequence as one vector of width S*C).
        cond_hidden: hidden width of the condition MLP (default Dp).
        predict_at: 'targets' (mask tokens at ``target_idx``, as I-JEPA) or 'tokens' (one prediction
            per context token, from all of them: Stem-JEPA predicts a part of the input at every position).
        isolate_targets: each target block attends only to the context (and the condition) and itself.
    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc) | None, target_idx (B, M, Nt) | None, cond) ->
            (B, M, Nt, D) with predict_at='targets'; (B, Nc, D) with predict_at='tokens'.
        A None ``context_idx`` means all N positions in order.
    Garrido et al. 2024 (IWM); Riou et al., ISMIR 2024 (Stem-JEPA); Perez et al. 2018 (FiLM).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor,
                 cond_dim: int = 0, n_conditions: int = 0, cond_len: int = 1, cond_hidden: int | None = None,
                 inject: str = "tokens", predict_at: str = "targets", mlp_ratio: float = 4.0,
                 isolate_targets: bool = True):
        super().__init__()
        require_positive(dim=dim, depth=depth, heads=heads)
        if inject not in INJECT:
            raise ValueError(f"unknown inject {inject!r}: use one of {', '.join(INJECT)}")
        if predict_at not in PREDICT_AT:
            raise ValueError(f"unknown predict_at {predict_at!r}: use 'targets' or 'tokens'")
        self.inject, self.predict_at, self.isolate_targets = inject, predict_at, isolate_targets
        # Creation order (embed, condition, blocks) keeps a Stem-JEPA predictor's initialisation as it was.
        self.embed = nn.Linear(in_dim, dim)
        if predict_at == "targets":
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.condition = ConditionEncoder(dim=dim, cond_dim=cond_dim, n_conditions=n_conditions, hidden=cond_hidden,
                                          cond_len=cond_len, flatten=inject != "tokens")
        self.cond_index = (nn.Parameter(torch.zeros(1, cond_len, dim)) if inject == "tokens" and cond_len > 1
                           else None)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.film = nn.ModuleList([nn.Linear(dim, 2 * dim) for _ in range(depth)]) if inject == "film" else None
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, in_dim)
        self.register_buffer("pos_embed", pos_embed.clone(), persistent=False)
        init_weights(self, self.blocks)
        if predict_at == "targets":
            nn.init.trunc_normal_(self.mask_token, std=0.02)
        if n_conditions:
            nn.init.trunc_normal_(self.condition.weight, std=0.02)
        if self.cond_index is not None:
            nn.init.trunc_normal_(self.cond_index, std=0.02)
        for lin in self.film or ():
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def cond_dim(self) -> int:
        return self.condition.cond_dim

    def encode_condition(self, cond: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, S, Dp) condition embeddings (checked: a wrong width is a UserError naming the right one)."""
        seq = self.condition.check(cond, batch)
        if seq.is_floating_point():
            seq = seq.to(self.embed.weight.dtype)
        e = self.condition(seq)
        if self.cond_index is not None:
            e = e + self.cond_index[:, :e.shape[1]]
        return e

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor | None = None,
                target_idx: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        B, Nc = z.shape[:2]
        pos = self.pos_embed.to(z.dtype)
        x = self.embed(z) + (pos[:Nc] if context_idx is None else pos[context_idx])   # (B, Nc, Dp)
        e = None if cond is None else self.encode_condition(cond, B)                   # (B, S, Dp)
        if self.predict_at == "targets":
            if target_idx is None:
                raise ValueError("a predictor with predict_at='targets' needs target_idx (B, M, Nt)")
            M, Nt = target_idx.shape[1:]
            q = self.mask_token + pos[target_idx.reshape(B, M * Nt)]                    # (B, M*Nt, Dp)
            if e is not None and self.inject == "add":
                q = q + e
            x = torch.cat([x, q], dim=1)
        elif e is not None and self.inject == "add":
            x = x + e
        S = e.shape[1] if e is not None and self.inject == "tokens" else 0
        if S:
            x = torch.cat([e, x], dim=1)                                                # (B, S + L, Dp)
        mask = None
        if self.predict_at == "targets" and self.isolate_targets and M > 1:
            mask = block_attention_mask(S + Nc, M, Nt, z.device)
        for i, block in enumerate(self.blocks):
            if e is not None and self.film is not None:
                g, b = self.film[i](e[:, 0]).unsqueeze(1).chunk(2, dim=-1)            # (B, 1, Dp) each
                x = x * (1 + g) + b
            x = block(x, mask)
        out = self.proj(self.norm(x[:, S + (Nc if self.predict_at == "targets" else 0):]))
        return out.view(B, M, Nt, -1) if self.predict_at == "targets" else out
