"""T-JEPA embeddings of tables against raw features and gradient boosting, on the same splits.

For each table: (a) logistic/ridge and MLP on raw features (standardised numbers + one-hot categories,
NaN imputed), (b) the same on T-JEPA embeddings (``TabularEmbedder``, fitted on the training rows
only, no labels), (c) the same on raw + embeddings, (d) HistGradientBoosting on raw features (native
categories), plus (b) on a random-init encoder (0 training steps) as the embedding baseline.
Classification reports accuracy, regression RMSE.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tabular_tjepa.py \\
        --adult ../shared/data/pmlb_adult.tsv.gz --houses ../shared/data/pmlb_537_houses.tsv.gz \\
        --bundled breast_cancer,wine
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def raw_features(x: np.ndarray, schema: dict) -> np.ndarray:
    """Standardised numbers (NaN -> 0, plus a missing indicator where any) and one-hot categories."""
    cols = []
    for j, kind in enumerate(schema["kinds"]):
        v = x[:, j]
        if kind == "num":
            cols.append(np.nan_to_num(v)[:, None])
            if np.isnan(v).any():
                cols.append(np.isnan(v)[:, None].astype(np.float32))
        else:
            k = len(schema["categories"][j]) + 1
            codes = np.where(np.isnan(v), k, np.nan_to_num(v)).astype(int)
            cols.append(np.eye(k + 1, dtype=np.float32)[codes])
    return np.concatenate(cols, axis=1).astype(np.float32)


def models(task: str, seed: int, mlp_lr: float = 1e-3):
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = dict(hidden_layer_sizes=(256, 256), early_stopping=True, max_iter=200, n_iter_no_change=10,
               alpha=1e-4, learning_rate_init=mlp_lr, random_state=seed)
    if task == "classification":
        return {"linear": make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=6, max_iter=500)),
                "mlp": make_pipeline(StandardScaler(), MLPClassifier(**mlp))}
    return {"linear": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 7))),
            "mlp": make_pipeline(StandardScaler(), MLPRegressor(**mlp))}


def score(model, task, x_tr, y_tr, x_te, y_te) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x_tr, y_tr)
    pred = model.predict(x_te)
    if task == "classification":
        return float((pred == y_te).mean())
    return float(np.sqrt(np.mean((pred - y_te) ** 2)))


def mlp_scores(task, x_tr, y_tr, x_te, y_te, args) -> tuple[float, list[float]]:
    """The MLP's test scores over seeds seed .. seed + probe_seeds - 1, at the Adam learning rate (of
    ``args.mlp_lr``) whose mean score on the MLP's own early-stopping split (10 % of the training rows)
    is best: the test rows choose nothing. A seed moves the MLP by a few tenths of a point."""
    best = None
    for lr in args.mlp_lr:
        fits = []
        for s in range(args.seed, args.seed + args.probe_seeds):
            model = models(task, s, lr)["mlp"]
            fits.append((score(model, task, x_tr, y_tr, x_te, y_te), model[-1].best_validation_score_))
        val = float(np.mean([v for _, v in fits]))
        if best is None or val > best[0]:
            best = (val, lr, [t for t, _ in fits])
    return best[1], best[2]


def load(name: str, path: str | None, seed: int, subsample: int | None):
    """(x_tr, y_tr, x_te, y_te, schema, task) with the table's official or a fixed split."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from polyjepa.tabular.loader import load_table, read_table

    if name == "adult":
        d = load_table(path, target="target", train_rows=32561)
        x_tr, y_tr, x_te, y_te, task = d.x, d.y, d.x_test, d.y_test, "classification"
    else:
        frame = read_table(path if path else name)
        y = frame.pop("target")
        task = "regression" if name in ("houses", "diabetes") else "classification"
        if name == "houses":
            y = y / 1e5
        d = load_table(frame, target=None)  # schema from all rows' columns; statistics refit below
        idx_tr, idx_te = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=seed,
                                          stratify=y if task == "classification" else None)
        d = load_table(frame.iloc[idx_tr], target=None)
        from polyjepa.tabular.schema import encode

        x_tr, x_te = d.x, encode(frame.iloc[idx_te], d.meta)
        y_arr = y.to_numpy() if task == "regression" else pd.factorize(y, sort=True)[0]
        y_tr, y_te = y_arr[idx_tr], y_arr[idx_te]
    if subsample and subsample < len(x_tr):
        keep = np.random.default_rng(seed).choice(len(x_tr), subsample, replace=False)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
        keep_te = np.random.default_rng(seed + 1).choice(len(x_te), min(len(x_te), subsample), replace=False)
        x_te, y_te = x_te[keep_te], y_te[keep_te]
    return x_tr, y_tr, x_te, y_te, d.meta, task


def embedder_frame(x: np.ndarray, schema: dict):
    """The encoded array as a DataFrame the embedder re-reads with the same kinds (codes for categories)."""
    import pandas as pd

    cols = {}
    for j, (name, kind) in enumerate(zip(schema["columns"], schema["kinds"])):
        cols[name] = pd.Series(x[:, j]).astype("Int64").astype("category") if kind == "cat" else x[:, j]
    return pd.DataFrame(cols)


