"""DSeq-JEPA: target blocks ordered by the teacher's saliency and predicted one after another."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..methods.jepa import JEPA
from ..models.predictor import MaskTokenPredictor
from ..models.transformer import gather_tokens
from ..targets.ema import batch_standardize

SALIENCY = ("attention", "norm")
ORDERS = ("saliency", "random")


def token_saliency(h: torch.Tensor, kind: str = "attention") -> torch.Tensor:
    """(B, N, D) un-normalised encoder features -> (B, N) saliency per token, no labels involved.

    ``attention``: the softmax attention of the mean token (a stand-in for a class token) over the tokens,
    softmax_i(<mean_j h_j, h_i> / sqrt(D)); ``norm``: each token's L2 norm.
    """
    if kind == "attention":
        q = h.mean(1, keepdim=True)                                           # (B, 1, D)
        return torch.softmax((q * h).sum(-1) / h.shape[-1] ** 0.5, dim=1)
    if kind == "norm":
        return h.norm(dim=-1)
    raise ValueError(f"unknown saliency {kind!r}: use one of {', '.join(SALIENCY)}")


def saliency_order(scores: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, M) block saliencies -> (B, M) permutation, most salient first; ties broken at random by ``generator``
    (so the order is deterministic under a seed)."""
    keys = torch.rand(scores.shape, generator=generator).to(scores.device)  # tie-breaks
    by_key = keys.argsort(dim=1)
    by_score = (-scores.gather(1, by_key)).argsort(dim=1, stable=True)
    return by_key.gather(1, by_score)


def sequence_attention_mask(n_context: int, target_idx: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) bool, True = may attend, for [context | revealed 1..M-1 | queries 1..M], L = Nc + (2M-1) Nt.

    Context tokens see the context; revealed block j sees the context and revealed blocks <= j; the queries
    of block k see the context, the revealed blocks before k and their own block, except revealed tokens at
    any position of block k (overlapping blocks must not hand block k its own answer).
    """
    B, M, Nt = target_idx.shape
    dev = target_idx.device
    ar = torch.arange(1, M + 1, device=dev)
    # group of each position: 0 context, j for revealed block j, M + k for the queries of block k
    group = torch.cat([torch.zeros(n_context, dtype=torch.long, device=dev),
                       ar[:-1].repeat_interleave(Nt), (M + ar).repeat_interleave(Nt)])
    rev = (group >= 1) & (group < M)
    qry = group > M
    g_row, g_col = group[:, None], group[None, :]
    allowed = (g_col == 0) | (rev[:, None] & rev[None, :] & (g_col <= g_row)) \
        | (qry[:, None] & rev[None, :] & (g_col < g_row - M)) | (qry[:, None] & (g_col == g_row))
    allowed = allowed.expand(B, -1, -1).clone()
    # revealed tokens that sit inside the querying block
    Nr = (M - 1) * Nt
    if Nr:
        r_pos = target_idx[:, :-1].reshape(B, Nr)
        inside = (target_idx[..., None] == r_pos[:, None, None, :]).any(2)    # (B, M, Nr): in block k
        clash = inside.repeat_interleave(Nt, dim=1)                          # (B, M*Nt, Nr)
        rows = slice(n_context + Nr, None)
        cols = slice(n_context, n_context + Nr)
        allowed[:, rows, cols] &= ~clash
    return allowed[:, None]


class SequentialPredictor(MaskTokenPredictor):
    """Predict M target blocks in order: block k is predicted from the context and the teacher's features
    of blocks 1..k-1 (revealed, as DSeq-JEPA grows the context region by region), in one masked pass.

    Args: as :class:`~polyjepa.models.predictor.MaskTokenPredictor`.
    Shapes:
        forward(z (B, Nc, D), context_idx (B, Nc), target_idx (B, M, Nt), revealed (B, M, Nt, D) | None)
        -> (B, M, Nt, D). Without ``revealed`` it is the I-JEPA predictor (blocks independent).
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, pos_embed: torch.Tensor,
                 mlp_ratio: float = 4.0):
        super().__init__(in_dim=in_dim, dim=dim, depth=depth, heads=heads, pos_embed=pos_embed, mlp_ratio=mlp_ratio)
        self.reveal_embed = torch.nn.Linear(in_dim, dim)

    def forward(self, z: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor,
                revealed: torch.Tensor | None = None) -> torch.Tensor:
        B, M, Nt = target_idx.shape
        if revealed is None or M == 1:
            return super().forward(z, context_idx, target_idx)
        Nc = context_idx.shape[1]
        pos = self.pos_embed.to(z.dtype)
        x = self.embed(z) + pos[context_idx]                                       # (B, Nc, Dp)
        r = self.reveal_embed(revealed[:, :-1].reshape(B, (M - 1) * Nt, -1)) \
            + pos[target_idx[:, :-1].reshape(B, (M - 1) * Nt)]                     # (B, (M-1)Nt, Dp)
        q = self.mask_token + pos[target_idx.reshape(B, M * Nt)]                   # (B, M*Nt, Dp)
        x = torch.cat([x, r, q], dim=1)
        mask = sequence_attention_mask(Nc, target_idx)
        for block in self.blocks:
            x = block(x, mask)
        return self.proj(self.norm(x[:, -M * Nt:])).view(B, M, Nt, -1)


