"""ModelNet10 benchmark for Concerto (joint 2-D/3-D self-supervised learning) at equal CPU time.

Every variant trains the same point encoder from the ``concerto-modelnet10`` recipe for the same number
of minutes (``--minutes``, one thread; the schedule fits the budget):

- Concerto: the first 30% of the time trains a depth-image ViT by I-JEPA on renders of the training
  clouds (the 2-D teacher; the paper's DINOv2 is not available offline), the rest trains the 3-D student
  on self-distillation + the cross-modal JEPA onto the frozen 2-D teacher;
- 3-D self-distillation only (all the time on the 3-D student, no renders);
- cross-modal only (2-D teacher stage, then the cross-modal term alone);

and is probed (logistic regression, linear SVM with C on a validation split, cosine kNN, RankMe) on the
official test split next to a random-init encoder of the same shape, the frozen 2-D teacher's own
features (mean patch embedding of each of the three renders, concatenated) and the voxel-occupancy
descriptor of benchmarks/points_modelnet10.py.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/concerto_modelnet10.py ../shared/data/modelnet10_vox32.npz --minutes 4
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _points import occupancy, pretrained, probe, rounded  # noqa: E402

VARIANTS = {"concerto": [],
            "sd-only": ["method.cross_weight=0", "method.image_share=0"],
            "cross-only": ["method.sd_weight=0"]}
LABELS = {"concerto": "Concerto (3-D SD + cross-modal)", "sd-only": "3-D self-distillation only",
          "cross-modal only": "cross-modal only", "cross-only": "cross-modal only"}


def describe(method) -> str:
    """The configuration read from the built model."""
    tok, enc = method.backbone.tokenizer, method.backbone.encoder
    img = method.image.backbone
    cams = method.cams()
    return (f"3-D: {tok.n_groups} groups x {tok.group_size} points, encoder {enc.dim} wide x {len(enc.blocks)} deep; "
            f"2-D: {cams.count} {cams.kind} cameras, {cams.size[0]}x{cams.size[1]} renders ({img.tokenizer.in_channels} "
            f"channel), ViT {img.dim} x {len(img.encoder.blocks)} on {img.tokenizer.grid[0]}x{img.tokenizer.grid[1]} "
            f"patches; image_share {method.image_share}, sd_weight {method.sd_weight}, cross_weight "
            f"{method.cross_weight}, prototypes {method.sd_head.out_dim}, mask_ratio {method.mask_ratio}, "
            f"center_targets {method.center_targets}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--minutes", type=float, default=4.0, help="training minutes of every variant")
    ap.add_argument("--out", default="runs/concerto_modelnet10")
    ap.add_argument("--variants", default="concerto,sd-only,cross-only")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="concerto-modelnet10", help="the result file: results/NAME.json")
    ap.add_argument("--no-save", action="store_true", help="do not write the result file")
    args = ap.parse_args()

    import torch

    import polyjepa as pj
    from polyjepa.eval.embed import embed_array
    from polyjepa.runner import build_random, load_run_method, open_run

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = pj.load_recipe("concerto-modelnet10", [o for o in args.set if o.startswith("data.")])
    d = pj.load_points(args.data, points=int(cfg.data.points), surface=bool(cfg.data.surface))

    def probes(tr, te):
        return probe(tr, d.y, te, d.y_test)

    t0 = time.time()
    rows, config = {}, None
    cached = out / "occupancy.json"                  # the descriptor's probes take minutes and never change
    if cached.exists():
        rows["voxel occupancy 16^3 (raw/classical)"] = json.loads(cached.read_text())
    else:
        rows["voxel occupancy 16^3 (raw/classical)"] = probes(occupancy(d.x), occupancy(d.x_test))
        cached.write_text(json.dumps(rows["voxel occupancy 16^3 (raw/classical)"]))
    print("voxel occupancy", rows["voxel occupancy 16^3 (raw/classical)"], flush=True)
    for v in args.variants.split(","):
        run = out / (f"{v}-m{args.minutes:g}" + (f"-s{args.seed}" if args.seed else ""))
        s = pretrained("concerto-modelnet10", run, args.data, max_minutes=args.minutes, seed=args.seed,
                       overrides=["train.threads=1", "train.max_epochs=1000", "eval.baselines=false",
                                  *VARIANTS[v], *args.set])
        _, rcfg, info = open_run(run)
        pool = s["embedding"]["pool"]
        method = load_run_method(run)[0]
        if config is None:
            config = describe(method)
            print("config:", config, flush=True)
            enc = build_random(rcfg, info)
            rows["random-init encoder (same shape)"] = probes(embed_array(enc, d.x, pool=pool),
                                                              embed_array(enc, d.x_test, pool=pool))
            print("random init", rows["random-init encoder (same shape)"], flush=True)
        if method.image_share > 0 and "frozen 2-D teacher on the renders" not in rows:
            feats = [torch.cat([method.embed_renders(torch.as_tensor(a[i:i + 256])) for i in range(0, len(a), 256)]).numpy()
                     for a in (d.x, d.x_test)]
            rows["frozen 2-D teacher on the renders"] = probes(*feats)
            print("2-D teacher", rows["frozen 2-D teacher on the renders"], flush=True)
        enc = method.encoder()
        rows[LABELS[v]] = {**probes(embed_array(enc, d.x, pool=pool), embed_array(enc, d.x_test, pool=pool)),
                           "minutes": s["train_seconds"] / 60, "steps": s["steps"]}
        print(v, rows[LABELS[v]], flush=True)
        (out / "results.json").write_text(json.dumps({"minutes": args.minutes, "seed": args.seed, "set": args.set,
                                                      "config": config, "rows": rows}, indent=1))
    print(f"\nModelNet10 official split ({len(d.x)} train / {len(d.x_test)} test clouds), {args.minutes:g} training "
          f"minutes per variant, seed {args.seed}; {(time.time() - t0) / 60:.1f} min in all\nconfig: {config}\n")
    print("| representation | logistic | linear SVM | kNN | RankMe | steps | train min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, r in rows.items():
        f = lambda key, fmt: (fmt.format(r[key]) if key in r else "-")  # noqa: E731
        print(f"| {k} | {f('linear', '{:.4f}')} | {f('svm', '{:.4f}')} | {f('knn', '{:.4f}')} | "
              f"{f('rankme', '{:.1f}')} | {f('steps', '{}')} | {f('minutes', '{:.1f}')} |")
    if args.no_save:
        return
    from polyjepa.results import save_result

    save_result(args.name, title=f"Concerto on ModelNet10, official split ({len(d.x):,} / {len(d.x_test)} "
                f"clouds), {args.minutes:g} training minutes per variant, seed {args.seed}",
                columns=["representation", "logistic", "linear SVM", "kNN", "RankMe", "steps", "train min"],
                rows=[[k, rounded(r, "linear", 4), rounded(r, "svm", 4), rounded(r, "knn", 4),
                       rounded(r, "rankme", 1), r.get("steps"), rounded(r, "minutes", 1)] for k, r in rows.items()],
                seconds=time.time() - t0, notes=[f"seed {args.seed}", f"config: {config}"],
                extra={"seed": args.seed, "set": args.set, "minutes": args.minutes, "config": config})


if __name__ == "__main__":
    main()