def run_table(name, path, args) -> dict:
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from polyjepa import TabularEmbedder

    torch.set_num_threads(args.threads)
    t0 = time.time()
    x_tr, y_tr, x_te, y_te, schema, task = load(name, path, args.seed, args.subsample)
    raw_tr, raw_te = raw_features(x_tr, schema), raw_features(x_te, schema)
    f_tr, f_te = embedder_frame(x_tr, schema), embedder_frame(x_te, schema)
    emb_kwargs = dict(dim=args.dim, depth=args.depth, heads=args.heads, pool=args.pool, max_epochs=args.epochs,
                      min_steps=args.min_steps, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, numeric=args.numeric,
                      var_weight=args.var_weight, cov_weight=args.cov_weight,
                      invariance_weight=args.invariance_weight, corruption=args.corruption, n_reg_tokens=args.reg_tokens,
                      random_state=args.seed, threads=args.threads)
    reps = {"raw": (raw_tr, raw_te)}
    timings = {}
    for label, steps in ((("random-init", 0),) if args.random_init else ()) + (("T-JEPA", args.max_steps),):
        t = time.time()
        emb = TabularEmbedder(**{**emb_kwargs, "max_steps": steps}).fit(f_tr)
        e_tr, e_te = emb.transform(f_tr), emb.transform(f_te)
        timings[label] = time.time() - t
        reps[label] = (e_tr, e_te)
        if steps:
            reps["raw+T-JEPA"] = (np.hstack([raw_tr, e_tr]), np.hstack([raw_te, e_te]))
            curve = emb.loss_curve_
            print(f"  {name}: T-JEPA {len(curve)} steps in {timings[label]:.0f} s, loss {curve[0]:.3f} -> "
                  f"{np.mean(curve[-20:]):.3f}", flush=True)
    results, per_seed, mlp_lrs = {}, {}, {}
    for rep, (a, b) in reps.items():
        if "linear" in args.models:
            t = time.time()
            results[f"linear on {rep}"] = score(models(task, args.seed)["linear"], task, a, y_tr, b, y_te)
            print(f"  {name}: linear on {rep}: {results[f'linear on {rep}']:.4f} ({time.time() - t:.0f} s)", flush=True)
        if "mlp" in args.models:
            t = time.time()
            lr, scores = mlp_scores(task, a, y_tr, b, y_te, args)
            key = f"mlp on {rep}"
            results[key], mlp_lrs[key] = float(np.mean(scores)), lr
            if len(scores) > 1:
                per_seed[key] = scores
            print(f"  {name}: {key}: {results[key]:.4f} (lr {lr:g}"
                  f"{f'; sd {np.std(scores):.4f} over {len(scores)} seeds' if len(scores) > 1 else ''})"
                  f" ({time.time() - t:.0f} s)", flush=True)
    cat = np.array([k == "cat" for k in schema["kinds"]])
    hgb = (HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor)(
        categorical_features=cat if cat.any() else None, random_state=args.seed)
    x_hgb_tr, x_hgb_te = np.nan_to_num(x_tr, nan=np.nan), x_te
    results["HistGradientBoosting on raw"] = score(hgb, task, x_hgb_tr, y_tr, x_hgb_te, y_te)
    return {"table": name, "task": task, "metric": "accuracy" if task == "classification" else "RMSE",
            "n_train": len(x_tr), "n_test": len(x_te), "n_features": len(schema["columns"]),
            "n_categorical": int(cat.sum()), "results": results, "mlp_per_seed": per_seed, "mlp_lr": mlp_lrs, "embed_seconds": timings,
            "seconds": time.time() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adult")
    p.add_argument("--houses")
    p.add_argument("--bundled", default="", help="comma-separated scikit-learn tables (breast_cancer, wine, ...)")
    p.add_argument("--subsample", type=int, help="train (and test) rows per table, for quick iteration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="linear,mlp")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--pool", default="tokens+input")
    p.add_argument("--numeric", default="ple")
    p.add_argument("--reg-tokens", type=int, default=1)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--min-steps", type=int, default=500)
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--var-weight", type=float, default=0.0)
    p.add_argument("--cov-weight", type=float, default=0.0)
    p.add_argument("--invariance-weight", type=float, default=0.0, help="SCARF-view VICReg term (0: off)")
    p.add_argument("--corruption", type=float, default=0.6)
    p.add_argument("--no-random-init", dest="random_init", action="store_false", help="skip the random-init baseline")
    p.add_argument("--probe-seeds", type=int, default=1, help="score the MLP as the mean over this many seeds")
    p.add_argument("--mlp-lr", default="1e-3,1e-4",
                   help="the MLP's Adam learning rates; per representation, the one best on its validation split is used")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    args.models = args.models.split(",")
    args.mlp_lr = [float(v) for v in args.mlp_lr.split(",")]
    tables = ([("adult", args.adult)] if args.adult else []) + ([("houses", args.houses)] if args.houses else []) \
        + [(b, None) for b in args.bundled.split(",") if b]
    t0 = time.time()
    out = [run_table(name, path, args) for name, path in tables]
    print(f"\nsettings: {json.dumps({k: v for k, v in vars(args).items() if k not in ('adult', 'houses', 'json')})}")
    for r in out:
        print(f"\n{r['table']} ({r['task']}, {r['metric']}; {r['n_train']} train / {r['n_test']} test, "
              f"{r['n_features']} columns of which {r['n_categorical']} categorical; {r['seconds'] / 60:.1f} min)")
        for k, v in r["results"].items():
            print(f"  {k:<32} {v:.4f}")
    print(f"\ntotal {(time.time() - t0) / 60:.1f} min")
    from polyjepa.results import save_result

    keys = list(dict.fromkeys(k for r in out for k in r["results"]))
    save_result("tabular-tjepa", title="T-JEPA embeddings on tables: linear and MLP probes against raw features and "
                "gradient boosting", columns=["probe on representation"] + [f"{r['table']} ({r['metric']})" for r in out],
                rows=[[k] + [round(r["results"][k], 4) if k in r["results"] else None for r in out] for k in keys],
                seconds=time.time() - t0,
                notes=[f"{r['table']}: {r['n_train']} train / {r['n_test']} test, {r['n_features']} columns"
                       for r in out])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
