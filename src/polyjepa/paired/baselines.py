"""The classical cross-modal baseline: each side's raw features (pixels, adjacency rows, TF-IDF of the
text), reduced by truncated SVD, then canonical correlation analysis (scikit-learn) into one space."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Pairs


def raw_side_a(pairs: Pairs):
    """(n, F) raw side-a features: flattened pixels / vectors, or a node's adjacency row (sparse) for a graph."""
    if pairs.side_a != "graph":
        return pairs.a.reshape(len(pairs.a), -1).astype(np.float64)
    from scipy import sparse

    n, e = pairs.graph["n_nodes"], pairs.graph["edge_index"]
    adj = sparse.coo_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n, n))
    return ((adj + adj.T) > 0).astype(np.float64).tocsr()


@dataclass
class RawFeatures:
    """SVD-reduced raw features fitted on the training pairs: a_* (n, d); b_* (n, K, d) for every text."""

    a_train: np.ndarray
    a_test: np.ndarray
    b_train: np.ndarray
    b_test: np.ndarray


def raw_features(pairs: Pairs, *, dim: int = 128, seed: int = 0) -> RawFeatures:
    """Side a: raw features -> truncated SVD; side b: TF-IDF (fitted on the training texts) -> truncated SVD, or
    for a side b that is not text (spectrograms) its flattened values -> truncated SVD."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    train, test = ~pairs.test, pairs.test
    raw_a = raw_side_a(pairs)
    svd_a = TruncatedSVD(max(1, min(dim, raw_a.shape[1] - 1, int(train.sum()) - 1)), random_state=seed)
    a_train = svd_a.fit_transform(raw_a[train])
    if pairs.side_b != "text":  # e.g. spectrograms: flattened values -> truncated SVD
        raw_b = pairs.b.reshape(len(pairs.b) * pairs.b.shape[1], -1).astype(np.float64)
        k = pairs.b.shape[1]
        rows = np.repeat(train, k)
        svd_b = TruncatedSVD(max(1, min(dim, raw_b.shape[1] - 1, int(rows.sum()) - 1)), random_state=seed)
        b_all = svd_b.fit(raw_b[rows]).transform(raw_b).reshape(len(pairs.b), k, -1)
        return RawFeatures(a_train, svd_a.transform(raw_a[test]), b_all[train], b_all[test])
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2 if train.sum() > 50 else 1).fit(pairs.texts[train].ravel())
    t_train = tfidf.transform(pairs.texts[train].ravel())
    svd_b = TruncatedSVD(max(1, min(dim, t_train.shape[1] - 1, t_train.shape[0] - 1)), random_state=seed)
    svd_b.fit(t_train)
    k = pairs.texts.shape[1]

    def b_of(texts):
        return svd_b.transform(tfidf.transform(texts.ravel())).reshape(len(texts), k, -1)

    return RawFeatures(a_train, svd_a.transform(raw_a[test]), b_of(pairs.texts[train]), b_of(pairs.texts[test]))


def cca_embeddings(raw: RawFeatures, *, components: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """CCA fitted on the training pairs (every text of an item paired with it); the test items' canonical
    variates: a (n_test, c) and b (n_test, K, c). (Hotelling 1936; the classical cross-modal baseline.)"""
    from sklearn.cross_decomposition import CCA

    n, k, d_b = raw.b_train.shape
    a_rep = np.repeat(raw.a_train, k, axis=0)
    c = max(1, min(components, raw.a_train.shape[1], d_b, n - 1))
    cca = CCA(n_components=c, max_iter=1000, scale=True).fit(a_rep, raw.b_train.reshape(n * k, d_b))
    a_c = cca.transform(raw.a_test)
    zero_a = np.zeros((raw.b_test.shape[0] * k, raw.a_test.shape[1]))
    _, b_c = cca.transform(zero_a, raw.b_test.reshape(-1, d_b))
    return a_c, b_c.reshape(raw.b_test.shape[0], k, -1)
