"""Frozen-feature probes: logistic regression on standardised features, cosine kNN; for a continuous
target (float labels, e.g. a table's regression column) ridge regression and a kNN mean instead."""
from __future__ import annotations

import warnings

import numpy as np

from ..data.prepare import is_regression


def probe_score(result: dict) -> float | None:
    """The probe's headline number: accuracy for classes, R^2 for a continuous target."""
    return result.get("accuracy", result.get("r2"))


def probe_metric(result: dict) -> str | None:
    """What ``probe_score`` of this result is: "accuracy", "R^2", or None for no probe."""
    return "R^2" if "r2" in result else "accuracy" if "accuracy" in result else None


def _regression_scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    resid = float(np.sum((y - pred) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return {"r2": 1.0 - resid / total if total > 0 else float("nan"), "rmse": float(np.sqrt(resid / len(y)))}


def ridge_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    """R^2 and RMSE of ridge regression on standardised features, alpha chosen by leave-one-out on the train set."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 7))).fit(train_x, train_y)
    return {**_regression_scores(model.predict(test_x), test_y), "alpha": float(model[-1].alpha_)}


def ridge_classifier_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                           alphas: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy of a ridge classifier on standardised features, alpha by leave-one-out on the train set.

    The classifier of ROCKET and MiniRocket (Dempster et al.): one-vs-rest ridge regression onto +-1
    targets, the class with the largest output wins, alpha from ``alphas`` (default
    ``logspace(-3, 3, 10)``) by the train set's leave-one-out error, computed in closed form. Fast on
    wide features (the cost grows with the number of rows, not of columns, when columns outnumber rows).
    """
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    alphas = np.logspace(-3, 3, 10) if alphas is None else np.asarray(alphas, dtype=np.float64)
    model = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=alphas)).fit(train_x, train_y)
    return {"accuracy": float(model.score(test_x, test_y)), "alpha": float(model[-1].alpha_)}


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 C: float | str = "auto", max_iter: int = 5000, tol: float = 1e-4,
                 seed: int = 0) -> dict[str, float]:
    """Accuracy of logistic regression on standardised features (float targets: ``ridge_probe``).

    ``C='auto'`` picks C from {0.01, 0.1, 1, 10} on a stratified 20% validation split of the train
    set, then refits on the whole train set; the test set is used once. On a train set too small for
    that split (fewer validation rows than classes, or a class missing from the rest) C is 1.

    The solver is L-BFGS run to ``tol`` 1e-4 (``max_iter`` 5000 is a safety cap: 1000 left a 48,000-row
    mean-pooled matrix 1.3 points short; the smaller matrices measured stop within 1000). Mean-pooled transformer
    features are strongly correlated (condition numbers near 1e7 after standardising), and at weak
    regularisation (C 10, the choice on such features) a looser stop (200 iterations, tol 1e-3) left the
    accuracy 3-5 points under the converged optimum; ``benchmarks/probe_solvers.py`` compares the solvers.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    def fit(x, y, c):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, tol=tol))
        # one BLAS thread: L-BFGS's products are small, and the BLAS threads contend with torch's OpenMP threads,
        # which spin after the embedding; with both (2 cores) the quick start's probe took 90 s instead of 8
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(x, y)

    if is_regression(train_y):
        return ridge_probe(train_x, train_y, test_x, test_y)
    chosen = C
    if C == "auto":
        counts = np.bincount(train_y)
        classes = int((counts > 0).sum())
        chosen = 1.0
        if counts[counts > 0].min() >= 2 and int(np.ceil(0.2 * len(train_y))) >= classes:
            a_x, v_x, a_y, v_y = train_test_split(train_x, train_y, test_size=0.2, random_state=seed, stratify=train_y)
            scores = {c: fit(a_x, a_y, c).score(v_x, v_y) for c in (0.01, 0.1, 1.0, 10.0)}
            chosen = max(scores, key=scores.get)
    model = fit(train_x, train_y, float(chosen))
    out = {"accuracy": float(model.score(test_x, test_y)), "C": float(chosen)}
    unseen = ~np.isin(test_y, train_y)
    if unseen.any():      # classes only in the test part: no probe can get these samples right
        out["unseen_test_fraction"] = float(unseen.mean())
    return out


def _neighbours(a: np.ndarray, b: np.ndarray, k: int):
    """(start, indices, similarities) of each query chunk's k most cosine-similar train rows."""
    for start in range(0, len(b), 1024):  # chunks bound the similarity matrix's memory
        sim = b[start:start + 1024] @ a.T
        nn_idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        yield start, nn_idx, np.take_along_axis(sim, nn_idx, axis=1)


def knn_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
              k: int = 20) -> dict[str, float]:
    """Accuracy of a k-nearest-neighbour vote under cosine similarity, neighbours weighted by similarity.

    Features are standardised with the train set's statistics first: pooled transformer features
    share a large common component that would otherwise dominate every cosine. For float targets the
    prediction is the neighbours' similarity-weighted mean, scored by R^2 and RMSE.
    """
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mu) / sd, (test_x - mu) / sd
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    k = min(k, len(a))
    if is_regression(train_y):
        pred = np.empty(len(b))
        for start, nn_idx, nn_sim in _neighbours(a, b, k):
            w = np.maximum(nn_sim, 0) + 1e-6
            pred[start:start + len(w)] = (w * train_y[nn_idx]).sum(1) / w.sum(1)
        return _regression_scores(pred, np.asarray(test_y, np.float64))
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for start, nn_idx, nn_sim in _neighbours(a, b, k):
        votes = np.zeros((len(nn_sim), n_classes))
        np.add.at(votes, (np.arange(len(nn_sim))[:, None], train_y[nn_idx]), np.maximum(nn_sim, 0) + 1e-6)
        correct += int((votes.argmax(1) == test_y[start:start + 1024]).sum())
    return {"accuracy": correct / len(b)}
