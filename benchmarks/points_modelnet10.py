"""ModelNet10 benchmark for the point-cloud recipes.

Pretrains Point-JEPA (contiguous sequence targets), its ablation (random targets) and 3D-JEPA for the
same number of epochs on the official training split, then probes frozen embeddings (logistic
regression as in summary.json, and a linear SVM) on the official test split, next to a random-init
encoder of the same architecture and two hand-crafted descriptors (voxel occupancy of the cloud,
D2 distance histogram) with the same probes. Each encoder is also probed on its patch centres alone
(the centre embedding of every patch through the encoder, the patch shapes left out): how much of the
read-out is the coarse shape that the FPS centres trace. ``--variants`` also takes pointjepa-shape,
pointjepa-residual, pointjepa-view and pointjepa-reconstruct (targets the predictor cannot read off
the target centres; ``--online`` adds the online encoder's probe, ``--seed`` another seed).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/points_modelnet10.py ../shared/data/modelnet10_vox32.npz --epochs 5
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _points import d2_histogram, occupancy, pretrained, probe, rounded  # noqa: E402


def centres_only(encoder, x: np.ndarray, pool: str, batch_size: int = 256) -> np.ndarray:
    """(n, P, 3) clouds -> pooled encoder features of the patch-centre embeddings alone (no patch shapes)."""
    import torch

    from polyjepa.points.backbone import pool_points

    encoder.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            groups = encoder.tokenizer.group(torch.as_tensor(x[i:i + batch_size]))
            h = encoder.encoder(encoder.tokenizer.pos_embed(groups.centres))
            out.append(pool_points(h, groups.centres, pool))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", default="runs/points_modelnet10")
    ap.add_argument("--variants", default="pointjepa,pointjepa-random,jepa3d")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every recipe, after the variant's own "
                    "(so they may set keys of a section the variant adds, e.g. invariance.weight=0.1)")
    ap.add_argument("--seed", type=int, default=0, help="initialisation, masks and batches of every run")
    ap.add_argument("--online", action="store_true", help="also probe each run's online encoder")
    ap.add_argument("--no-descriptors", action="store_true", help="skip the hand-crafted descriptor rows")
    args = ap.parse_args()

    import torch

    import polyjepa as pj
    from polyjepa.eval.embed import embed_array
    from polyjepa.runner import build_random, load_run_method, open_run

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = pj.load_recipe("pointjepa", [o for o in args.set if o.startswith("data.")])  # how the clouds are read
    d = pj.load_points(args.data, points=int(cfg.data.points), surface=bool(cfg.data.surface))
    rows = {}

    def probes(tr, te):
        return probe(tr, d.y, te, d.y_test)

    t0 = time.time()
    descriptors = (("voxel occupancy 16^3", occupancy), ("D2 distance histogram", d2_histogram))
    for name, feat in () if args.no_descriptors else descriptors:
        rows[name] = probes(feat(d.x), feat(d.x_test))
        print(name, rows[name], flush=True)
    variants = {"pointjepa": ("pointjepa", []), "pointjepa-random": ("pointjepa", ["masker.targets=random"]),
                "jepa3d": ("jepa3d", []),
                # targets the predictor cannot read off the target centres
                "pointjepa-full": ("pointjepa", ["method.target_tokens=full"]),
                "pointjepa-shape": ("pointjepa", ["method.target_tokens=shape"]),
                "pointjepa-residual": ("pointjepa", ["method.target_tokens=residual"]),
                "pointjepa-view": ("pointjepa", ["method.target_view.rotate=true", "method.target_view.max_angle=180",
                                                 "method.target_view.scale=[0.8,1.2]"]),
                "pointjepa-reconstruct": ("pointjepa", ["method.reconstruct=1.0"]),
                # two-view invariance term (C-JEPA style)
                "pointjepa-invariance": ("pointjepa", ["invariance.name=point_vicreg"])}
    for v in args.variants.split(","):
        recipe, extra = variants[v]
        run = out / (f"{v}-e{args.epochs}" + (f"-s{args.seed}" if args.seed else ""))
        s = pretrained(recipe, run, args.data, max_epochs=args.epochs, seed=args.seed,
                       overrides=["train.threads=1", "eval.baselines=false", *extra, *args.set])
        _, rcfg, info = open_run(run)
        pool = s["embedding"]["pool"]
        if "random-init encoder" not in rows:  # same encoder and seed for both recipes, never trained
            enc = build_random(rcfg, info)
            rows["random-init encoder"] = probes(embed_array(enc, d.x, pool=pool),
                                                 embed_array(enc, d.x_test, pool=pool))
            print("random-init encoder", rows["random-init encoder"], flush=True)
            rows["random-init, centres only"] = probes(centres_only(enc, d.x, pool), centres_only(enc, d.x_test, pool))
            print("random-init, centres only", rows["random-init, centres only"], flush=True)
        method = load_run_method(run)[0]
        enc = method.encoder()
        rows[v] = {**probes(embed_array(enc, d.x, pool=pool), embed_array(enc, d.x_test, pool=pool)),
                   "minutes": s["seconds"] / 60, "train_minutes": s["train_seconds"] / 60, "steps": s["steps"]}
        print(v, rows[v], flush=True)
        rows[f"{v}, centres only"] = probes(centres_only(enc, d.x, pool), centres_only(enc, d.x_test, pool))
        print(f"{v}, centres only", rows[f"{v}, centres only"], flush=True)
        if args.online and enc is not method.backbone:
            rows[f"{v}, online encoder"] = probes(embed_array(method.backbone, d.x, pool=pool),
                                                 embed_array(method.backbone, d.x_test, pool=pool))
            print(f"{v}, online encoder", rows[f"{v}, online encoder"], flush=True)
        (out / "results.json").write_text(json.dumps({"epochs": args.epochs, "seed": args.seed, "set": args.set, "rows": rows,
                                                      "n_train": len(d.x), "n_test": len(d.x_test)}, indent=1))
    print(f"\nModelNet10 official split ({len(d.x)} train / {len(d.x_test)} test clouds), {args.epochs} epochs, "
          f"{(time.time() - t0) / 60:.1f} min in all")
    print(f"{'representation':<34} {'logistic':>8} {'SVM':>7} {'kNN':>7} {'RankMe':>7} {'minutes':>8}")
    for k, r in rows.items():
        f = lambda key, fmt: (fmt.format(r[key]) if key in r else "-")  # noqa: E731
        print(f"{k:<34} {f('linear', '{:.4f}'):>8} {f('svm', '{:.4f}'):>7} {f('knn', '{:.4f}'):>7} "
              f"{f('rankme', '{:.1f}'):>7} {f('minutes', '{:.1f}'):>8}")
    from polyjepa.results import save_result

    save_result("points-modelnet10", title=f"ModelNet10, official split ({len(d.x):,} / {len(d.x_test)} clouds), "
                f"{args.epochs} epochs", columns=["representation", "logistic", "linear SVM", "kNN", "RankMe",
                                                   "train min"],
                rows=[[k, rounded(r, "linear", 4), rounded(r, "svm", 4), rounded(r, "knn", 4),
                       rounded(r, "rankme", 1), rounded(r, "minutes", 1)] for k, r in rows.items()], seconds=time.time() - t0,
                notes=[f"seed {args.seed}"], extra={"seed": args.seed, "set": args.set})


if __name__ == "__main__":
    main()
