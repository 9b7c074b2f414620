"""The quick-start job over several seeds: is the pretrained encoder ahead of both baselines on every one?

    python benchmarks/quickstart.py [--recipe cjepa-mnist6k] [--seeds 0,1,2] [--out DIR] [key=value ...]

Runs ``polyjepa pretrain RECIPE --seed S`` for each seed (the README's quick start is seed 0), then
prints one row per seed and representation: linear- and kNN-probe accuracy of the pretrained encoder,
of a random-init encoder of the same architecture and of the raw pixels (same split, same probes), and
the job's minutes (training, evaluation and the whole run) and the precision it trained in (``train.precision: auto``
picks bf16 autocast on a CPU with bf16 units, fp32 elsewhere). Writes ``results/quickstart.json``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="cjepa-mnist6k")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a new temporary folder)")
    ap.add_argument("--name", default="quickstart", help="result file stem under results/ (default quickstart)")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_args(argv)

    from polyjepa.results import save_result
    from polyjepa.runner import pretrain

    out = Path(args.out or tempfile.mkdtemp(prefix="quickstart-"))
    # an empty baseline cache of its own, so that every run computes both baselines, as a first run does
    os.environ["POLYJEPA_CACHE"] = tempfile.mkdtemp(prefix="cache-", dir=out if out.exists() else None)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, wins, quick, started = [], 0, 0, time.perf_counter()
    for seed in seeds:
        s = pretrain(args.recipe, out=str(out / f"seed-{seed}"), seed=seed, overrides=args.overrides,
                     progress=False, echo=lambda *a, **k: None)
        b = s["baselines"]
        reps = [("pretrained encoder", s["probe"]), ("random-init encoder", b["random_init"]), ("raw pixels", b["raw"])]
        lin = [r["linear"]["accuracy"] for _, r in reps]
        wins += lin[0] > max(lin[1:])
        evaluation = s["phase_seconds"]["evaluation"]
        quick += evaluation < s["train_seconds"]
        for name, r in reps:
            first = name.startswith("pretrained")
            rows.append([seed, name, r["linear"]["accuracy"], r["knn"]["accuracy"],
                         round(s["train_seconds"] / 60, 2) if first else None,
                         round(evaluation / 60, 2) if first else None,
                         round(s["seconds"] / 60, 2) if first else None, s["precision"] if first else None])
        print(f"seed {seed}: linear {lin[0]:.4f} / random init {lin[1]:.4f} / raw {lin[2]:.4f}; "
              f"{s['train_seconds'] / 60:.1f} min training ({s['precision']}), {s['seconds'] / 60:.1f} min in all", flush=True)
    cols = ["seed", "representation", "linear", "kNN", "training min", "evaluation min", "job min", "precision"]
    print(f"\n{args.recipe} ({s['data']}, {s['n_train']} train / {s['n_test']} test, "
          f"{s['steps']} steps of {s['samples_seen'] // max(s['steps'], 1)} samples; readout {s['embedding']['pool']}, "
          f"{s['embedding']['dim']} features)\n")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if v is None else f"{v:.4f}" if i in (2, 3) else str(v)
                                for i, v in enumerate(r)) + " |")
    note = (f"the pretrained encoder's linear probe beats both baselines on {wins} of {len(seeds)} seeds "
            f"(same split, same probes: logistic regression with C chosen on a validation split, cosine kNN k=20)")
    timing = (f"evaluation (both baselines computed, from an empty baseline cache) took less time than training on "
              f"{quick} of {len(seeds)} seeds")
    print("\n" + note + "\n" + timing)
    path = save_result(args.name, columns=cols, rows=rows, title=f"Quick start: {args.recipe} on {s['data']}",
                       seconds=time.perf_counter() - started, notes=[note, timing],
                       command="python benchmarks/quickstart.py " + " ".join(
                           ([f"--recipe {args.recipe}"] if args.recipe != "cjepa-mnist6k" else [])
                           + ([f"--name {args.name}"] if args.name != "quickstart" else [])
                           + [f"--seeds {args.seeds}"] + args.overrides),
                       extra={"recipe": args.recipe, "overrides": args.overrides, "n_train": s["n_train"],
                              "n_test": s["n_test"], "steps": s["steps"], "embedding": s["embedding"]})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
