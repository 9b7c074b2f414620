"""Feature tokenizer: one token per column, plus T-JEPA's regularisation tokens in front."""
from __future__ import annotations

import torch
from torch import nn

from ..tokenizers.posembed import sincos_1d


def piecewise_linear(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear encoding of values against bin edges.

    Args:
        x: (B, F) values; edges: (F, T+1) increasing bin edges per feature (equal neighbours mark unused bins).
    Returns:
        (B, F, T): component t is the fraction of bin t that lies below x, clipped to [0, 1], except
        that the first bin is not clipped below and the last not clipped above (so values outside
        the training range extrapolate); unused bins are 0 (Gorishniy et al., 2022).
    """
    lo, hi = edges[:, :-1], edges[:, 1:]                       # (F, T)
    width = hi - lo
    used = width > 0
    t = (x[..., None] - lo) / torch.where(used, width, torch.ones_like(width))  # (B, F, T)
    T = t.shape[-1]
    low = torch.zeros(T, dtype=t.dtype, device=t.device)
    high = torch.ones(T, dtype=t.dtype, device=t.device)
    low[0], high[-1] = -float("inf"), float("inf")
    # the first and last *used* bins of each feature extrapolate; with unused padding at the end, the
    # last used bin is not bin T-1, so clip it per feature
    last = used.long().cumsum(-1).argmax(-1)                   # (F,) index of the last used bin
    is_last = torch.arange(T, device=t.device)[None, :] == last[:, None]
    t = torch.maximum(t, low)
    t = torch.where(is_last, t, torch.minimum(t, high))
    return t * used


class FeatureTokenizer(nn.Module):
    """Tokens of table rows encoded by :func:`polyjepa.tabular.schema.encode`.

    A numeric value v of column j becomes ``v * W_j + b_j`` (``numeric='linear'``, FT-Transformer) or
    ``ple(v) @ W_j + b_j`` (``numeric='ple'``, piecewise-linear over quantile bins); a category
    becomes its column's embedding row, with one extra row per column for categories not seen in
    training; a missing value (NaN) becomes the column's learned "missing" token. ``n_reg_tokens``
    learned regularisation tokens are put in front (T-JEPA: they travel with the context and are
    never prediction targets). A column's identity is its position: every column has its own weights.

    Args:
        meta: the table schema (``fit_schema``): columns, kinds, categories, edges.
        dim: token width D.
    Shapes:
        forward(x (B, F)) -> (B, R + F, D); ``grid`` = (R + F,).
    (Thimonier et al., T-JEPA, 2024; Gorishniy et al., FT-Transformer 2021 and numeric embeddings 2022.)
    """

    INVARIANCE = "table_vicreg"  # the invariance part whose views fit these inputs (default: image views)

    def __init__(self, *, meta: dict, dim: int, n_reg_tokens: int = 1, numeric: str = "linear"):
        super().__init__()
        if "kinds" not in meta:
            raise ValueError("the feature tokenizer needs a table schema in meta: load the data with data.loader=table")
        if numeric not in ("linear", "ple"):
            raise ValueError(f"numeric must be 'linear' or 'ple', got {numeric!r}")
        if n_reg_tokens < 0:
            raise ValueError(f"n_reg_tokens must be >= 0, got {n_reg_tokens}")
        kinds = list(meta["kinds"])
        self.n_features, self.n_reg, self.dim, self.numeric = len(kinds), n_reg_tokens, dim, numeric
        num = [j for j, k in enumerate(kinds) if k == "num"]
        cat = [j for j, k in enumerate(kinds) if k == "cat"]
        self.register_buffer("num_idx", torch.tensor(num, dtype=torch.long), persistent=False)
        self.register_buffer("cat_idx", torch.tensor(cat, dtype=torch.long), persistent=False)
        # tokens are built as [numeric | categorical]; this puts them back in column order
        self.register_buffer("order", torch.argsort(torch.tensor(num + cat, dtype=torch.long)), persistent=False)
        sizes = [len(meta["categories"][j]) + 1 for j in cat]       # + the unknown-category slot
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.register_buffer("cat_offset", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.register_buffer("cat_unknown", torch.tensor([s - 1 for s in sizes], dtype=torch.long), persistent=False)
        n_bins = max([len(meta["edges"][j]) - 1 for j in num] + [1])
        edges = torch.zeros(len(num), n_bins + 1)
        for i, j in enumerate(num):
            e = torch.tensor(meta["edges"][j], dtype=torch.float32)
            if len(e) < 2:  # a constant column: one empty bin
                e = torch.cat([e, e]) if len(e) else torch.zeros(2)
            edges[i] = torch.cat([e, e[-1:].expand(n_bins + 1 - len(e))])
        self.register_buffer("edges", edges, persistent=False)
        width = n_bins if numeric == "ple" else 1
        self.num_weight = nn.Parameter(torch.randn(len(num), width, dim) / width ** 0.5)
        self.num_bias = nn.Parameter(torch.randn(len(num), dim) * 0.02)
        self.cat_embed = nn.Parameter(torch.randn(max(sum(sizes), 1), dim))
        self.missing_token = nn.Parameter(torch.randn(self.n_features, dim) * 0.02)
        self.reg_token = nn.Parameter(torch.randn(n_reg_tokens, dim) * 0.02)

    @property
    def grid(self) -> tuple[int]:
        return (self.n_reg + self.n_features,)

    def position_embedding(self, dim: int) -> torch.Tensor:
        """(R + F, dim) fixed 1-D sin-cos embedding of token positions (regularisation tokens first)."""
        return sincos_1d(dim, torch.arange(self.grid[0], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (batch, {self.n_features}) encoded rows, got {tuple(x.shape)}")
        B = x.shape[0]
        x = x.to(self.num_weight.dtype)
        missing = torch.isnan(x)                                               # (B, F)
        v = torch.nan_to_num(x[:, self.num_idx], nan=0.0)                      # (B, Fn)
        if self.numeric == "ple":
            num = torch.einsum("bft,ftd->bfd", piecewise_linear(v, self.edges.to(v.dtype)), self.num_weight)
        else:
            num = v[..., None] * self.num_weight[:, 0]
        num = num + self.num_bias                                              # (B, Fn, D)
        codes = torch.nan_to_num(x[:, self.cat_idx], nan=0.0).round().long()   # (B, Fc)
        codes = torch.where((codes < 0) | (codes > self.cat_unknown), self.cat_unknown, codes)
        cat = self.cat_embed[codes + self.cat_offset]                          # (B, Fc, D)
        tokens = torch.cat([num, cat], dim=1)[:, self.order]                   # (B, F, D) in column order
        tokens = torch.where(missing[..., None], self.missing_token.expand(B, -1, -1), tokens)
        return torch.cat([self.reg_token.expand(B, -1, -1), tokens], dim=1)   # (B, R + F, D)
