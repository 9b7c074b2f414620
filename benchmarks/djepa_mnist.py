"""D-JEPA (flow-matching head) against a masked autoencoder's pixel head on MNIST: sample quality scored by
a classifier trained on real MNIST, at equal CPU time.

    python benchmarks/djepa_mnist.py [DATA.npz] [--minutes 6] [--methods djepa,djepa-nojepa,mae] [--jobs 3]
        [--samples 1000] [--threads 1] [--seed 0] [--no-save] [--set METHOD:key=value ...]

Each method pretrains the bundled recipe djepa-mnist (with its overrides) on the stratified 8,000 / 2,000
split of the MNIST file (default ../shared/data/mnist_t10k.npz) for ``--minutes`` of training; each run's
report shows 100 generated digits. Then a small CNN is trained on the 8,000 real training digits (with
labels) and scores ``--samples`` generated digits of every method, and as references the same number of
real training digits and of uniform noise images: mean class confidence (max softmax), class coverage
(classes predicted for at least 1 % of the samples) and the normalised entropy of the predicted classes,
and the Frechet distance between the samples' and the 2,000 real test digits' features in the classifier's
penultimate layer (128-d). The encoder probes (linear, kNN vs random init and raw pixels) come from each
run. Writes results/djepa_mnist.json and docs/img/djepa_mnist_<method>.png.

Methods: djepa (flow head + JEPA term), djepa-nojepa (flow head alone), mae (pixel head: a masked
autoencoder, mean prediction, no JEPA term).
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from _args import data_file, methods_and_sets
from _runs import pretrain_for_minutes, print_table

DEFAULT_DATA = "../shared/data/mnist_t10k.npz"
ROOT = Path(__file__).resolve().parents[1]
METHODS = {  # name -> (recipe, overrides)
    "djepa": ("djepa-mnist", []),
    "djepa-nojepa": ("djepa-mnist", ["method.jepa_weight=0"]),
    "mae": ("djepa-mnist", ["method.head=pixel", "method.jepa_weight=0"]),
}


def describe(m) -> str:
    """The configuration of a built D-JEPA, read from its modules."""
    e, tok = m.backbone.encoder, m.backbone.tokenizer
    n = lambda mod: sum(p.numel() for p in mod.parameters()) / 1e3  # noqa: E731
    head = (f"flow MLP {m.head.width}x{len(m.head.blocks)}, {m.head_repeats} draws/token" if m.head_kind == "flow"
            else f"linear pixel head {m.head.in_features}->{m.head.out_features}")
    return (f"ViT {e.dim}x{e.depth}, patch {tok.patch_size}, grid {tok.grid[0]}x{tok.grid[1]} ({n(m.backbone):.0f}k); "
            f"decoder {m.embed_dec.out_features}x{len(m.blocks)} + {m.buffer.shape[1]} buffer tokens; {head}; "
            f"JEPA weight {m.jepa_weight:g}; mask ratio N({m.mask_ratio[0]:g}, {m.mask_ratio[1]:g}) in "
            f"[{m.mask_ratio[2]:g}, {m.mask_ratio[3]:g}]")


def run_method(name: str, data: str, minutes: float, threads: int, seed: int, extra: list[str],
               samples: int) -> dict:
    import torch

    from polyjepa.runner import prepare_run_data
    from polyjepa.vision.djepa import to_pixels

    recipe, over = METHODS[name]
    s, run_dir, cfg, info, method = pretrain_for_minutes(name, recipe, [*over, *extra], data, minutes, threads, seed)
    prep = prepare_run_data(cfg, info)
    t0 = time.time()
    x = method.sample(samples, generator=torch.Generator().manual_seed(seed + 1))
    return {"name": name, "summary": s, "config": describe(method), "run": str(run_dir),
            "samples": to_pixels(x, prep.mean, prep.std).numpy(), "sample_seconds": time.time() - t0}


def train_classifier(x, y, seed: int, epochs: int = 3):
    """A small CNN on real digits (pixels in [0, 1]); returns it in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def classify(net, x):
    """(probabilities (n, 10), penultimate features (n, 128)) of images x (n, 1, 28, 28) in [0, 1]."""
    import torch

    with torch.no_grad():
        f = net[:-1](torch.as_tensor(x, dtype=torch.float32))
        return torch.softmax(net[-1](f), 1).numpy(), f.numpy()


