"""ECG beats (MIT-BIH record 100) and EEG epochs (PhysioNet motor imagery, subject 1): embedder vs baselines.

    python benchmarks/timeseries_biosignals.py [--data-dir ../shared/data] [--tasks ecg,eeg] [--recipe R] [--seed 0]

ECG: 256-sample windows around every annotated beat of record 100 (2 leads, 360 Hz), normal (N)
vs any other beat (2,237 vs 34: very unbalanced, so balanced accuracy is the measure). EEG: 4-s
epochs from each T0/T1/T2 onset of runs 3-14 (64 channels, 160 Hz), rest (T0) vs movement (T1/T2),
180 vs 180. One fixed stratified split (70/30, seed 0) of the windows; the embedder (recipe
``ecgjepa`` / ``eegjepa``, or ``--recipe`` for both) is fitted on the training windows without labels; the same
logistic-regression probe (standardised features, class-balanced, C by 5-fold CV) runs on its
embeddings, on a random-init encoder of the same architecture, and on the raw windows. Windows of one
recording share a patient and a session, so these numbers say little about other patients.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def probe(train_f, train_y, test_f, test_y, seed: int = 0) -> dict:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.001, 0.01, 0.1, 1, 10], cv=5, max_iter=500,
                                                                 class_weight="balanced", scoring="balanced_accuracy"))
    pred = model.fit(train_f, train_y).predict(test_f)
    return {"balanced_accuracy": float(balanced_accuracy_score(test_y, pred)), "accuracy": float((pred == test_y).mean())}


def run(task: str, data_dir: Path, seed: int, recipe: str | None = None) -> dict:
    from sklearn.model_selection import train_test_split

    from polyjepa import TimeSeriesEmbedder

    if task == "ecg":
        from polyjepa.timeseries.wfdb import load_wfdb_beats

        d, recipe = load_wfdb_beats(str(data_dir / "mitbih" / "100"), window=256), recipe or "ecgjepa"
    else:
        from polyjepa.timeseries.edf import load_edf_epochs

        d, recipe = load_edf_epochs(str(data_dir / "eegmmidb_S001"), seconds=4.0), recipe or "eegjepa"
    xtr, xte, ytr, yte = train_test_split(d.x, d.y, test_size=0.3, random_state=seed, stratify=d.y)
    out = {"n_train": len(xtr), "n_test": len(xte), "shape": list(d.x.shape[1:])}
    for name in ("ours", "random", "raw"):
        t0 = time.perf_counter()
        if name == "raw":
            ftr, fte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
        else:
            emb = TimeSeriesEmbedder(recipe, max_steps=0 if name == "random" else None, random_state=seed, threads=1).fit(xtr)
            ftr, fte = emb.transform(xtr), emb.transform(xte)
        out[name] = {**probe(ftr, ytr, fte, yte, seed), "seconds": time.perf_counter() - t0}
        print(f"  {task} {name:<7} {out[name]}", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--tasks", default="ecg,eeg")
    ap.add_argument("--recipe", default=None, help="one recipe for every task (default: ecgjepa, eegjepa)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import warnings

    import torch

    warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's LogisticRegressionCV transition notices
    torch.set_num_threads(1)
    rows = ["| task | train/test | embedder (bal. acc / acc) | random init | raw windows | seconds (ours) |",
            "|---|---|---:|---:|---:|---:|"]
    for task in args.tasks.split(","):
        r = run(task, Path(args.data_dir), args.seed, args.recipe)
        cell = lambda m: f"{r[m]['balanced_accuracy']:.3f} / {r[m]['accuracy']:.3f}"  # noqa: E731
        rows.append(f"| {task} | {r['n_train']}/{r['n_test']} | {cell('ours')} | {cell('random')} | {cell('raw')} | "
                    f"{r['ours']['seconds']:.0f} |")
    print("\n".join(rows))
    from polyjepa.results import parse_markdown_table, save_result

    columns, table = parse_markdown_table("\n".join(rows))
    save_result("timeseries-biosignals" + (f"-{args.recipe}" if args.recipe else ""),
                title="Biosignals: ECG beats and EEG epochs, balanced accuracy / accuracy",
                columns=columns, rows=table,
                notes=[f"one stratified 70/30 split of the windows, seed {args.seed}; class-balanced logistic "
                       f"regression, C by 5-fold CV; one thread"],
                extra={"recipe": args.recipe, "seed": args.seed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