class DSeqJEPA(JEPA):
    """I-JEPA whose target blocks are ranked by the EMA teacher's saliency and predicted in that order.

    Each step: the teacher encodes the whole image once; its token saliency (:func:`token_saliency`, from
    its own features, no labels) averaged over each target block ranks the blocks (most salient first,
    ``order='saliency'``; ``order='random'`` is the unordered ablation with the same sequential predictor);
    the :class:`SequentialPredictor` then predicts block k from the context plus the teacher features of the
    blocks ranked before it. DSeq-JEPA (He, Sakai et al., 2025) ranks Otsu-thresholded connected regions of
    a class-token attention map; here the regions are the masker's target blocks.

    Args: as :class:`~polyjepa.methods.jepa.JEPA`, plus saliency ('attention' or 'norm') and order.
    """

    def __init__(self, *, saliency: str = "attention", order: str = "saliency", **kwargs):
        if kwargs.get("invariance") is not None:
            raise ValueError("dseq_jepa has no invariance term: drop the invariance section")
        super().__init__(**kwargs)
        if saliency not in SALIENCY:
            raise ValueError(f"unknown saliency {saliency!r}: use one of {', '.join(SALIENCY)}")
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
        self.saliency, self.order = saliency, order

    @torch.no_grad()
    def teacher(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised targets (B, N, D), token saliency (B, N)) from one pass of the EMA teacher."""
        t = self.target
        raw = t.model(x, layers=t.layers)
        h = F.layer_norm(raw, raw.shape[-1:]) if t.normalize == "layer_norm" else raw
        if t.batch_standardize:
            h = batch_standardize(h)
        return h, token_saliency(raw, self.saliency)

    def ordered_targets(self, target_idx: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
        """(B, M, Nt) target blocks re-ordered per sample by decreasing mean saliency (or at random)."""
        B, M, Nt = target_idx.shape
        if self.order == "random":
            perm = torch.rand(B, M, device=target_idx.device).argsort(1)
        else:
            block = saliency.gather(1, target_idx.reshape(B, M * Nt)).view(B, M, Nt).mean(-1)   # (B, M)
            perm = saliency_order(block)
        return target_idx.gather(1, perm[..., None].expand(-1, -1, Nt))

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, context_idx = batch["x"], batch["context_idx"]
        h_all, sal = self.teacher(x)
        target_idx = self.ordered_targets(batch["target_idx"], sal)
        h = gather_tokens(h_all, target_idx)                                 # (B, M, Nt, D)
        z = self.backbone(x, keep_idx=context_idx)
        p = self.predictor(z, context_idx, target_idx, revealed=h)
        return self.add_regularizer(self.objective(p, h), z)
