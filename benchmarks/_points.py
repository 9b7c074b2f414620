"""Descriptors, probes and runs shared by the point-cloud benchmarks (imported as ``_points`` from beside them)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np


def occupancy(x: np.ndarray, bins: int = 16) -> np.ndarray:
    """(n, P, 3) clouds in the unit ball -> (n, bins^3) fraction of points per cell."""
    cell = np.clip(((x + 1) / 2 * bins).astype(int), 0, bins - 1)
    flat = (cell[..., 0] * bins + cell[..., 1]) * bins + cell[..., 2]
    out = np.zeros((len(x), bins ** 3), np.float32)
    np.add.at(out, (np.arange(len(x))[:, None], flat), 1.0 / x.shape[1])
    return out


def d2_histogram(x: np.ndarray, bins: int = 64) -> np.ndarray:
    """(n, P, 3) -> (n, bins): histogram of all pairwise distances (Osada et al.'s D2 shape distribution)."""
    out = np.empty((len(x), bins), np.float32)
    for i, c in enumerate(x):
        d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))[np.triu_indices(len(c), 1)]
        out[i] = np.histogram(d, bins=bins, range=(0, 2))[0] / len(d)
    return out


def svm_probe(tr, ytr, te, yte, seed=0) -> float:
    """Linear SVM on standardised features, C from {0.001, 0.01, 0.1, 1} on a 20% validation split."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    def fit(x, y, c):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=2000)).fit(x, y)

    a, v, ya, yv = train_test_split(tr, ytr, test_size=0.2, random_state=seed, stratify=ytr)
    best = max((0.001, 0.01, 0.1, 1.0), key=lambda c: fit(a, ya, c).score(v, yv))
    return float(fit(tr, ytr, best).score(te, yte))


def probe(tr: np.ndarray, ytr, te: np.ndarray, yte, *, knn: bool = True) -> dict:
    """The point benchmarks' probes of train/test features: {"linear": logistic regression accuracy, "svm":
    :func:`svm_probe`, "knn": cosine kNN accuracy (with ``knn``), "rankme": RankMe of the test features}."""
    import torch

    from polyjepa.diagnostics.rankme import rankme
    from polyjepa.eval.probes import knn_probe, linear_probe

    r = {"linear": linear_probe(tr, ytr, te, yte)["accuracy"], "svm": svm_probe(tr, ytr, te, yte)}
    if knn:
        r["knn"] = knn_probe(tr, ytr, te, yte)["accuracy"]
    r["rankme"] = rankme(torch.from_numpy(np.ascontiguousarray(te)))
    return r


def pretrained(recipe: str, run: Path, data: str, **kwargs) -> dict:
    """The summary of the run in ``run``: read back when it finished before (re-probe only), else
    ``polyjepa.pretrain(recipe, data=data, out=run, progress=False, **kwargs)``."""
    if (run / "summary.json").exists():
        return json.loads((run / "summary.json").read_text())
    import polyjepa as pj

    return pj.pretrain(recipe, data=data, out=str(run), progress=False, **kwargs)


def rounded(r: dict, key: str, digits: int):
    """``r[key]`` rounded to ``digits`` for a result table; None where the row has no such entry."""
    return round(r[key], digits) if key in r else None
