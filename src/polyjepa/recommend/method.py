"""Two-tower recommendation with a self-supervised item term: a query tower and an item tower trained with
in-batch softmax on observed pairs, plus InfoNCE between two correlated-feature-masked views of items drawn
uniformly from the corpus (so that rarely seen items get a training signal too)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .masking import correlated_masks, random_masks
from .objectives import in_batch_softmax, ssl_infonce

MASKINGS = ("cfm", "rfm")


class FieldTower(nn.Module):
    """Features grouped into fields -> one embedding per field -> MLP -> (B, dim).

    A field is a group of terms (its embedding is the TF-IDF-weighted sum of its terms' vectors) or the
    entity's id (a learned vector per id). A masked field is replaced by a learned default vector of its own.

    Args:
        group: (V,) field of each term, or None for no text features.
        n_ids: number of ids (0: no id field).
        field_dim: width of one field's embedding; hidden, dim: the MLP's hidden and output widths.
        maskable: whether fields can be masked (holds the learned default vectors).
    """

    def __init__(self, *, group: np.ndarray | None, n_ids: int, field_dim: int = 32, hidden: int = 256,
                 dim: int = 64, maskable: bool = True):
        super().__init__()
        self.n_text = 0 if group is None else int(group.max()) + 1
        self.has_id = n_ids > 0
        self.n_fields = self.n_text + int(self.has_id)
        if self.n_fields == 0:
            raise ValueError("a tower needs text features or ids")
        if group is not None:
            self.register_buffer("onehot", F.one_hot(torch.as_tensor(group, dtype=torch.long), self.n_text).float(),
                                 persistent=False)                                   # (V, G)
            self.term = nn.Parameter(torch.randn(len(group), field_dim))
        if self.has_id:
            self.ids = nn.Embedding(n_ids, field_dim)
            nn.init.normal_(self.ids.weight, std=0.1)
        self.default = nn.Parameter(torch.zeros(self.n_fields, field_dim)) if maskable else None
        self.field_dim, self.dim = field_dim, dim
        self.norm = nn.LayerNorm(self.n_fields * field_dim)
        self.mlp = nn.Sequential(nn.Linear(self.n_fields * field_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def fields(self, x: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
        """(B, F, field_dim) field embeddings: text groups first, then the id field."""
        parts = []
        if self.n_text:
            w = (self.onehot[:, :, None] * self.term[:, None, :]).flatten(1)      # (V, G * field_dim), block rows
            parts.append((x @ w).view(len(ids), self.n_text, self.field_dim))
        if self.has_id:
            parts.append(self.ids(ids)[:, None])
        return torch.cat(parts, 1)

    def forward(self, x: torch.Tensor | None, ids: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, V) features (None without text); ids: (B,); masked: (B, F) bool, True = replaced by the default."""
        f = self.fields(x, ids)
        if masked is not None:
            f = torch.where(masked[:, :, None], self.default.expand_as(f), f)
        return self.mlp(self.norm(f.flatten(1)))


class TwoTowerRec(nn.Module):
    """Query tower + item tower; ``loss`` = in-batch softmax + ``ssl_weight`` * InfoNCE of masked item views.

    Args:
        item_x: (n_items, V) item features (dense float32) or None; query_x: (n_queries, Vq) or None.
        item_group, query_group: (V,) / (Vq,) field of each feature (from the items' mutual information).
        group_mi: (G, G) mutual information between the item's text fields (correlated masking).
        n_items, n_queries: id counts; use_ids: whether each tower has an id field.
        temperature: of the in-batch softmax; ssl_temperature: of the SSL term; ssl_weight: alpha (0: no SSL).
        masking: 'cfm' (correlated) or 'rfm' (random half); feature_dropout: each term of an unmasked field is
            dropped with this probability in the SSL views.
    The id field, when present, goes to one of the two views at random.
    """

    def __init__(self, *, item_x: torch.Tensor | None, query_x: torch.Tensor | None, item_group: np.ndarray | None,
                 query_group: np.ndarray | None, group_mi: np.ndarray | None, n_items: int, n_queries: int,
                 use_ids: bool = True, field_dim: int = 32, hidden: int = 256, dim: int = 64,
                 temperature: float = 0.05, ssl_temperature: float = 0.1, ssl_weight: float = 0.3,
                 masking: str = "cfm", feature_dropout: float = 0.1):
        super().__init__()
        if masking not in MASKINGS:
            raise ValueError(f"masking must be one of {', '.join(MASKINGS)}, got {masking!r}")
        self.item_tower = FieldTower(group=item_group, n_ids=n_items if use_ids else 0, field_dim=field_dim,
                                     hidden=hidden, dim=dim)
        self.query_tower = FieldTower(group=query_group, n_ids=n_queries if use_ids else 0, field_dim=field_dim,
                                      hidden=hidden, dim=dim, maskable=False)
        if ssl_weight > 0 and self.item_tower.n_fields < 2:
            raise ValueError("the SSL term masks half of the item's fields: it needs item features (texts)")
        self.ssl_head = nn.Linear(dim, dim)
        self.register_buffer("item_x", item_x, persistent=False)
        self.register_buffer("query_x", query_x, persistent=False)
        self.register_buffer("group_mi", None if group_mi is None else torch.as_tensor(group_mi, dtype=torch.float32),
                             persistent=False)
        self.temperature, self.ssl_temperature, self.ssl_weight = temperature, ssl_temperature, ssl_weight
        self.masking, self.feature_dropout = masking, feature_dropout
        self.n_items = n_items

    def _x(self, table: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor | None:
        return None if table is None else table[ids]

    def queries(self, ids: torch.Tensor) -> torch.Tensor:
        return self.query_tower(self._x(self.query_x, ids), ids)

    def items(self, ids: torch.Tensor, masked: torch.Tensor | None = None,
              x: torch.Tensor | None = None) -> torch.Tensor:
        return self.item_tower(self._x(self.item_x, ids) if x is None else x, ids, masked)

    def view_masks(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B, F) bool masks of view 1 over the item's fields (view 2 masks the complement)."""
        g = self.item_tower.n_text
        if self.masking == "cfm":
            seeds = torch.randint(g, (batch,), generator=generator)
            m = correlated_masks(self.group_mi.cpu(), seeds)
        else:
            m = random_masks(batch, g, generator)
        if self.item_tower.has_id:
            m = torch.cat([m, torch.rand(batch, 1, generator=generator) < 0.5], 1)
        return m.to(self.default_device)

    @property
    def default_device(self) -> torch.device:
        return self.ssl_head.weight.device

    def ssl_loss(self, ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """InfoNCE between two complementary masked views (with feature dropout) of the items ``ids``."""
        m1 = self.view_masks(len(ids), generator)
        x = self._x(self.item_x, ids)
        views = []
        for m in (m1, ~m1):
            xv = x
            if x is not None and self.feature_dropout > 0:
                keep = torch.rand(x.shape, generator=generator) >= self.feature_dropout
                xv = x * keep.to(x)
            views.append(self.ssl_head(self.items(ids, m, xv)))
        return ssl_infonce(views[0], views[1], temperature=self.ssl_temperature)

    def loss(self, q_ids: torch.Tensor, i_ids: torch.Tensor, ssl_ids: torch.Tensor | None,
             generator: torch.Generator) -> dict[str, torch.Tensor]:
        main = in_batch_softmax(self.queries(q_ids), self.items(i_ids), i_ids, temperature=self.temperature)
        out = {"main": main.detach(), "loss": main}
        if self.ssl_weight > 0 and ssl_ids is not None:
            ssl = self.ssl_loss(ssl_ids, generator)
            out["ssl"], out["loss"] = ssl.detach(), main + self.ssl_weight * ssl
        return out

    @torch.no_grad()
    def embed_items(self, batch: int = 1024) -> torch.Tensor:
        """(n_items, dim) l2-normalised item embeddings."""
        ids = torch.arange(self.n_items, device=self.default_device)
        return torch.cat([F.normalize(self.items(ids[k:k + batch]), dim=1) for k in range(0, len(ids), batch)])

    @torch.no_grad()
    def embed_queries(self, ids: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """(Q, dim) l2-normalised query embeddings."""
        return torch.cat([F.normalize(self.queries(ids[k:k + batch]), dim=1) for k in range(0, len(ids), batch)])
