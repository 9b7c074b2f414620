"""bf16 autocast vs fp32 on MNIST: the same probe accuracy within seed noise, and the training speed of each.

    python benchmarks/precision_mnist.py [--config wide|tiny12] [--seeds 0,1,2] [--recipe ijepa-digits] [--threads 1]
                                         [--name NAME] [key=value ...]

For each seed, pretrains I-JEPA + VCR (the ``ijepa-digits`` recipe moved to the bundled 6,000-image MNIST sample,
at ViT-Tiny's width 192, where ``train.precision: auto`` chooses bf16 on a CPU with bf16 units; 2 blocks, 150
steps: see ``WIDE``) once with ``train.precision=32-true`` and once with
``train.precision=bf16-mixed``, same seed, same split, same probes (logistic regression with C chosen on a
validation split, cosine kNN k=20), and reports the linear and kNN accuracy of each, the per-seed difference,
and the training speed (samples per second of process CPU time, and of wall time). Evaluation is always fp32.
Writes ``results/precision_mnist.json``.

``--reuse`` reads runs already finished in ``--out`` instead of training them again, and ``--reprobe`` then probes
their encoders again with the current probe code.

``--config tiny12`` runs the same comparison at the configuration of ``benchmarks/throughput.py``: ViT-Tiny as
named (192 wide, 12 deep, 3 heads), predictor 96 wide and 6 deep (see ``TINY12``), written to
``results/precision_mnist-tiny12.json`` unless ``--name`` says otherwise. Overrides given after the options are
added to the configuration's own (a later key wins). The training time ratio is reported both from the
training loop's wall clock and from each job's process CPU time.
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

# The throughput benchmark's configuration on the same MNIST sample: ViT-Tiny by name (192 wide, 12 deep, 3 heads),
# predictor 96 x 6, 28x28 digits in patches of 4 (49 tokens). 100 steps is about 3 minutes of fp32 training on one
# thread of a shared 2-core machine (a step is about 1 s of CPU time in fp32, 0.5 s in bf16).
TINY12 = ["data.source=mnist6k", "data.test_size=1000", "tokenizer.patch_size=4", "encoder.size=tiny",
          "predictor.dim=96", "predictor.depth=6", "predictor.heads=3", "train.batch_size=64",
          "train.max_steps=100", "train.monitor_every=0", "eval.pool=mean"]
CONFIGS = {"wide": (WIDE, "precision_mnist"), "tiny12": (TINY12, "precision_mnist-tiny12")}


def built(run_dir: Path) -> str:
    """The encoder and predictor as the trained run holds them (read from the model, not from the overrides)."""
    from polyjepa.runner import load_run_method

    method = load_run_method(run_dir)[0]
    enc, tok, p = method.backbone.encoder, method.backbone.tokenizer, method.predictor
    return (f"encoder {enc.dim} wide x {len(enc.blocks)} deep, {enc.heads} heads; patch {tok.patch_size} "
            f"({tok.num_tokens} tokens); predictor {p.embed.out_features} wide x {len(p.blocks)} deep")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="wide",
                    help="wide: 192 x 2 blocks (default); tiny12: throughput.py's ViT-Tiny 192 x 12, predictor 96 x 6")
    ap.add_argument("--name", default=None, help="result name (default: precision_mnist, or precision_mnist-tiny12)")
    ap.add_argument("--recipe", default="ijepa-digits")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for the runs (default: a new temporary folder)")
    ap.add_argument("--reuse", action="store_true",
                    help="read a run already finished in --out (its summary.json) instead of training it again")
    ap.add_argument("--reprobe", action="store_true",
                    help="with --reuse: probe the reused runs' encoders again with the current probe code")
    ap.add_argument("overrides", nargs="*", help="recipe overrides added to the configuration's")
    args = ap.parse_args(argv)
    import torch

    from polyjepa.results import save_result
    from polyjepa.runner import pretrain

    torch.set_num_threads(args.threads)
    base, default_name = CONFIGS[args.config]
    name = args.name or default_name
    over = base + list(args.overrides)
    out = Path(args.out or tempfile.mkdtemp(prefix="precision-"))
    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = ["32-true", "bf16-mixed"]
    started = time.perf_counter()
    res: dict[tuple[int, str], dict] = {}
    for seed in seeds:
        for p in precisions:
            run = out / f"{p}-seed{seed}"
            if args.reuse and (run / "summary.json").exists():
                import json

                s = json.loads((run / "summary.json").read_text())
                s["cpu_seconds"] = json.loads((run / "job_cpu.json").read_text())["cpu_seconds"] \
                    if (run / "job_cpu.json").exists() else float("nan")
                if args.reprobe:
                    from polyjepa.runner import probe_run

                    s["probe_when_trained"] = s["probe"]
                    s["probe"] = probe_run(str(run), echo=lambda *a, **k: None)["probe"]
            else:
                cpu = time.process_time()
                s = pretrain(args.recipe, out=str(run), seed=seed, progress=False, echo=lambda *a, **k: None,
                             overrides=over + [f"train.precision={p}", f"train.threads={args.threads}",
                                               "eval.baselines=false"])
                s["cpu_seconds"] = time.process_time() - cpu
                (run / "job_cpu.json").write_text(f'{{"cpu_seconds": {s["cpu_seconds"]}}}')
            res[seed, p] = s
            if seed == seeds[0] and p == precisions[0]:
                model = built(out / f"{p}-seed{seed}")
                print(f"built: {model}", flush=True)
            print(f"seed {seed} {p}: linear {s['probe']['linear']['accuracy']:.4f} kNN "
                  f"{s['probe']['knn']['accuracy']:.4f}; {s['samples_per_second']:.1f} samples/s (wall), "
                  f"{s['cpu_seconds']:.0f} CPU s for the job", flush=True)

    def whole(v: float):    # a reused run without its CPU time has NaN there
        return None if v != v else round(v)

    cols = ["seed", "precision", "linear", "kNN", "training samples/s (wall)", "training s (wall)", "job CPU s"]
    rows = [[seed, p, res[seed, p]["probe"]["linear"]["accuracy"], res[seed, p]["probe"]["knn"]["accuracy"],
             round(res[seed, p]["samples_per_second"], 1), round(res[seed, p]["train_seconds"]),
             whole(res[seed, p]["cpu_seconds"])]
            for seed in seeds for p in precisions]
    diff_lin = [res[s, "bf16-mixed"]["probe"]["linear"]["accuracy"] - res[s, "32-true"]["probe"]["linear"]["accuracy"]
                for s in seeds]
    diff_knn = [res[s, "bf16-mixed"]["probe"]["knn"]["accuracy"] - res[s, "32-true"]["probe"]["knn"]["accuracy"]
                for s in seeds]

    def spread(p, key):
        v = [res[s, p]["probe"][key]["accuracy"] for s in seeds]
        return statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0

    speed = {p: statistics.median(res[s, p]["samples_per_second"] for s in seeds) for p in precisions}
    train_s = {p: sum(res[s, p]["train_seconds"] for s in seeds) for p in precisions}
    cpu_s = {p: sum(res[s, p]["cpu_seconds"] for s in seeds) for p in precisions}
    def when(seed, p):    # the linear probe each run ran at the end of its training
        return res[seed, p]["probe_when_trained"]["linear"]["accuracy"]

    lin32, lin16 = spread("32-true", "linear"), spread("bf16-mixed", "linear")
    knn32, knn16 = spread("32-true", "knn"), spread("bf16-mixed", "knn")
    s0 = res[seeds[0], precisions[0]]
    notes = [
        f"built: {model}",
        f"linear: fp32 {lin32[0]:.4f} +- {lin32[1]:.4f}, bf16 {lin16[0]:.4f} +- {lin16[1]:.4f} (mean +- sd over "
        f"{len(seeds)} seeds); bf16 - fp32 per seed: {', '.join(f'{d:+.4f}' for d in diff_lin)} "
        f"(mean {statistics.mean(diff_lin):+.4f})",
        f"kNN: fp32 {knn32[0]:.4f} +- {knn32[1]:.4f}, bf16 {knn16[0]:.4f} +- {knn16[1]:.4f}; bf16 - fp32 per seed: "
        f"{', '.join(f'{d:+.4f}' for d in diff_knn)} (mean {statistics.mean(diff_knn):+.4f})",
        f"training speed (median over seeds, wall time, precisions alternating): fp32 {speed['32-true']:.1f}, "
        f"bf16 {speed['bf16-mixed']:.1f} samples/s ({speed['bf16-mixed'] / speed['32-true']:.2f}x)",
        f"training time, all seeds: fp32 {train_s['32-true']:.0f} s, bf16 {train_s['bf16-mixed']:.0f} s wall "
        f"(bf16/fp32 {train_s['bf16-mixed'] / train_s['32-true']:.2f}); whole jobs incl. fp32 evaluation "
        f"{cpu_s['32-true']:.0f} / {cpu_s['bf16-mixed']:.0f} CPU s "
        f"(bf16/fp32 {cpu_s['bf16-mixed'] / cpu_s['32-true']:.2f})",
        *([f"probes recomputed after training with the current probe code (--reprobe); the probe the runs "
             f"ran at the end of training gave linear bf16 - fp32 per seed " + ", ".join(
                 f"{when(s, 'bf16-mixed') - when(s, '32-true'):+.4f}" for s in seeds)] if args.reprobe else []),
        f"{args.recipe} {' '.join(over)}: {s0['steps']} steps, {s0['n_train']} train / {s0['n_test']} test; "
        f"{args.threads} thread(s)",
    ]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) and i in (2, 3) else str(v)
                                for i, v in enumerate(r)) + " |")
    print("\n" + "\n".join(notes))
    path = save_result(name, title=f"bf16 autocast vs fp32: {args.recipe} ({' '.join(over)})",
                       columns=cols, rows=rows, seconds=time.perf_counter() - started, notes=notes,
                       extra={"recipe": args.recipe, "overrides": over, "threads": args.threads,
                              "config": args.config, "built": model, "diff_linear": diff_lin,
                              "diff_knn": diff_knn, "samples_per_second": speed, "train_seconds": train_s,
                              "job_cpu_seconds": cpu_s})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
