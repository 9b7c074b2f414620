"""TwoTower: one encoder per side, projection heads into one space, a contrastive objective on the pairs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .objectives import PairedContrastive, gather_ids
from .towers import Head

SIDES = ("a", "b")


class TwoTower(nn.Module):
    """A cross-modal joint-embedding method: ``tower_a`` and ``tower_b`` map the two sides of a pair, heads
    project both into a shared ``proj_dim`` space, and ``criterion`` pulls pairs together.

    Args:
        tower_a, tower_b: ``forward(x) -> (B, dim)`` modules with a ``dim`` attribute.
        criterion: :class:`PairedContrastive` (holds the learned temperature).
        proj_dim: width of the shared space; proj_hidden: hidden width of the heads (0: linear heads).
        graph_sim: (n_nodes, n_nodes) rows whose products give the batch's graph similarity (ConGraT);
            needed when the criterion uses the graph.
    The training pairs live in the method (``attach``), not in its weights: a batch from the trainer is
    (B, 1) row indices, which :meth:`make_batch` turns into {"a", "b", "ids"}; of items with several texts
    one is drawn per step.
    """

    def __init__(self, *, tower_a: nn.Module, tower_b: nn.Module, criterion: PairedContrastive,
                 proj_dim: int = 128, proj_hidden: int = 0, graph_sim: torch.Tensor | None = None):
        super().__init__()
        if criterion.uses_graph and graph_sim is None:
            raise ValueError("objective.alpha > 0 (ConGraT's graph term) needs paired data with a graph "
                             "(an edge_index): set objective.alpha=0 for plain CLIP")
        self.tower_a, self.tower_b, self.criterion = tower_a, tower_b, criterion
        self.head_a = Head(tower_a.dim, proj_dim, proj_hidden)
        self.head_b = Head(tower_b.dim, proj_dim, proj_hidden)
        self.proj_dim = proj_dim
        if hasattr(criterion, "bind"):  # objectives with parameters sized by the towers (anchors)
            criterion.bind(tower_a.dim, tower_b.dim, proj_dim)
        self.register_buffer("graph_sim", graph_sim, persistent=False)
        self._a = self._b = self._ids = self._y = None

    def attach(self, a: np.ndarray, b: np.ndarray, ids: np.ndarray, y: np.ndarray | None = None) -> "TwoTower":
        """Hold the training pairs: a (n, ...), b (n, K, L) token ids, ids (n,) each pair's graph node, and
        optionally y (n,) labels; an objective with a ``label_fraction`` keeps that share of them (the rest
        become -1, unlabelled). A lazy side a (``data.stream=true``: a source whose ``a[idx]`` reads those items
        as a tensor) is held as it is and read a batch at a time."""
        lazy = not isinstance(a, (np.ndarray, torch.Tensor)) and hasattr(a, "subset")
        self._a = a if lazy else torch.as_tensor(a)
        self._b, self._ids = torch.as_tensor(b), torch.as_tensor(ids)
        if getattr(self.criterion, "uses_labels", False):
            if y is None:
                raise ValueError("the semi-supervised objective needs labelled pairs (labels/y in the data)")
            from .semisup import labelled_subset

            y = torch.as_tensor(y).long().clone()
            y[~labelled_subset(len(y), self.criterion.label_fraction, self.criterion.label_seed)] = -1
            self._y = y
        return self

    def make_batch(self, x: torch.Tensor, generator: torch.Generator, progress: float) -> dict[str, torch.Tensor]:
        idx = x[:, 0].long()
        b = self._b[idx]                                                   # (B, K, L)
        pick = torch.randint(b.shape[1], (len(idx),), generator=generator)
        batch = {"x": x, "a": self._a[idx], "b": b[torch.arange(len(idx)), pick], "ids": self._ids[idx]}
        if self._y is not None:
            batch["y"] = self._y[idx]
        return batch

    def project(self, x: torch.Tensor, side: str) -> torch.Tensor:
        """(B, ...) inputs of ``side`` -> (B, proj_dim) unnormalised projections in the shared space."""
        if side == "a":
            return self.head_a(self.tower_a(x))
        return self.head_b(self.tower_b(x))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h_a, h_b = self.tower_a(batch["a"]), self.tower_b(batch["b"])
        z_a, z_b = self.head_a(h_a), self.head_b(h_b)
        sim = None
        if self.criterion.uses_graph:
            ids = gather_ids(batch["ids"].long())
            rows = self.graph_sim[ids]
            sim = rows @ rows.T                                            # (B_global, B_global) cosine of profiles
        if getattr(self.criterion, "uses_labels", False):
            return self.criterion(z_a, z_b, sim, h_a=h_a, h_b=h_b, labels=batch["y"])
        if getattr(self.criterion, "uses_towers", False):
            return self.criterion(z_a, z_b, sim, h_a=h_a, h_b=h_b)
        return self.criterion(z_a, z_b, sim)

    def trainable_modules(self) -> list[nn.Module]:
        return [self]

    def update_target(self, step: int, total_steps: int) -> None:
        return None  # no teacher

    @torch.no_grad()
    def embed(self, x: torch.Tensor, *, side: str, space: str = "shared", alpha: float = 0.0) -> torch.Tensor:
        """Embeddings of one side: ``space='shared'`` the l2-normalised projections (for retrieval),
        ``'tower'`` the tower's own features (for probes). With the semi-supervised objective, ``alpha``
        mixes in its label-supervised head (0: pairing only, 1: labels only)."""
        if side not in SIDES:
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        if space == "tower":
            return (self.tower_a if side == "a" else self.tower_b)(x)
        if space != "shared":
            raise ValueError(f"space must be 'shared' or 'tower', got {space!r}")
        if alpha:
            if not hasattr(self.criterion, "mixed"):
                raise ValueError("alpha > 0 needs the semi-supervised objective (a label-supervised head)")
            h = (self.tower_a if side == "a" else self.tower_b)(x)
            return self.criterion.mixed((self.head_a if side == "a" else self.head_b)(h), h, side, alpha)
        return F.normalize(self.project(x, side), dim=-1)
