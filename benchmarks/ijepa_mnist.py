"""I-JEPA on MNIST within a CPU time budget: probe the pretrained encoder against a random init and raw pixels.

    python benchmarks/ijepa_mnist.py [DATA.npz] [--minutes 15] [--out DIR] [--seed 0] [key=value ...]

Pretrains the bundled ``ijepa-mnist`` recipe (its defaults, plus any ``section.key=value`` overrides)
on the MNIST file (default ../shared/data/mnist_t10k.npz: 10k 28x28 test images, stratified
8,000 / 2,000 split) within a training budget of ``--minutes`` (the recipe's 8 epochs normally end
first: longer training lowered probe accuracy), then prints a markdown table: linear- and
kNN-probe accuracy of the JEPA encoder, of a random-init encoder of the same architecture and of
the raw pixels (same split, same probes, same readout), RankMe, training samples/s and minutes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help=f"MNIST .npz with images/labels (default {DEFAULT_DATA})")
    ap.add_argument("--minutes", type=float, default=15.0, help="training time budget in minutes, a cap on the recipe's epochs (default 15)")
    ap.add_argument("--out", default=None, help="run directory (default: a new temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_args(argv)

    # A positional that looks like an override is not the data path.
    if "=" in args.data:
        args.overrides.insert(0, args.data)
        args.data = DEFAULT_DATA
    if not Path(args.data).is_file():
        sys.exit(f"error: MNIST file {args.data} not found: pass the path of an .npz with 'images' (N, 28, 28) "
                 f"and 'labels', e.g. python benchmarks/ijepa_mnist.py ../shared/data/mnist_t10k.npz")

    from polyjepa.runner import pretrain

    out = args.out or tempfile.mkdtemp(prefix="ijepa-mnist-")
    s = pretrain("ijepa-mnist", data=args.data, out=out, max_minutes=args.minutes, seed=args.seed,
                 overrides=args.overrides, progress=False, echo=lambda *a, **k: None)

    b = s["baselines"]
    rows = [("I-JEPA encoder", s["probe"], s["rankme"]),
            ("random-init encoder", b["random_init"], b["random_init"].get("rankme")),
            ("raw pixels", b["raw"], b["raw"].get("rankme"))]
    emb = s["embedding"]
    print(f"\nI-JEPA MNIST benchmark: {s['n_train']} train / {s['n_test']} test, readout {emb['encoder']} encoder, "
          f"pool={emb['pool']}, layers={emb['layers']} (dim {emb['dim']}); seed {s['seed']}; run in {out}\n")
    print("| representation | linear | kNN | RankMe |")
    print("|---|---:|---:|---:|")
    for name, p, rk in rows:
        rk_s = "-" if rk is None else f"{rk:.1f}"
        print(f"| {name} | {p['linear']['accuracy']:.4f} | {p['knn']['accuracy']:.4f} | {rk_s} |")
    print(f"\ntraining: {s['steps']} steps, {s['samples_per_second']:.0f} samples/s, "
          f"{s['train_seconds'] / 60:.1f} min (whole run incl. evaluation {s['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
