"""The graph side: a GCN (PyTorch Geometric) over the whole graph, read out at the batch's nodes."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UserError, require


def check_edges(edge_index: np.ndarray, n: int) -> np.ndarray:
    """``edge_index`` as a (2, E) int64 array of node ids in [0, n); one-line UserError otherwise."""
    e = np.asarray(edge_index)
    if e.ndim != 2 or e.shape[0] != 2 or not np.issubdtype(e.dtype, np.integer):
        raise UserError(f"the graph's edge_index must be a (2, E) integer array, got {e.dtype} of shape {e.shape}: "
                        f"store source ids in row 0 and target ids in row 1")
    if e.size and (e.min() < 0 or e.max() >= n):
        raise UserError(f"the graph has edges pointing past its {n} nodes (node ids {int(e.min())}..{int(e.max())}): "
                        f"ids must be 0..{n - 1}, the rows of the paired data")
    return e.astype(np.int64)


class GCNTower(nn.Module):
    """A learned vector per node (the graph carries no node features here) -> GCN layers -> rows of the batch.

    Every step runs the GCN over the whole graph (structure only: no side-b data), then reads out the
    batch's nodes, so a node's embedding is shaped by its neighbourhood.

    Args:
        graph: {"n_nodes": n, "edge_index": (2, E) int64} (injected from the data).
        dim: width of node vectors and layers; layers: GCN layers; dropout: on hidden node vectors.
    Shapes: forward(node_ids (B,) int64) -> (B, dim). (Kipf & Welling, GCN, ICLR 2017.)
    """

    def __init__(self, *, graph: dict, dim: int = 128, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        geo = require("torch_geometric", "graph", "graph towers")
        n = int(graph["n_nodes"])
        edges = torch.as_tensor(check_edges(graph["edge_index"], n))
        edges = torch.cat([edges, edges.flip(0)], dim=1)  # undirected: messages both ways
        self.register_buffer("edge_index", edges, persistent=False)
        self.nodes = nn.Embedding(n, dim)
        nn.init.normal_(self.nodes.weight, std=dim ** -0.5)
        self.convs = nn.ModuleList([geo.nn.GCNConv(dim, dim) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dim, self.n_nodes = dim, n

    def node_features(self) -> torch.Tensor:
        """(n, dim) output for every node."""
        h = self.nodes.weight
        for i, conv in enumerate(self.convs):
            h = conv(h, self.edge_index)
            if i < len(self.convs) - 1:
                h = self.dropout(torch.nn.functional.gelu(h))
        return self.norm(h)

    def forward(self, node_ids: torch.Tensor) -> torch.Tensor:
        return self.node_features()[node_ids.long()]