def frechet_distance(a, b) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (n, F) and b (m, F)."""
    import numpy as np
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(ca @ cb)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * root))


def quality(net, x, ref_features) -> dict:
    import numpy as np

    p, f = classify(net, x)
    share = np.bincount(p.argmax(1), minlength=10) / len(p)
    nz = share[share > 0]
    return {"confidence": float(p.max(1).mean()), "coverage": int((share >= 0.01).sum()),
            "class_entropy": float(-(nz * np.log(nz)).sum() / np.log(10)),
            "fd": frechet_distance(f, ref_features)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help=f"MNIST .npz (default {DEFAULT_DATA})")
    ap.add_argument("--minutes", type=float, default=6.0, help="training minutes per method (default 6)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    ap.add_argument("--jobs", type=int, default=1, help="methods trained at once, one process each (default 1)")
    ap.add_argument("--samples", type=int, default=1000, help="generated digits scored per method (default 1000)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per method (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true", help="print the table only, do not write results/ or docs/img")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                    help="an extra override for one method, e.g. djepa:train.lr=2e-3 (repeatable)")
    ap.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_intermixed_args(argv)
    data_file(args, DEFAULT_DATA, "MNIST file", "the path of an .npz with 'images' and 'labels', e.g. "
              "python benchmarks/djepa_mnist.py ../shared/data/mnist_t10k.npz")
    names, extra = methods_and_sets(args, METHODS)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    jobs = [(n, args.data, args.minutes, args.threads, args.seed, extra[n], args.samples) for n in names]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(run_method, *zip(*jobs)))
    else:
        results = [run_method(*j) for j in jobs]

    # the classifier sees the same split as the runs, in pixel units
    from polyjepa.runner import open_run, prepare_run_data
    from polyjepa.vision.djepa import save_grid, to_pixels

    _, cfg, info = open_run(results[0]["run"])
    prep = prepare_run_data(cfg, info)
    px = lambda a: to_pixels(torch.from_numpy(a), prep.mean, prep.std).numpy()  # noqa: E731
    x_train, x_test = px(prep.x_train), px(prep.x_test)
    t_clf = time.time()
    net = train_classifier(x_train, prep.y_train, args.seed)
    p_test, ref = classify(net, x_test)
    clf_acc = float((p_test.argmax(1) == prep.y_test).mean())
    t_clf = time.time() - t_clf
    rng = np.random.default_rng(args.seed)
    n = args.samples
    references = {"real digits (train split)": x_train[rng.choice(len(x_train), n, replace=False)],
                  "uniform noise": rng.random((n, 1, 28, 28), dtype=np.float32)}

    columns = ["samples", "class confidence", "classes covered (>= 1 %)", "class entropy", "FD (classifier features)",
               "linear", "kNN", "random-init linear", "raw linear", "train min", "steps", "configuration"]
    rows = []
    for label, x in references.items():
        q = quality(net, x, ref)
        rows.append([label, round(q["confidence"], 4), q["coverage"], round(q["class_entropy"], 4), round(q["fd"], 2),
                     "", "", "", "", "", "", ""])
    for r in results:
        s, b = r["summary"], r["summary"]["baselines"]
        q = quality(net, r["samples"], ref)
        changes = METHODS[r["name"]][1] + extra[r["name"]]
        rows.append([r["name"] + (" (" + ", ".join(changes) + ")" if changes else ""), round(q["confidence"], 4),
                     q["coverage"], round(q["class_entropy"], 4), round(q["fd"], 2),
                     round(s["probe"]["linear"]["accuracy"], 4), round(s["probe"]["knn"]["accuracy"], 4),
                     round(b["random_init"]["linear"]["accuracy"], 4), round(b["raw"]["linear"]["accuracy"], 4),
                     round(s["train_seconds"] / 60, 2), s["steps"], r["config"]])
        if not args.no_save:
            save_grid(torch.from_numpy(r["samples"][:100]), ROOT / "docs" / "img" / f"djepa_mnist_{r['name']}.png")
    head = (f"MNIST {len(x_train):,} / {len(x_test):,} (stratified, seed {info['seed']}); {args.minutes:g} min of "
            f"training per method at {args.threads} thread(s), {args.jobs} method(s) at a time; {n} samples per row "
            f"(8 unmasking rounds, 20 Euler steps per flow sample); scoring classifier: a 2-conv CNN trained 3 epochs "
            f"on the {len(x_train):,} real training digits, test accuracy {clf_acc:.4f} ({t_clf:.0f} s); FD against "
            f"its features of the {len(x_test):,} real test digits")
    print_table(head, columns, rows)
    print(f"\nwhole benchmark: {(time.time() - t0) / 60:.1f} min")
    if not args.no_save:
        from polyjepa.results import save_result

        save_result("djepa_mnist", title="D-JEPA sample quality on MNIST against a masked autoencoder at equal CPU time",
                    columns=columns, rows=rows, seconds=time.time() - t0, notes=[head],
                    extra={"runs": {r["name"]: r["run"] for r in results}, "classifier_accuracy": clf_acc,
                           "sample_seconds": {r["name"]: r["sample_seconds"] for r in results}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
