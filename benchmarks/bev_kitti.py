"""AD-L-JEPA on KITTI LiDAR: does the pretrained BEV encoder tell cells holding a labelled object from the rest?

Pretrains the bundled recipe ``adljepa-kitti`` on the KITTI sweeps without labels (by default only the 6
'testing' sweeps, so the probed sweeps are never seen in pretraining), then probes per BEV cell of the 6
'training' sweeps (the ones with 3-D boxes): "holds a LiDAR point inside a labelled box (not DontCare)" vs not,
over the occupied 0.8 m cells only (empty cells are trivially negative). Leave-one-sweep-out logistic regression
(balanced class weights, standardised features); AUC and balanced accuracy of the pooled held-out scores. Same
probe on: the EMA target encoder and the online (context) encoder after pretraining, the same encoder at random
init, the raw BEV features of the cell (5 channels x its 2 x 2 input cells) and of its 3 x 3 neighbourhood.

    OMP_NUM_THREADS=1 python benchmarks/bev_kitti.py ../shared/data/kitti_velodyne_12frames.npz --seeds 0,1 --jobs 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import print_table  # noqa: E402

from polyjepa.bev.boxes import cell_labels, points_in_boxes, velo_to_rect  # noqa: E402
from polyjepa.bev.grid import BEVGrid, bev_features  # noqa: E402
from polyjepa.bev.io import load_kitti_frames  # noqa: E402
from polyjepa.results import save_result  # noqa: E402


def labelled_sweeps(path: str, grid: BEVGrid, stride: int):
    """BEV grids (n, 5, H, W), occupied and positive cell masks (n, H / stride, W / stride) of the sweeps with boxes."""
    z = np.load(path)
    frames, split = load_kitti_frames(path)
    xs, occs, poss = [], [], []
    for f in sorted(set(z["label_frame"].tolist())):
        keep = (z["label_frame"] == f) & (z["label_type"] != "DontCare")
        boxes = z["label_values"][keep][:, 7:14]
        inside = points_in_boxes(velo_to_rect(frames[f], z["calib_R0_rect"][f], z["calib_Tr_velo_to_cam"][f]), boxes)
        occ, pos = cell_labels(frames[f], inside, grid, stride)
        xs.append(bev_features(frames[f], grid).numpy())
        occs.append(occ)
        poss.append(pos & occ)
        assert split[f] == "training"
    return np.stack(xs), np.stack(occs), np.stack(poss)


def raw_cells(x: torch.Tensor, stride: int, neighbourhood: bool) -> torch.Tensor:
    """(n, 5, H, W) -> (n, 5 * stride^2 [* 9], H / stride, W / stride) raw features of each output cell."""
    cells = F.pixel_unshuffle(x, stride)
    if not neighbourhood:
        return cells
    n, c, h, w = cells.shape
    return F.unfold(cells, 3, padding=1).reshape(n, c * 9, h, w)


def probe(maps: np.ndarray, occ: np.ndarray, pos: np.ndarray, seed: int) -> dict:
    """Leave-one-sweep-out logistic probe on the occupied cells; pooled held-out AUC and balanced accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = [m.reshape(m.shape[0], -1).T[o.ravel()] for m, o in zip(maps, occ)]
    labels = [p.ravel()[o.ravel()] for p, o in zip(pos, occ)]
    scores, truth = [], []
    for i in range(len(feats)):
        xtr = np.concatenate([f for j, f in enumerate(feats) if j != i])
        ytr = np.concatenate([y for j, y in enumerate(labels) if j != i])
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000,
                                                                 random_state=seed))
        clf.fit(xtr, ytr)
        scores.append(clf.predict_proba(feats[i])[:, 1])
        truth.append(labels[i])
    s, t = np.concatenate(scores), np.concatenate(truth)
    return {"auc": float(roc_auc_score(t, s)), "bacc": float(balanced_accuracy_score(t, s > 0.5)), "dim": feats[0].shape[1]}


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    """Pretrain with ``seed`` and probe every representation; returns the built configuration and the scores."""
    torch.set_num_threads(args.threads)
    from polyjepa.build import build_method
    from polyjepa.runner import load_run_method, open_run, pretrain

    out = tempfile.mkdtemp(prefix="bev-kitti-")
    summary = pretrain("adljepa-kitti", data=args.data, out=out, seed=seed, progress=False,
                       overrides=[f"train.max_steps={args.steps}", "train.max_epochs=1000", f"train.batch_size={args.batch}",
                                  f"data.copies={args.copies}", f"data.split={args.pretrain_split}",
                                  f"train.threads={args.threads}", *args.overrides], echo=lambda *a, **k: None)
    run_dir, cfg, info = open_run(out)
    method = load_run_method(run_dir, cfg, info)[0]
    random_method = build_method(cfg, tuple(info["input_shape"]), info["seed"], info.get("meta")).eval()
    enc, grid_cfg = method.backbone, info["meta"]["grid"]
    grid = BEVGrid(tuple(grid_cfg["x_range"]), tuple(grid_cfg["y_range"]), tuple(grid_cfg["z_range"]), grid_cfg["cell"])
    built = (f"AD-L-JEPA, BEV grid {grid.shape} at {grid.cell} m -> cells {enc.stride * grid.cell} m; encoder "
             f"{type(enc).__name__} width {enc.dim}, stride {enc.stride}, {sum(p.numel() for p in enc.parameters())} "
             f"parameters; predictor {sum(p.numel() for p in method.predictor.parameters())} parameters; pretrained "
             f"{summary['steps']} steps of batch {cfg.train.batch_size} on {info['meta']['sweeps']} "
             f"'{args.pretrain_split}' sweeps x {info['meta']['copies']} augmented copies")
    x, occ, pos = labelled_sweeps(args.data, grid, enc.stride)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        reps = {"AD-L-JEPA, EMA target encoder": method.target.model(xt).numpy(),
                "AD-L-JEPA, online (context) encoder": method.backbone(xt).numpy(),
                "same encoder, random init": random_method.backbone(xt).numpy(),
                "raw BEV features of the cell": raw_cells(xt, enc.stride, False).numpy(),
                "raw BEV features, 3x3 cells": raw_cells(xt, enc.stride, True).numpy()}
    scores = {name: probe(maps, occ, pos, seed) for name, maps in reps.items()}
    return {"seed": seed, "built": built, "scores": scores, "train_seconds": summary["train_seconds"],
            "final_loss": summary["final_loss"], "occupied": int(occ.sum()), "positive": int(pos.sum()),
            "per_sweep": pos.sum((1, 2)).tolist(), "sweeps": len(x), "cell": enc.stride * grid.cell}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                                    / "kitti_velodyne_12frames.npz"))
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--pretrain-split", default="testing", choices=["all", "training", "testing"])
    ap.add_argument("--seeds", default="0", help="pretraining seeds, e.g. 0,1")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained at once, one process each")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", default=[], help="recipe overrides, e.g. method.embed_from=online")
    args = ap.parse_intermixed_args()
    seeds = [int(v) for v in args.seeds.split(",")]
    t0 = time.time()
    if args.jobs > 1:
        import multiprocessing as mp
        from functools import partial

        with mp.get_context("spawn").Pool(min(args.jobs, len(seeds))) as pool:
            runs = pool.map(partial(run_seed, args), seeds)
    else:
        runs = [run_seed(args, s) for s in seeds]
    r0 = runs[0]
    trained = ", ".join(f"seed {r['seed']}: {r['train_seconds'] / 60:.1f} min, final loss {r['final_loss']:.4f}" for r in runs)
    minutes = ", ".join(f"{r['train_seconds'] / 60:.1f}" for r in runs)
    print(f"built: {r0['built']}; {trained}")
    print(f"probe: {r0['sweeps']} labelled sweeps, {r0['occupied']} occupied cells, {r0['positive']} with an object "
          f"(per sweep {r0['per_sweep']})")
    columns = ["representation", "features", *[f"AUC seed {r['seed']}" for r in runs], "mean AUC", "mean balanced acc."]
    rows = []
    for name, sc in r0["scores"].items():
        aucs = [r["scores"][name]["auc"] for r in runs]
        baccs = [r["scores"][name]["bacc"] for r in runs]
        rows.append([name, sc["dim"], *[round(a, 4) for a in aucs], round(float(np.mean(aucs)), 4),
                     round(float(np.mean(baccs)), 4)])
    title = (f"KITTI, object vs background per occupied {r0['cell']:.1f} m BEV cell, leave-one-sweep-out over "
             f"{r0['sweeps']} labelled sweeps ({r0['positive']} object cells of {r0['occupied']})")
    print_table(title, columns, rows)
    save_result("bev-kitti", columns=columns, rows=rows, title=title, seconds=time.time() - t0,
                notes=[r0["built"] + f"; training {minutes} min per "
                       f"seed at {args.threads} thread(s) on a shared machine",
                       "the random-init and raw rows do not depend on pretraining; the random-init encoder is the "
                       "seed's initialisation",
                       f"{r0['sweeps']} labelled sweeps and {r0['positive']} object cells: differences of a few AUC "
                       f"points are within noise"])


if __name__ == "__main__":
    main()
