"""``polyjepa pretrain`` for a contrastive-clustering recipe on 3-D volumes: train, score the clusters on the
official test split against k-means baselines, write the run directory."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

from ..data.sources import Loaded
from ..errors import UserError
from .augment import VolumeAugment
from .contrastive_clustering import ContrastiveClustering, clustering_table, train_contrastive_clustering
from .data import load_volumes
from .tokenizer import volume_backbone


def load_volume_set(source: str, *, factor: int = 1, max_train: int | None = None) -> Loaded:
    """A volume .npz with an official split (ModelNet or MedMNIST-3D layout) as (n, 1, D, H, W) arrays and labels."""
    if factor < 1:
        raise UserError(f"data.factor must be >= 1, got {factor}")
    v = load_volumes(source, max_train=max_train, factor=factor)
    return Loaded(v.x_train, v.y_train, str(source), x_test=v.x_test, y_test=v.y_test)


def open_volume_split(source: str, *, factor: int = 1, max_train: int | None = None) -> Loaded:
    """:func:`load_volume_set` with ``data.stream=true``: the train part a lazy source read a batch at a time from
    the memory-mapped .npz (:class:`~polyjepa.volumes.stream.VolumeArrays`); the test part, which every score
    reads whole, decoded into memory."""
    from .stream import open_volume_set

    stream = open_volume_set(source, factor=factor, max_train=max_train)
    test = stream.test_rows
    train = stream.subset(np.setdiff1d(np.arange(len(stream)), test))
    x_test = stream.subset(test)[np.arange(len(test))].numpy()
    return Loaded(train, train.labels, str(source), x_test=x_test, y_test=stream.labels[test])


def clustering_model(*, input_shape: tuple[int, ...], clusters: int, patch_size: int = 4, dim: int = 64,
                     depth: int = 2, heads: int = 4, projection: int = 128, hidden: int = 256,
                     instance_temperature: float = 0.5, cluster_temperature: float = 1.0,
                     entropy_weight: float = 1.0) -> ContrastiveClustering:
    """Volume patch tokenizer + transformer + instance and cluster heads (the recipe's ``method`` section; the
    temperatures and entropy weight are read by the runner)."""
    if not (instance_temperature > 0 and cluster_temperature > 0 and entropy_weight >= 0):
        raise UserError("method.instance_temperature and cluster_temperature must be > 0, entropy_weight >= 0")
    backbone = volume_backbone(input_shape=input_shape, patch_size=patch_size, dim=dim, depth=depth, heads=heads)
    return ContrastiveClustering(backbone, clusters=clusters, projection=projection, hidden=hidden)


def run_volume_clustering(cfg, *, out: str | None = None, seed: int = 0, echo=print, resume: bool = False) -> dict:
    """Train contrastive clustering on the train split (labels unread), then score on the test split: ACC / NMI /
    ARI of the cluster head and of k-means on the learnt features, on random-init features and on raw voxels.

    The run directory is made before training (config.yaml, run.json) and training is checkpointed every
    ``train.checkpoint_every`` steps; ``resume`` (``polyjepa pretrain --resume RUN_DIR``, ``out`` the run
    directory) continues from the newest checkpoint to the weights and scores of a run that never stopped."""
    from ..config import TrainConfig, dataclass_from, missing_data_message, part_kwargs
    from ..runner import write_run_files
    from ..train.stages import open_stage_run

    t0 = time.time()
    data_opts = part_kwargs(cfg, "data")
    source = data_opts.pop("source", None) or cfg.data.get("source")
    if not source:
        raise UserError(missing_data_message(cfg))
    tc = dataclass_from(cfg, "train", TrainConfig)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    volume_opts = {k: v for k, v in data_opts.items() if k in ("factor", "max_train")}
    loaded = (open_volume_split if cfg.data.get("stream") else load_volume_set)(str(source), **volume_opts)
    opts = part_kwargs(cfg, "method")
    k = opts.pop("clusters", None) or int(len(np.unique(np.concatenate([loaded.y, loaded.y_test]))))
    losses = {key: opts.pop(key) for key in ("instance_temperature", "cluster_temperature", "entropy_weight")
              if key in opts}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clustering_model(input_shape=loaded.x.shape[1:], clusters=k, **opts, **losses)
    random_backbone = copy.deepcopy(model.backbone)
    augment = VolumeAugment(**{key: (tuple(v) if isinstance(v, list) else v)
                               for key, v in part_kwargs(cfg, "augment").items()}) \
        if cfg.get("augment") is not None else VolumeAugment()
    steps = tc.max_steps if tc.max_steps is not None else max(1, tc.max_epochs * len(loaded.x) // tc.batch_size)
    echo(f"polyjepa: {cfg.get('name')} on {source}: {len(loaded.x)} train / {len(loaded.x_test)} test volumes "
         f"{tuple(loaded.x.shape[1:])}, {k} clusters, {steps} steps of batch {tc.batch_size} x 2 views")
    run_dir, ckpts = open_stage_run(cfg, out=out, name=str(cfg.get("name", "clustering")), seed=seed, resume=resume,
                                    echo=echo, info={"data": str(source)})
    train_contrastive_clustering(model, loaded.x, augment, steps=steps, batch_size=tc.batch_size, lr=tc.lr, seed=seed,
                                 log=echo, ckpts=ckpts, **losses)
    train_s = ckpts.finished["clustering"]["seconds"]
    rows = clustering_table(loaded.x_test, loaded.y_test, random_backbone=random_backbone, model=model, k=k, seed=seed)
    summary = {"schema": "polyjepa-clustering/1", "recipe": cfg.get("name"), "data": str(source), "seed": seed,
               "n_train": len(loaded.x), "n_test": len(loaded.x_test), "clusters": k, "steps": steps,
               "train_seconds": train_s, "seconds": time.time() - t0,
               "scores": [{key: r[key] for key in ("method", "acc", "nmi", "ari", "clusters_used")} for r in rows]}
    lines = ["| method | ACC | NMI | ARI | clusters used |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['method']} | {r['acc']:.4f} | {r['nmi']:.4f} | {r['ari']:.4f} | {r['clusters_used']} |" for r in rows]
    summary["run_dir"] = str(run_dir)
    table = "\n".join(lines)
    write_run_files(run_dir, summary, {"model": model}, f"# {cfg.get('name', 'clustering')}\n\n{table}\n")
    echo(table)
    return summary


run_volume_clustering.resumable = True   # polyjepa pretrain --resume hands its run directories back to this runner
