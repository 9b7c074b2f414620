"""Clustering quality against known classes: accuracy under the best cluster-to-class matching, normalised
mutual information and the adjusted Rand index, computed from the contingency table."""
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


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """I(Y; C) / ((H(Y) + H(C)) / 2), the arithmetic-mean normalisation; 1.0 when both are one cluster."""
    table = contingency(y_true, y_pred).astype(np.float64)
    n = table.sum()
    h_true, h_pred = _entropy(table.sum(1)), _entropy(table.sum(0))
    if h_true == 0 and h_pred == 0:
        return 1.0
    nz = table > 0
    outer = np.outer(table.sum(1), table.sum(0))
    mi = float((table[nz] / n * np.log(table[nz] * n / outer[nz])).sum())
    return max(0.0, mi) / ((h_true + h_pred) / 2) if h_true + h_pred > 0 else 0.0


def adjusted_rand_index(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(RI - E[RI]) / (max RI - E[RI]) over pairs of samples (Hubert & Arabie, 1985)."""
    table = contingency(y_true, y_pred).astype(np.float64)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    n = table.sum()
    index, a, b = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = a * b / (n * (n - 1) / 2)
    top = (a + b) / 2
    if top == expected:
        return 1.0
    return float((index - expected) / (top - expected))


def clustering_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """{"acc", "nmi", "ari"}."""
    return {"acc": clustering_accuracy(y_true, y_pred), "nmi": normalized_mutual_info(y_true, y_pred),
            "ari": adjusted_rand_index(y_true, y_pred)}


def kmeans_labels(x: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """k-means (k-means++, 10 starts) cluster of each row of ``x``."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(x, dtype=np.float64))
