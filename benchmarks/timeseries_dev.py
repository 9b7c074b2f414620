"""The time-series development collection: TimeSeriesEmbedder() next to ROCKET and MiniRocket on 23 UCR sets.

    OMP_NUM_THREADS=1 python benchmarks/timeseries_dev.py [--sets Adiac,Car,...] [--max-sets N]
        [--methods ours,raw,rawlog,rocket,minirocket] [--probe ridge|logistic] [--seed 0] [--json OUT.json]
        [--name timeseries-dev] [--embedder key=value ...]

A recipe's encoder against its random init and the raw series (e.g. TS-JEPA):

    python benchmarks/timeseries_dev.py --methods learned,init,raw,rawlog --embedder recipe=tsjepa budget=recipe \
        --name timeseries-dev-tsjepa

The collection is the 18 UCR sets of ``../shared/data/ucr_dev/`` (not bundled in aeon, never used to
build the embedder's defaults before this benchmark existed) plus the five univariate UCR sets bundled
in aeon (GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1); official train/test splits.

Protocol: ``TimeSeriesEmbedder()`` with its defaults is fitted on the training series without labels and
both splits are embedded; ROCKET (10,000 kernels) and MiniRocket are aeon's transforms, fitted the same way;
the raw series are used as they are. Every arm then gets the same probe, ROCKET's own classifier: a ridge
classifier on standardised features with alpha from ten values in [1e-3, 1e3] by leave-one-out on the train
set (``polyjepa.eval.ridge_classifier_probe``; aeon's RocketClassifier is this transform + probe). The
``rawlog`` arm adds the raw series under logistic regression (``linear_probe``, C from a validation split),
the stronger of the two probes on raw series, as a second baseline. Every method runs in this process
with one thread, and the methods alternate per set so that machine load falls on all of them alike.
Seconds are the process's CPU time of fit + transform + probe, one thread, so
they measure each method's cost even when other jobs share the machine; wall time is kept in the JSON.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
# One thread for numba too (aeon's transforms), and OpenMP workers that sleep rather than spin when idle: with
# numba's default pool, idle threads left over from ROCKET kept spinning through the next method and billed it
# 15-20x its CPU time on a loaded machine.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import time
from pathlib import Path

DEV_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ucr_dev"
BUNDLED = ["GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf", "ACSF1"]
DEFAULT_METHODS = "ours,raw,rawlog,rocket,minirocket"
NAMES = {"ours": "TimeSeriesEmbedder()", "learned": "learned part only", "init": "learned part at random init",
         "kernels": "kernel part only",
         "raw": "raw + probe", "rawlog": "raw + logistic", "rocket": "ROCKET (aeon)", "minirocket": "MiniRocket (aeon)"}


def dev_sets() -> list[str]:
    return sorted(p.stem for p in DEV_DIR.glob("*.npz")) + BUNDLED


def load(name: str):
    """(x_train (n, C, L) float32, y_train int, x_test, y_test int) with the official split."""
    import numpy as np

    path = DEV_DIR / f"{name}.npz"
    if path.exists():
        z = np.load(path)
        x, y, xt, yt = z["X_train"], z["y_train"], z["X_test"], z["y_test"]
        x, xt = x.reshape(len(x), 1, -1), xt.reshape(len(xt), 1, -1)
    else:
        from polyjepa.timeseries.data import load_series

        d = load_series(name)
        x, y, xt, yt = d.x, d.y, d.x_test, d.y_test
    classes = np.unique(np.concatenate([np.asarray(y), np.asarray(yt)]))
    return (x.astype(np.float32), np.searchsorted(classes, y), xt.astype(np.float32), np.searchsorted(classes, yt))


def embedder_kwargs(pairs: list[str]) -> dict:
    """``key=value`` pairs for TimeSeriesEmbedder, values read as Python literals where they parse."""
    import ast

    out = {}
    for p in pairs:
        key, _, value = p.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def probe(f, y, ft, yt, kind: str, seed: int) -> dict:
    """The probe every arm shares: ``ridge`` (ROCKET's classifier) or ``logistic`` (``linear_probe``)."""
    from polyjepa.eval.probes import linear_probe, ridge_classifier_probe

    if kind == "ridge":
        return ridge_classifier_probe(f, y, ft, yt)
    return linear_probe(f, y, ft, yt, seed=seed)


def run_method(m: str, data, seed: int, kw: dict, kind: str = "ridge") -> dict:
    """Features of one arm on both splits, then the shared probe; seconds cover features and probe."""
    import numpy as np

    x, y, xt, yt = data
    t0, c0 = time.perf_counter(), time.process_time()
    info = {}
    if m in ("rocket", "minirocket"):
        from aeon.transformations.collection.convolution_based import MiniRocket, Rocket

        tf = (Rocket(n_kernels=10000, random_state=seed, n_jobs=1) if m == "rocket"
              else MiniRocket(random_state=seed, n_jobs=1)).fit(np.nan_to_num(x))
        f, ft = tf.transform(np.nan_to_num(x)), tf.transform(np.nan_to_num(xt))
    elif m in ("raw", "rawlog"):
        f, ft = np.nan_to_num(x.reshape(len(x), -1)), np.nan_to_num(xt.reshape(len(xt), -1))
    else:
        from polyjepa import TimeSeriesEmbedder

        extra = {"learned": {"kernels": 0}, "init": {"kernels": 0, "max_steps": 0},
                 "kernels": {"max_steps": 0, "learned": False}}.get(m, {})
        emb = TimeSeriesEmbedder(**{"random_state": seed, "threads": 1, **kw, **extra}).fit(x)
        f, ft = emb.transform(x), emb.transform(xt)
        info = {"steps": int(emb.train_record_.get("steps", 0)),
                "stopped_early": bool(emb.train_record_.get("stopped_early", False)),
                "train_seconds": float(emb.train_record_.get("train_seconds", 0.0)),
                "budget": emb.train_record_.get("budget")}
    out = probe(f, y, ft, yt, "logistic" if m == "rawlog" else kind, seed)
    return {"accuracy": float(out["accuracy"]), "seconds": time.process_time() - c0,
            "wall_seconds": time.perf_counter() - t0, "dim": int(f.shape[1]), **info}


def report(results: dict, methods: list[str], args, built: dict, wall: float, final: bool) -> None:
    """Print the table (when final) and save it; saved after every set, so a stopped run keeps its sets."""
    import numpy as np

    lines = ["| data set | train/test x length | " + " | ".join(NAMES[m] for m in methods) + " |",
             "|---|---|" + "---:|" * len(methods)]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n_train']}/{r['n_test']} x {r['shape'][-1]} | "
                     + " | ".join(f"{r[m]['accuracy']:.3f}" for m in methods) + " |")
    means = [np.mean([r[m]["accuracy"] for r in results.values()]) for m in methods]
    lines.append(f"| **mean ({len(results)} sets)** | | " + " | ".join(f"**{v:.3f}**" for v in means) + " |")
    for base, label in (("raw", "sets above raw"), ("rawlog", "sets above raw + logistic")):
        if base in methods:
            wins = [sum(r[m]["accuracy"] > r[base]["accuracy"] for r in results.values()) for m in methods]
            lines.append(f"| {label} | | " + " | ".join("-" if m in ("raw", "rawlog") else f"{w}/{len(results)}"
                                                        for m, w in zip(methods, wins)) + " |")
    secs = [sum(r[m]["seconds"] for r in results.values()) for m in methods]
    lines.append("| CPU seconds (all sets) | | " + " | ".join(f"{s:.0f}" for s in secs) + " |")
    if "rocket" in methods:
        base = secs[methods.index("rocket")]
        lines.append("| time / ROCKET's | | " + " | ".join(f"{s / base:.2f}x" for s in secs) + " |")
    if final:
        print("\n".join(lines))

    from polyjepa.results import parse_markdown_table, save_result

    columns, rows = parse_markdown_table("\n".join(lines))
    notes = ([] if final else [f"partial run: {len(results)} sets"]) + [
        "official UCR splits; every arm gets the same probe: "
        + ("ridge classifier on standardised features, alpha in logspace(-3, 3, 10) by leave-one-out (ROCKET's)"
           if args.probe == "ridge" else "logistic regression, C from a validation split")
        + "; raw + logistic: the raw series under logistic regression (C from a validation split)"
        + f"; seed {args.seed}; one thread each, methods alternating per set", f"TimeSeriesEmbedder parameters: {built}"]
    if getattr(args, "merge", None):
        notes.append(f"joined from {len(args.merge)} shard runs (--shard I/{len(args.merge)}), run side by side; "
                     f"seconds = the sum of the shards' wall times")
    command = None
    if getattr(args, "merge", None):
        n = len(args.merge)
        opts = run_options(args)
        command = (f"for i in $(seq 0 {n - 1}); do OMP_NUM_THREADS=1 python benchmarks/timeseries_dev.py --shard $i/{n}"
                   f"{opts} --json s$i.json --name shard$i & done; wait; python benchmarks/timeseries_dev.py --merge "
                   + " ".join(f"s{i}.json" for i in range(n)) + opts
                   + ("" if args.name == "timeseries-dev" else f" --name {args.name}"))
    peers = [m for m in ("rocket", "minirocket") if m in methods]
    title = ("Time-series development collection (23 UCR sets): TimeSeriesEmbedder("
             + ", ".join(args.embedder or []) + ")"
             + (f" vs {' and '.join({'rocket': 'ROCKET', 'minirocket': 'MiniRocket'}[m] for m in peers)}" if peers
                else " vs its random init and the raw series"))
    save_result(args.name, command=command, title=title, columns=columns, rows=rows, seconds=wall, notes=notes,
                extra={"seed": args.seed, "embedder": built, "per_set": results})


