"""Clustering quality against known classes: accuracy under the best cluster-to-class matching (from the
contingency table), and scikit-learn's normalised mutual information and adjusted Rand index."""
from __future__ import annotations

import numpy as np


def contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(classes, clusters) counts of samples with each (true class, predicted cluster)."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need two equally long, non-empty label arrays, got {y_true.shape} and {y_pred.shape}")
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def clustering_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of samples whose cluster maps to their class, under the one-to-one cluster-to-class map that
    maximises it (Hungarian algorithm; clusters left without a class count as wrong)."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def normalized_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """I(Y; C) / ((H(Y) + H(C)) / 2), the arithmetic-mean normalisation (scikit-learn's)."""
    from sklearn.metrics import normalized_mutual_info_score

    contingency(y_true, y_pred)  # the same checks of the label arrays as the other scores
    return float(normalized_mutual_info_score(np.ravel(y_true), np.ravel(y_pred)))


def adjusted_rand_index(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(RI - E[RI]) / (max RI - E[RI]) over pairs of samples (Hubert & Arabie, 1985; scikit-learn's)."""
    from sklearn.metrics import adjusted_rand_score

    contingency(y_true, y_pred)
    return float(adjusted_rand_score(np.ravel(y_true), np.ravel(y_pred)))


def clustering_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """{"acc", "nmi", "ari"}."""
    return {"acc": clustering_accuracy(y_true, y_pred), "nmi": normalized_mutual_info(y_true, y_pred),
            "ari": adjusted_rand_index(y_true, y_pred)}


def kmeans_labels(x: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """k-means (k-means++, 10 starts) cluster of each row of ``x``."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(x, dtype=np.float64))
