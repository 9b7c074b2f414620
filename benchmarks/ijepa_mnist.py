"""I-JEPA on MNIST within a CPU time budget: probe the pretrained encoder against a random init and raw pixels.

    python benchmarks/ijepa_mnist.py [DATA.npz] [--recipe cjepa-mnist] [--minutes 15] [--out DIR] [--seed 0] [key=value ...]

Pretrains the bundled ``cjepa-mnist`` recipe (I-JEPA plus a three-view invariance term and a
convolutional stem; the one that reaches the issue's 98%), or ``--recipe ijepa-mnist`` (I-JEPA
alone), with its defaults plus any ``section.key=value`` overrides,
on the MNIST file (default ../shared/data/mnist_t10k.npz: 10k 28x28 test images, stratified
8,000 / 2,000 split) within a training budget of ``--minutes`` (the recipe's 8 epochs normally end
first), then prints a markdown table: linear- and
kNN-probe accuracy of the JEPA encoder, of a random-init encoder of the same architecture and of
the raw pixels (same split, same probes, same readout), RankMe, training samples/s and minutes.
With ``--supervised`` it adds the same encoder trained with the labels for ``--minutes`` (a ceiling).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _args import data_file

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help=f"MNIST .npz with images/labels (default {DEFAULT_DATA})")
    ap.add_argument("--minutes", type=float, default=15.0, help="training time budget in minutes, a cap on the recipe's epochs (default 15)")
    ap.add_argument("--out", default=None, help="run directory (default: a new temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="cjepa-mnist", help="cjepa-mnist (default) or ijepa-mnist, or a recipe path")
    ap.add_argument("--supervised", action="store_true",
                    help="also train the same encoder from its random init with labels (linear head on mean-pooled "
                         "tokens, cross-entropy) for --minutes: what the architecture reaches with labels in the budget")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_intermixed_args(argv)

    data_file(args, DEFAULT_DATA, "MNIST file", "the path of an .npz with 'images' (N, 28, 28) and 'labels', "
              "e.g. python benchmarks/ijepa_mnist.py ../shared/data/mnist_t10k.npz")

    from polyjepa.runner import pretrain

    out = args.out or tempfile.mkdtemp(prefix=f"{Path(args.recipe).stem}-")
    s = pretrain(args.recipe, data=args.data, out=out, max_minutes=args.minutes, seed=args.seed,
                 overrides=args.overrides, progress=False, echo=lambda *a, **k: None)

    b = s["baselines"]
    rows = [(f"{s['recipe']} encoder", s["probe"], s["rankme"]),
            ("random-init encoder", b["random_init"], b["random_init"].get("rankme")),
            ("raw pixels", b["raw"], b["raw"].get("rankme"))]
    if args.supervised:
        rows.append((f"supervised, same encoder, {args.minutes:g} min", supervised_row(out, s, args.minutes), None))
    emb = s["embedding"]
    print(f"\n{s['recipe']} MNIST benchmark: {s['n_train']} train / {s['n_test']} test, readout {emb['encoder']} encoder, "
          f"pool={emb['pool']}, layers={emb['layers']} (dim {emb['dim']}); seed {s['seed']}; run in {out}\n")
    print("| representation | linear | kNN | RankMe |")
    print("|---|---:|---:|---:|")
    table = []
    for name, p, rk in rows:
        rk_s = "-" if rk is None else f"{rk:.1f}"
        knn = p.get("knn", {}).get("accuracy")
        print(f"| {name} | {p['linear']['accuracy']:.4f} | {'-' if knn is None else f'{knn:.4f}'} | {rk_s} |")
        table.append([name, round(p["linear"]["accuracy"], 4), None if knn is None else round(knn, 4),
                      None if rk is None else round(rk, 1)])
    timing = (f"{s['steps']} steps, {s['samples_per_second']:.0f} samples/s, {s['train_seconds'] / 60:.1f} min of "
              f"training (whole run incl. evaluation {s['seconds'] / 60:.1f} min)")
    print(f"\ntraining: {timing}")
    from polyjepa.results import save_result

    stem = Path(args.recipe).stem
    save_result("ijepa-mnist" if stem == "cjepa-mnist" else f"ijepa-mnist-{stem}",
                title=f"{s['recipe']} on MNIST ({s['n_train']:,} / {s['n_test']:,}, readout {emb['pool']})",
                columns=["representation", "linear", "kNN", "RankMe"], rows=table, seconds=s["seconds"],
                notes=[f"training: {timing}; seed {s['seed']}"],
                extra={"recipe": s["recipe"], "embedding": emb, "seed": s["seed"]})
    return 0


def supervised_row(out: str, s: dict, minutes: float) -> dict:
    """Test accuracy of the run's architecture trained from its random init with labels for ``minutes``."""
    from polyjepa.eval.supervised import supervised_reference
    from polyjepa.runner import build_random, open_run, prepare_run_data

    _, cfg, info = open_run(out)
    data = prepare_run_data(cfg, info)
    r = supervised_reference(build_random(cfg, info), data.x_train, data.y_train, data.x_test, data.y_test,
                             epochs=1000, max_minutes=minutes, batch_size=cfg.train.batch_size, lr=cfg.train.lr,
                             seed=s["seed"])
    print(f"supervised reference: {r['steps']} steps in {r['seconds'] / 60:.1f} min, test accuracy {r['accuracy']:.4f}")
    return {"linear": {"accuracy": r["accuracy"]}}


if __name__ == "__main__":
    sys.exit(main())
