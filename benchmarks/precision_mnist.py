"""bf16 autocast vs fp32 on MNIST: the same probe accuracy within seed noise, and the training speed of each.

    python benchmarks/precision_mnist.py [--seeds 0,1,2] [--recipe ijepa-digits] [--threads 1] [key=value ...]

For each seed, pretrains I-JEPA + VCR (the ``ijepa-digits`` recipe moved to the bundled 6,000-image MNIST sample,
at ViT-Tiny's width 192, where ``train.precision: auto`` chooses bf16 on a CPU with bf16 units; 2 blocks, 150
steps: see ``WIDE``) once with ``train.precision=32-true`` and once with
``train.precision=bf16-mixed``, same seed, same split, same probes (logistic regression with C chosen on a
validation split, cosine kNN k=20), and reports the linear and kNN accuracy of each, the per-seed difference,
and the training speed (samples per second of process CPU time, and of wall time). Evaluation is always fp32.
Writes ``results/precision_mnist.json``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

# I-JEPA on MNIST at ViT-Tiny's width (192, where ``auto`` chooses bf16 on a CPU with bf16 units), 2 blocks deep,
# 7x7 patches of 4, mean read-out: small enough for 3 seeds x 2 precisions on a shared 2-core machine.
WIDE = ["data.source=mnist6k", "data.test_size=1000", "tokenizer.patch_size=4", "encoder.size=tiny",
        "encoder.depth=2", "predictor.dim=96", "predictor.depth=2", "predictor.heads=3", "train.batch_size=64",
        "train.max_steps=150", "train.monitor_every=0", "eval.pool=mean"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="ijepa-digits")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for the runs (default: a new temporary folder)")
    ap.add_argument("overrides", nargs="*", help=f"recipe overrides (default: {' '.join(WIDE)})")
    args = ap.parse_args(argv)
    import torch

    from polyjepa.results import save_result
    from polyjepa.runner import pretrain

    torch.set_num_threads(args.threads)
    over = args.overrides or WIDE
    out = Path(args.out or tempfile.mkdtemp(prefix="precision-"))
    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = ["32-true", "bf16-mixed"]
    started = time.perf_counter()
    res: dict[tuple[int, str], dict] = {}
    for seed in seeds:
        for p in precisions:
            cpu = time.process_time()
            s = pretrain(args.recipe, out=str(out / f"{p}-seed{seed}"), seed=seed, progress=False,
                         echo=lambda *a, **k: None,
                         overrides=over + [f"train.precision={p}", f"train.threads={args.threads}",
                                           "eval.baselines=false"])
            s["cpu_seconds"] = time.process_time() - cpu
            res[seed, p] = s
            print(f"seed {seed} {p}: linear {s['probe']['linear']['accuracy']:.4f} kNN "
                  f"{s['probe']['knn']['accuracy']:.4f}; {s['samples_per_second']:.1f} samples/s (wall), "
                  f"{s['cpu_seconds']:.0f} CPU s for the job", flush=True)

    cols = ["seed", "precision", "linear", "kNN", "training samples/s (wall)", "job CPU s"]
    rows = [[seed, p, res[seed, p]["probe"]["linear"]["accuracy"], res[seed, p]["probe"]["knn"]["accuracy"],
             round(res[seed, p]["samples_per_second"], 1), round(res[seed, p]["cpu_seconds"])]
            for seed in seeds for p in precisions]
    diff_lin = [res[s, "bf16-mixed"]["probe"]["linear"]["accuracy"] - res[s, "32-true"]["probe"]["linear"]["accuracy"]
                for s in seeds]
    diff_knn = [res[s, "bf16-mixed"]["probe"]["knn"]["accuracy"] - res[s, "32-true"]["probe"]["knn"]["accuracy"]
                for s in seeds]

    def spread(p, key):
        v = [res[s, p]["probe"][key]["accuracy"] for s in seeds]
        return statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0

    speed = {p: statistics.median(res[s, p]["samples_per_second"] for s in seeds) for p in precisions}
    s0 = res[seeds[0], precisions[0]]
    notes = [
        f"linear: fp32 {spread('32-true', 'linear')[0]:.4f} +- {spread('32-true', 'linear')[1]:.4f}, bf16 "
        f"{spread('bf16-mixed', 'linear')[0]:.4f} +- {spread('bf16-mixed', 'linear')[1]:.4f} (mean +- sd over "
        f"{len(seeds)} seeds); bf16 - fp32 per seed: {', '.join(f'{d:+.4f}' for d in diff_lin)}",
        f"kNN: bf16 - fp32 per seed: {', '.join(f'{d:+.4f}' for d in diff_knn)}",
        f"training speed (median over seeds, wall time, precisions alternating): fp32 {speed['32-true']:.1f}, "
        f"bf16 {speed['bf16-mixed']:.1f} samples/s ({speed['bf16-mixed'] / speed['32-true']:.2f}x)",
        f"{args.recipe} {' '.join(over)}: {s0['steps']} steps, {s0['n_train']} train / {s0['n_test']} test; "
        f"{args.threads} thread(s)",
    ]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) and i in (2, 3) else str(v)
                                for i, v in enumerate(r)) + " |")
    print("\n" + "\n".join(notes))
    path = save_result("precision_mnist", title=f"bf16 autocast vs fp32: {args.recipe} ({' '.join(over)})",
                       columns=cols, rows=rows, seconds=time.perf_counter() - started, notes=notes,
                       extra={"recipe": args.recipe, "overrides": over, "threads": args.threads,
                              "diff_linear": diff_lin, "diff_knn": diff_knn, "samples_per_second": speed})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
