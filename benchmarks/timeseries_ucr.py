"""TimeSeriesEmbedder on UCR/UEA sets with the TS2Vec protocol, next to ROCKET, raw series and a random init.

    python benchmarks/timeseries_ucr.py [--sets GunPoint,ArrowHead,...] [--methods ours,random,raw,rocket]
                                        [--max-steps N] [--patch-size P] [--pool POOL] [--seed 0]
                                        [--json OUT.json] [key=value ...]

For every set (aeon's bundled copy, official train/test split): the embedder is fitted on the
training series without labels, both splits are embedded, and an RBF SVM is trained on the
training embeddings and scored on the test split, as TS2Vec evaluates (C by 5-fold grid search
over 1e-4..1e4 and inf, or C=inf when a class has fewer than 5 training series or there are fewer
than 50). The same SVM runs on the raw series (NaN padding read as 0) and on a random-init encoder
of the same architecture (fit with 0 steps). ROCKET is aeon's RocketClassifier (10,000 kernels,
ridge with built-in CV). Prints a markdown table of test accuracy per set, the mean, and the
seconds each method took (fit + embed + classifier). Uses one torch thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

SETS = ["GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf", "ACSF1", "BasicMotions", "JapaneseVowels"]
PUBLISHED = {  # ../shared/data/README.md: ROCKET / TS2Vec
    "GunPoint": (1.000, 0.987), "ArrowHead": (0.814, 0.817), "ItalyPowerDemand": (0.970, 0.960),
    "OSULeaf": (0.941, 0.843), "ACSF1": (0.886, 0.910)}


def svm_accuracy(train_f, train_y, test_f, test_y, seed: int = 0) -> float:
    """TS2Vec's classification protocol (their ``fit_svm``): RBF SVM, C by grid search."""
    import numpy as np
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    n_classes = len(np.unique(train_y))
    svm = SVC(C=np.inf, gamma="scale")
    if len(train_y) // n_classes < 5 or len(train_y) < 50:
        model = svm.fit(train_f, train_y)
    else:
        grid = {"C": [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf]}
        model = GridSearchCV(svm, grid, cv=5, n_jobs=1).fit(train_f, train_y).best_estimator_
    return float(model.score(test_f, test_y))


def run_set(name: str, methods: list[str], embedder_kw: dict, seed: int) -> dict:
    import numpy as np

    from polyjepa import TimeSeriesEmbedder
    from polyjepa.timeseries.data import load_series

    d = load_series(name)
    out = {"n_train": len(d.x), "n_test": len(d.x_test), "shape": list(d.x.shape[1:])}
    for m in methods:
        t0 = time.perf_counter()
        if m == "rocket":
            from aeon.classification.convolution_based import RocketClassifier

            xtr, xte = np.nan_to_num(d.x), np.nan_to_num(d.x_test)
            acc = float(RocketClassifier(n_kernels=10000, random_state=seed, n_jobs=1).fit(xtr, d.y).score(xte, d.y_test))
        elif m == "raw":
            xtr, xte = (np.nan_to_num(a.reshape(len(a), -1)) for a in (d.x, d.x_test))
            acc = svm_accuracy(xtr, d.y, xte, d.y_test, seed)
        else:
            kw = dict(embedder_kw, random_state=seed, threads=1)
            if m == "random":
                kw["max_steps"] = 0
            emb = TimeSeriesEmbedder(**kw).fit(d.x)
            acc = svm_accuracy(emb.transform(d.x), d.y, emb.transform(d.x_test), d.y_test, seed)
            if m == "ours":
                out["dim"] = int(emb.transform(d.x[:1]).shape[1])
        out[m] = {"accuracy": acc, "seconds": time.perf_counter() - t0}
        print(f"  {name:<18} {m:<7} {acc:.4f}  {out[m]['seconds']:.1f}s", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--methods", default="ours,random,raw,rocket")
    ap.add_argument("--max-steps", type=int, default=None, help="embedder training steps (default: the recipe's)")
    ap.add_argument("--patch-size", type=int, default=None)
    ap.add_argument("--pool", default=None)
    ap.add_argument("--recipe", default="tsvicreg", help="the embedder's recipe (default: TimeSeriesEmbedder's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, section.key=value")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    methods = args.methods.split(",")
    kw = {"recipe": args.recipe, "max_steps": args.max_steps, "patch_size": args.patch_size, "pool": args.pool,
          "overrides": tuple(args.overrides)}
    results = {name: run_set(name, methods, kw, args.seed) for name in args.sets.split(",")}

    names = {"ours": "TimeSeriesEmbedder", "random": "random init", "raw": "raw + SVM", "rocket": "ROCKET (aeon)"}
    lines = ["| data set | train/test | " + " | ".join(names[m] for m in methods) + " | published ROCKET / TS2Vec |",
             "|---|---|" + "---:|" * len(methods) + "---|"]
    for name, r in results.items():
        pub = PUBLISHED.get(name)
        lines.append(f"| {name} | {r['n_train']}/{r['n_test']} | " + " | ".join(f"{r[m]['accuracy']:.3f}" for m in methods)
                     + f" | {f'{pub[0]:.3f} / {pub[1]:.3f}' if pub else '-'} |")
    for label, subset in (("mean (all)", list(results)), ("mean (5 UCR)", [s for s in results if s in PUBLISHED])):
        if subset:
            means = [sum(results[s][m]["accuracy"] for s in subset) / len(subset) for m in methods]
            pub = (f"{sum(PUBLISHED[s][0] for s in subset) / len(subset):.3f} / "
                   f"{sum(PUBLISHED[s][1] for s in subset) / len(subset):.3f}") if all(s in PUBLISHED for s in subset) else "-"
            lines.append(f"| **{label}** | | " + " | ".join(f"**{v:.3f}**" for v in means) + f" | {pub} |")
    secs = [sum(r[m]["seconds"] for r in results.values()) for m in methods]
    lines.append("| seconds (all sets) | | " + " | ".join(f"{s:.0f}" for s in secs) + " | |")
    print("\n".join(lines))
    from polyjepa.results import parse_markdown_table, save_result

    columns, rows = parse_markdown_table("\n".join(lines))
    save_result("timeseries-ucr" + ("" if args.recipe == "tsvicreg" else f"-{args.recipe}"),
                title=f"UCR/UEA sets with the TS2Vec protocol, TimeSeriesEmbedder({args.recipe!r})",
                columns=columns, rows=rows, seconds=sum(secs),
                notes=[f"RBF SVM with C by grid search; official splits; seed {args.seed}; one thread"],
                extra={"recipe": args.recipe, "seed": args.seed})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
