"""DINO with fewer augmentations: the four view settings of the crop-only DINOv2 study on MNIST.

    python benchmarks/dino_views_mnist.py [DATA.npz] [--steps 300] [--batch 64] [--encoder micro]
        [--seeds 0,1] [--modes original,shared,crop_resize,crop] [--out DIR]

Every run is the ``dino-mnist`` recipe (DINO + KoLeo, 2 global + 4 local views) with the same encoder,
batch, steps, learning-rate schedule and seed; only the view maker changes:

- ``original``: random resized crops + brightness/contrast jitter + blur, drawn per view (``dino-mnist``);
- ``shared``: the same photometry, one draw per image shared by all its views (crop invariance only);
- ``crop_resize``: random resized crops alone;
- ``crop``: fixed-size windows (24x24 global, 12x12 local) of the 28x28 digit, no resampling
  (the ``dino-croponly-mnist`` recipe).

Linear and kNN probes of the teacher's mean-pooled test embeddings on the stratified 8,000 / 2,000
split, next to the random-init encoder of the same shape and the raw pixels (same split, same probes).
One thread per run; the table gives the mean over seeds and each seed's linear accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _args import data_file

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
MODES = {"original": ("dino-mnist", []), "shared": ("dino-mnist", ["views.mode=shared"]),
         "crop_resize": ("dino-mnist", ["views.mode=crop_resize"]), "crop": ("dino-croponly-mnist", [])}


def run(recipe, extra, data, out, args, seed, baselines):
    from polyjepa.runner import pretrain

    over = [f"train.max_steps={args.steps}", f"train.batch_size={args.batch}", f"encoder.size={args.encoder}",
            "train.threads=1", "train.max_minutes=null", f"train.monitor_every={args.steps}",
            f"eval.baselines={str(baselines).lower()}", *args.overrides, *extra]
    t0 = time.time()
    s = pretrain(recipe, data=data, out=str(out), overrides=over, seed=seed, progress=False, echo=lambda *a, **k: None)
    s["wall_seconds"] = time.time() - t0
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--encoder", default="micro")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*", help="recipe overrides applied to every run (key=value)")
    args = ap.parse_args(argv)
    data_file(args, DEFAULT_DATA, "MNIST file", f"the .npz path, e.g. {DEFAULT_DATA}")
    data = args.data
    import numpy as np
    import torch

    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="dino-views-"))
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        sys.exit(f"error: unknown mode(s) {unknown}: choose from {', '.join(MODES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    t_all = time.time()
    for mode in modes:
        for seed in seeds:
            key = f"{mode}/{seed}"
            if key not in results:
                recipe, extra = MODES[mode]
                first = not any("baselines" in r and r["baselines"] for r in results.values())
                results[key] = run(recipe, extra, data, out / f"{mode}-{seed}", args, seed, baselines=first)
                store.write_text(json.dumps(results, indent=1))
            print(f"done {key}: linear {results[key]['probe']['linear']['accuracy']:.4f}", file=sys.stderr, flush=True)

    print(f"\nDINO view settings on MNIST: {args.steps} steps x batch {args.batch}, one thread, seeds {seeds}; "
          f"stratified 8,000 / 2,000 split")
    from polyjepa.runner import load_run_method

    for mode in modes:  # the configuration each run really built, read from its saved model
        m = load_run_method(out / f"{mode}-{seeds[0]}")[0]
        enc, tok, v = m.backbone.encoder, m.backbone.tokenizer, m.views
        print(f"  {mode}: ViT {enc.dim} wide x {len(enc.blocks)} deep, patch {tok.patch_size}; views mode {v.mode}, "
              f"{v.n_global} global {v.global_size or tok.image_size} + {v.n_local} local {v.local_size}")
    print()
    print("| views | linear | kNN | linear per seed | minutes per run |")
    print("|---|---:|---:|---|---:|")
    rows = []
    for mode in modes:
        rs = [results[f"{mode}/{s}"] for s in seeds]
        lin = [r["probe"]["linear"]["accuracy"] for r in rs]
        knn = [r["probe"]["knn"]["accuracy"] for r in rs]
        mins = float(np.mean([r["wall_seconds"] for r in rs])) / 60
        print(f"| {mode} | {np.mean(lin):.4f} | {np.mean(knn):.4f} | {' / '.join(f'{v:.4f}' for v in lin)} | {mins:.1f} |")
        rows.append([mode, round(float(np.mean(lin)), 4), round(float(np.mean(knn)), 4),
                     " / ".join(f"{v:.4f}" for v in lin), round(mins, 1)])
    base = next(r["baselines"] for r in results.values() if r.get("baselines"))
    for name, b in base.items():
        print(f"| {name} (seed 0) | {b['linear']['accuracy']:.4f} | {b['knn']['accuracy']:.4f} | | |")
        rows.append([f"{name} (seed 0)", round(b["linear"]["accuracy"], 4), round(b["knn"]["accuracy"], 4), "", None])
    from polyjepa.results import save_result

    save_result("dino_views_mnist", title=f"DINO view settings on MNIST, {args.steps} steps x batch {args.batch}, "
                f"ViT-{args.encoder}", columns=["views", "linear", "kNN", "linear per seed", "minutes per run"],
                rows=rows, seconds=time.time() - t_all,
                notes=[f"stratified 8,000 / 2,000 split of mnist_t10k.npz; seeds {seeds}; one thread per run",
                       f"command: python benchmarks/dino_views_mnist.py --steps {args.steps} --batch {args.batch} "
                       f"--encoder {args.encoder} --seeds {args.seeds}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
