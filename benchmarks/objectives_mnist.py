"""Every multi-view recipe and I-JEPA on MNIST at one step budget, and a small hyperparameter sweep.

    python benchmarks/objectives_mnist.py [DATA.npz] [--steps 100] [--batch 64] [--encoder micro]
        [--recipes simclr-mnist,...] [--sweep vicreg-mnist,...] [--sweep-steps 60] [--out DIR]
        [--sweep-seeds 0,1,2] [--sweep-set KEY=V1,V2,...]

Part 1 (--recipes, default all): pretrains each recipe on the stratified 8,000 / 2,000 split of the
MNIST file with the same encoder size, batch and number of steps (one thread), and prints one
markdown table: linear and kNN probe accuracy of the test embeddings, RankMe, LiDAR (500 test
images x 4 views of the multi-view view maker's whole-image crops, the same views for every
encoder), training samples/s. The random-init encoder and raw pixels are probed the same way
(with each readout: mean pooling for the multi-view recipes, the recipe's ``grid:4`` for I-JEPA).

Part 2 (--sweep): for each named recipe, one hyperparameter over a few values (SWEEPS below) at
``--sweep-steps``; prints RankMe and the probes per value and Spearman(RankMe, linear probe).
``--sweep-seeds`` repeats every value with other seeds (initialisation, views, batches): the table shows
the seed means, and Spearman is given on the means and per seed. ``--sweep-set`` sweeps another
hyperparameter instead of the table's (e.g. ``train.lr=3e-4,1e-3,3e-3,1e-2``).
Timings on a shared machine are inflated by contention.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
MULTIVIEW = ["simclr-mnist", "barlow-mnist", "vicreg-mnist", "tico-mnist", "intl-mnist", "dino-mnist", "lejepa-mnist"]
ALL = MULTIVIEW + ["ijepa-mnist"]
SWEEPS = {
    "simclr-mnist": ("objective.temperature", [0.05, 0.2, 0.5, 2.0]),
    "barlow-mnist": ("objective.lambd", [0.0005, 0.005, 0.05, 0.5]),
    "vicreg-mnist": ("objective.cov_weight", [0.0, 0.1, 1.0, 10.0]),
    "tico-mnist": ("objective.rho", [0.0, 2.0, 8.0, 32.0]),
    "intl-mnist": ("objective.beta", [0.0, 0.01, 0.05, 0.5]),
    "dino-mnist": ("objective.koleo_weight", [0.0, 0.1, 0.3, 1.0]),
    "lejepa-mnist": ("objective.lambd", [0.0, 0.01, 0.05, 0.3]),
    "ijepa-mnist": ("regularizer.var_weight", [0.0, 1.0, 5.0, 25.0]),
}


def run_one(recipe, data, out, steps, batch, encoder, extra=(), baselines=True, seed=0):
    from polyjepa.runner import pretrain

    over = [f"train.max_steps={steps}", f"train.batch_size={batch}", f"encoder.size={encoder}", "train.threads=1",
            f"train.monitor_every={max(steps // 2, 1)}", "train.max_minutes=null", "eval.monitor_samples=512",
            f"eval.baselines={str(baselines).lower()}", *extra]
    t0 = time.time()
    s = pretrain(recipe, data=data, out=str(out), overrides=over, seed=seed, progress=False, echo=lambda *a, **k: None)
    s["lidar"] = test_lidar(out)
    s["wall_seconds"] = time.time() - t0
    return s


def test_lidar(run_dir, n=500, views=4):
    from polyjepa.config import EvalConfig, dataclass_from
    from polyjepa.eval.evaluate import lidar_score
    from polyjepa.multiview.views import ViewMaker
    from polyjepa.runner import load_run_method, prepare_run_data

    method, cfg, info = load_run_method(Path(run_dir))
    prepared = prepare_run_data(cfg, info)
    ev = dataclass_from(cfg, "eval", EvalConfig)
    maker = ViewMaker(n_global=views, global_scale=(0.3, 1.0), jitter=0.8, brightness=0.4, contrast=0.4, blur=0.5)
    return lidar_score(method.encoder(), prepared.x_test[:n], pool=ev.pool, layers=ev.layers, views=maker, n_views=views)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--encoder", default="micro")
    ap.add_argument("--recipes", default=",".join(ALL), help="comma-separated; empty for none")
    ap.add_argument("--sweep", default="", help="comma-separated recipes to sweep (see SWEEPS)")
    ap.add_argument("--sweep-steps", type=int, default=60)
    ap.add_argument("--sweep-seeds", default="0", help="comma-separated seeds for every swept value")
    ap.add_argument("--sweep-set", default=None, help="KEY=V1,V2,... to sweep instead of SWEEPS' entry")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        sys.exit(f"error: MNIST file {args.data} not found: pass the .npz path, e.g. {DEFAULT_DATA}")
    import torch

    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="objectives-mnist-"))
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}

    def save():
        (out / "results.json").write_text(json.dumps(results, indent=1))

    recipes = [r for r in args.recipes.split(",") if r]
    have_random_mean = False
    for r in recipes:
        key = f"main/{r}"
        if key not in results:
            # The random-init backbone is the same for every multi-view recipe (same size, seed, readout):
            # probe it once; I-JEPA (grid:4 readout) gets its own.
            baselines = r == "ijepa-mnist" or not have_random_mean
            results[key] = run_one(r, args.data, out / r, args.steps, args.batch, args.encoder, baselines=baselines)
            save()
        have_random_mean = have_random_mean or (r != "ijepa-mnist" and "random_init" in results[key]["baselines"])
        print(f"done {r}", file=sys.stderr, flush=True)
    if recipes:
        print_main(results, recipes, args)

    seeds = [int(x) for x in args.sweep_seeds.split(",")]
    for r in [r for r in args.sweep.split(",") if r]:
        name, values = SWEEPS[r]
        if args.sweep_set:
            name, _, vals = args.sweep_set.partition("=")
            values = vals.split(",")   # passed to the recipe as written (ints stay ints)
        for v in values:
            for seed in seeds:
                key = sweep_key(r, name, v, seed)
                if key not in results:
                    results[key] = run_one(r, args.data, out / key.replace("/", "-"), args.sweep_steps, args.batch,
                                           args.encoder, extra=[f"{name}={v}"], baselines=False, seed=seed)
                    save()
                print(f"done {key}", file=sys.stderr, flush=True)
        print_sweep(results, r, name, values, seeds, args)
    return 0


def sweep_key(recipe, name, value, seed):
    # Seed 0 keeps the key (and run folder) of earlier single-seed sweeps, so their results are reused.
    return f"sweep/{recipe}/{name}={value}" + (f"/seed={seed}" if seed else "")


def _acc(p, k):
    return f"{p[k]['accuracy']:.4f}" if k in p else "-"


def print_main(results, recipes, args):
    print(f"\n{args.steps} steps x batch {args.batch}, ViT-{args.encoder}, one thread; stratified 8,000 / 2,000 split\n")
    print("| representation | readout | linear | kNN | RankMe | LiDAR | samples/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    base_rows, table = [], []
    for r in recipes:
        s = results[f"main/{r}"]
        lid = "-" if s.get("lidar") is None else f"{s['lidar']:.1f}"
        print(f"| {r} | {s['embedding']['pool']} | {_acc(s['probe'], 'linear')} | {_acc(s['probe'], 'knn')} | "
              f"{s['rankme']:.1f} | {lid} | {s['samples_per_second']:.0f} |")
        table.append([r, s["embedding"]["pool"], _num(s["probe"], "linear"), _num(s["probe"], "knn"),
                      round(s["rankme"], 1), None if s.get("lidar") is None else round(s["lidar"], 1),
                      round(s["samples_per_second"])])
        for name, b in s.get("baselines", {}).items():
            base_rows.append((f"{name} ({s['embedding']['pool']})", b))
    for name, b in base_rows:
        print(f"| {name} | | {_acc(b, 'linear')} | {_acc(b, 'knn')} | {b.get('rankme', float('nan')):.1f} | | |")
        table.append([name, "", _num(b, "linear"), _num(b, "knn"), round(b["rankme"], 1) if "rankme" in b else None,
                      None, None])
    from polyjepa.results import save_result

    save_result(f"objectives-mnist-{args.steps}steps",
                title=f"Joint-embedding objectives on MNIST, {args.steps} steps x batch {args.batch}, ViT-{args.encoder}",
                columns=["representation", "readout", "linear", "kNN", "RankMe", "LiDAR", "samples/s"], rows=table,
                notes=["stratified 8,000 / 2,000 split of mnist_t10k.npz; seed 0"])


def _num(p, k):
    return round(p[k]["accuracy"], 4) if k in p else None


def print_sweep(results, recipe, name, values, seeds, args):
    import numpy as np
    from scipy.stats import spearmanr

    runs = {v: [results[sweep_key(recipe, name, v, s)] for s in seeds] for v in values}
    print(f"\nsweep {recipe}: {name}, {args.sweep_steps} steps x batch {args.batch}, seeds {seeds} (means)\n")
    print(f"| {name} | linear | kNN | RankMe | LiDAR | linear per seed | RankMe per seed |")
    print("|---:|---:|---:|---:|---:|---|---|")

    def mean(rs, get):
        return float(np.mean([get(s) for s in rs]))

    def lin(s):
        return s["probe"]["linear"]["accuracy"]

    for v, rs in runs.items():
        lid = "-" if any(s.get("lidar") is None for s in rs) else f"{mean(rs, lambda s: s['lidar']):.1f}"
        lin_seeds = " / ".join(f"{lin(s):.3f}" for s in rs)
        rank_seeds = " / ".join(f"{s['rankme']:.1f}" for s in rs)
        print(f"| {v} | {mean(rs, lin):.4f} | {mean(rs, lambda s: s['probe']['knn']['accuracy']):.4f} | "
              f"{mean(rs, lambda s: s['rankme']):.1f} | {lid} | {lin_seeds} | {rank_seeds} |")
    rk = [mean(rs, lambda s: s["rankme"]) for rs in runs.values()]
    li = [mean(rs, lin) for rs in runs.values()]
    lid = [mean(rs, lambda s: s.get("lidar") or 0.0) for rs in runs.values()]
    print(f"\nSpearman(RankMe, linear) = {spearmanr(rk, li).statistic:.2f}; "
          f"Spearman(LiDAR, linear) = {spearmanr(lid, li).statistic:.2f} over {len(runs)} values (seed means)")
    if len(seeds) > 1:
        per = [spearmanr([rs[i]["rankme"] for rs in runs.values()], [lin(rs[i]) for rs in runs.values()]).statistic
               for i in range(len(seeds))]
        pooled = spearmanr([s["rankme"] for rs in runs.values() for s in rs], [lin(s) for rs in runs.values() for s in rs])
        print(f"Spearman(RankMe, linear) per seed: {' / '.join(f'{x:.2f}' for x in per)}; "
              f"over all {len(values) * len(seeds)} runs pooled: {pooled.statistic:.2f}")


if __name__ == "__main__":
    sys.exit(main())
