"""Contrastive clustering of volumes: instance-level and cluster-level contrast on two views.

The backbone's embedding feeds two heads: an instance projector whose outputs are contrasted across the batch
(NT-Xent, each sample's other view is its positive), and a cluster head whose softmax over K clusters is
contrasted column-wise (each cluster's assignment vector over the batch must match the same cluster in the other
view), minus the entropy of the mean assignment so that clusters stay used. A sample's cluster is the argmax of
the cluster head. (Li et al., "Contrastive Clustering", AAAI 2021.)
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..objectives.infonce import nt_xent_loss
from ..train.schedules import set_lr, warmup_cosine_factor
from ..train.stages import StageCheckpoints
from .augment import VolumeAugment
from .metrics import clustering_scores, kmeans_labels


def cluster_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of the batch's mean cluster assignment ``p`` (N, K) rows on the simplex."""
    m = p.mean(0)
    return -(m * torch.log(m.clamp_min(1e-12))).sum()


def contrastive_clustering_loss(z_a: torch.Tensor, z_b: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor, *,
                                instance_temperature: float = 0.5, cluster_temperature: float = 1.0,
                                entropy_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """NT-Xent over instances + NT-Xent over cluster columns - entropy of the marginals.

    Args:
        z_a, z_b: (N, D) instance projections of two views; p_a, p_b: (N, K) cluster probabilities.
    Returns: {"loss", "instance", "cluster", "entropy"} (entropy: sum of both views' marginal entropies).
    """
    inst = nt_xent_loss(z_a, z_b, temperature=instance_temperature)["loss"]
    clu = nt_xent_loss(p_a.T, p_b.T, temperature=cluster_temperature)["loss"]
    ent = cluster_entropy(p_a) + cluster_entropy(p_b)
    return {"loss": inst + clu - entropy_weight * ent, "instance": inst, "cluster": clu, "entropy": ent}


class ContrastiveClustering(nn.Module):
    """A backbone with an instance projector and a K-way cluster head (both two-layer MLPs)."""

    def __init__(self, backbone: nn.Module, *, clusters: int, projection: int = 128, hidden: int = 256):
        super().__init__()
        d = backbone.dim
        self.backbone = backbone
        self.instance_head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, projection))
        self.cluster_head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, clusters))
        self.clusters = clusters

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone.embed(x)
        return self.instance_head(h), self.cluster_head(h).softmax(-1)

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        return self.cluster_head(self.backbone.embed(x)).argmax(-1)


def train_contrastive_clustering(model: ContrastiveClustering, x: np.ndarray, augment: VolumeAugment, *,
                                 steps: int, batch_size: int, lr: float = 1e-3, seed: int = 0,
                                 entropy_weight: float = 1.0, instance_temperature: float = 0.5,
                                 cluster_temperature: float = 1.0, log=None,
                                 ckpts: StageCheckpoints | None = None) -> ContrastiveClustering:
    """AdamW with warm-up and cosine decay on random batches of ``x`` (N, 1, D, H, W); labels are never read.

    With ``ckpts`` the training is the stage ``clustering`` of the run's checkpoints (module ``model``), and a
    stopped run continues from its checkpoint."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.as_tensor(x) if isinstance(x, np.ndarray) else x  # a lazy source reads each batch itself
    ckpts = ckpts or StageCheckpoints(None)
    if ckpts.skip("clustering", {"model": model}) is not None:
        return model.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    model.train()
    pos = ckpts.begin("clustering", {"model": model}, opt, generators={"views": gen})
    for step in range(pos.step, steps):
        set_lr(opt, lr * warmup_cosine_factor(step, steps, steps // 10))
        batch = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
        z, p = model(torch.cat([augment(batch, gen), augment(batch, gen)]))
        out = contrastive_clustering_loss(z[:batch_size], z[batch_size:], p[:batch_size], p[batch_size:],
                                          entropy_weight=entropy_weight, instance_temperature=instance_temperature,
                                          cluster_temperature=cluster_temperature)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log is not None and (step % 100 == 0 or step == steps - 1):
            log(f"step {step}: loss {out['loss'].item():.3f} (instance {out['instance'].item():.3f}, cluster "
                f"{out['cluster'].item():.3f}, entropy {out['entropy'].item():.3f})")
        pos.advance()
    pos.finish()
    return model.eval()


@torch.no_grad()
def embed_volumes(backbone: nn.Module, x: np.ndarray, batch: int = 128) -> np.ndarray:
    backbone.eval()
    return np.concatenate([backbone.embed(torch.as_tensor(x[s:s + batch])).numpy() for s in range(0, len(x), batch)])


@torch.no_grad()
def head_assignments(model: ContrastiveClustering, x: np.ndarray, batch: int = 128) -> np.ndarray:
    return np.concatenate([model.assign(torch.as_tensor(x[s:s + batch])).numpy() for s in range(0, len(x), batch)])


def clustering_table(x_test: np.ndarray, y_test: np.ndarray, *, random_backbone: nn.Module,
                     model: ContrastiveClustering, k: int, seed: int = 0) -> list[dict]:
    """Scores on the test split: k-means on raw voxels, on random-init features, on the trained features,
    and the trained cluster head's own argmax."""
    rows = []

    def add(name: str, pred: np.ndarray) -> None:
        rows.append({"method": name, **clustering_scores(y_test, pred), "clusters_used": int(len(np.unique(pred)))})

    t = time.time()
    add("k-means on raw voxels", kmeans_labels(x_test.reshape(len(x_test), -1), k, seed=seed))
    add("k-means on random-init features", kmeans_labels(embed_volumes(random_backbone, x_test), k, seed=seed))
    add("k-means on contrastive-clustering features", kmeans_labels(embed_volumes(model.backbone, x_test), k,
                                                                     seed=seed))
    add("contrastive-clustering head (argmax)", head_assignments(model, x_test))
    rows[0]["seconds"] = time.time() - t
    return rows