def run_options(args) -> str:
    """The options that chose what was run (not where it was written), as a command line fragment."""
    parts = []
    if args.sets:
        parts.append(f"--sets {args.sets}")
    if args.methods != DEFAULT_METHODS:
        parts.append(f"--methods {args.methods}")
    if args.probe != "ridge":
        parts.append(f"--probe {args.probe}")
    if args.seed:
        parts.append(f"--seed {args.seed}")
    if args.embedder:
        parts.append("--embedder " + " ".join(args.embedder))
    return "".join(" " + p for p in parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=None, help="comma-separated set names (default: all 23)")
    ap.add_argument("--max-sets", type=int, default=None, help="only the first N of the chosen sets")
    ap.add_argument("--methods", default=DEFAULT_METHODS,
                    help="of ours, learned, init, kernels, raw, rawlog, rocket, minirocket")
    ap.add_argument("--probe", default="ridge", choices=["ridge", "logistic"], help="the probe every arm gets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedder", nargs="*", default=[], help="TimeSeriesEmbedder arguments, key=value")
    ap.add_argument("--name", default="timeseries-dev", help="results/<name>.json")
    ap.add_argument("--json", default=None, help="also write every per-set record here")
    ap.add_argument("--shard", default=None, help="I/N: run every N-th set from the I-th (0-based), to split a run "
                                                  "over processes")
    ap.add_argument("--merge", nargs="*", default=None, help="no run: join these --json files of shards into one table")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    sets = args.sets.split(",") if args.sets else dev_sets()
    sets = sets[:args.max_sets] if args.max_sets else sets
    if args.shard:
        i, n = (int(v) for v in args.shard.split("/"))
        sets = sets[i::n]
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in NAMES]
    if unknown:
        sys.exit(f"error: unknown method(s) {unknown}: use {', '.join(NAMES)}")
    kw = embedder_kwargs(args.embedder)

    from polyjepa import TimeSeriesEmbedder

    probe = TimeSeriesEmbedder(**kw)
    built = {k: v for k, v in probe.get_params().items()}
    print(f"TimeSeriesEmbedder parameters: {built}", file=sys.stderr, flush=True)
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]   # --json files, or results/*.json of shards
        joined = {k: v for p in parts for k, v in (p["results"] if "results" in p else p["extra"]["per_set"]).items()}
        results = {name: joined[name] for name in dev_sets() if name in joined}
        wall = sum(p.get("wall", p.get("seconds")) or 0.0 for p in parts)
        report(results, methods, args, built, wall, final=True)
        return 0
    results, t_all = {}, time.perf_counter()
    for i, name in enumerate(sets):
        data = load(name)
        r = {"n_train": len(data[0]), "n_test": len(data[2]), "shape": list(data[0].shape[1:])}
        order = methods if i % 2 == 0 else methods[::-1]  # alternate who runs first on a set
        for m in order:
            r[m] = run_method(m, data, args.seed, kw, args.probe)
            extra = f" steps {r[m]['steps']} dim {r[m]['dim']}" if "steps" in r[m] else ""
            print(f"  {name:<30} {m:<10} {r[m]['accuracy']:.4f} {r[m]['seconds']:7.1f}s cpu "
                  f"{r[m]['wall_seconds']:7.1f}s wall{extra}", file=sys.stderr, flush=True)
        results[name] = r
        report(results, methods, args, built, time.perf_counter() - t_all, final=i == len(sets) - 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results, "wall": time.perf_counter() - t_all}, f, indent=1,
                      default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
