"""Contrastive clustering of 3-D volumes (ModelNet10 voxel grids, AdrenalMNIST3D scans; official test splits):
clustering accuracy (Hungarian), NMI and ARI against k-means on raw voxels and on random-init features.

    OMP_NUM_THREADS=1 python benchmarks/volumes_clustering.py [--sets modelnet10,adrenal] [--steps 400]
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

from polyjepa.results import save_result
from polyjepa.volumes.augment import VolumeAugment
from polyjepa.volumes.contrastive_clustering import (ContrastiveClustering, clustering_table,
                                                     train_contrastive_clustering)
from polyjepa.volumes.data import load_volumes
from polyjepa.volumes.tokenizer import volume_backbone

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# file, downsampling factor, patch side, rotation about the up axis (degrees)
SETS = {"modelnet10": ("modelnet10_vox32.npz", 2, 4, 180.0), "adrenal": ("adrenalmnist3d_28.npz", 1, 7, 15.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="modelnet10,adrenal")
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rotate", type=float, default=None, help="rotation range about the up axis, degrees "
                    "(default: 180 for ModelNet10, 15 for AdrenalMNIST3D)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for key in args.sets.split(","):
        if key not in SETS:
            raise SystemExit(f"error: unknown set {key!r}: choose from {', '.join(SETS)}")
        t0 = time.time()
        fname, factor, patch, rotate = SETS[key]
        rotate = rotate if args.rotate is None else args.rotate
        v = load_volumes(Path(args.data_dir) / fname, factor=factor)
        k = int(len(np.unique(v.y_train)))
        torch.manual_seed(args.seed)
        backbone = volume_backbone(input_shape=v.x_train.shape[1:], patch_size=patch, dim=args.dim, depth=args.depth)
        random_backbone = copy.deepcopy(backbone)
        model = ContrastiveClustering(backbone, clusters=k)
        augment = VolumeAugment(rotate=rotate)
        tok = backbone.tokenizer
        print(f"built: {key} ({fname}), train {v.x_train.shape} / test {v.x_test.shape} (downsampled x{factor}), "
              f"{k} classes; tokens {tok.num_tokens} cubes of {tok.patch_size}^3, width {backbone.dim}, depth "
              f"{len(backbone.encoder.blocks)}, {sum(p.numel() for p in model.parameters())} parameters; "
              f"{args.steps} steps of batch {args.batch} x 2 views; {augment}")
        s = time.time()
        train_contrastive_clustering(model, v.x_train, augment, steps=args.steps, batch_size=args.batch,
                                     seed=args.seed, log=print)
        train_s = time.time() - s
        rows = clustering_table(v.x_test, v.y_test, random_backbone=random_backbone, model=model, k=k,
                                seed=args.seed)
        print("\n| method | ACC | NMI | ARI | clusters used |\n|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['method']} | {r['acc']:.4f} | {r['nmi']:.4f} | {r['ari']:.4f} | {r['clusters_used']} |")
        best = max(rows, key=lambda r: r["nmi"])
        name = f"volumes-clustering-{key}" + (f"-rot{args.rotate:g}" if args.rotate is not None else "")
        save_result(name, columns=["method", "ACC", "NMI", "ARI", "clusters used"],
                    rows=[[r["method"], r["acc"], r["nmi"], r["ari"], r["clusters_used"]] for r in rows],
                    title=f"Contrastive clustering, {fname} (official test split, {len(v.y_test)} volumes, {k} "
                    f"clusters; views rotated up to {rotate:g} degrees)", seconds=time.time() - t0,
                    notes=[f"Highest NMI: {best['method']} ({best['nmi']:.4f}); contrastive training took "
                           f"{train_s / 60:.1f} min."],
                    command=f"OMP_NUM_THREADS=1 python benchmarks/volumes_clustering.py --sets {key} --steps "
                    f"{args.steps}" + (f" --rotate {args.rotate:g}" if args.rotate is not None else ""),
                    extra={"downsample": factor, "patch": patch, "tokens": tok.num_tokens, "dim": backbone.dim,
                           "depth": len(backbone.encoder.blocks), "steps": args.steps, "batch": args.batch,
                           "augment": str(augment), "train_seconds": train_s})


if __name__ == "__main__":
    main()
