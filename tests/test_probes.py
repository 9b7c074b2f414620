import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from polyjepa.eval import knn_probe, linear_probe


def blobs(n=300, d=10, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.normal(0, 3, (3, d))
    return (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y


def test_linear_probe_separable_and_chance():
    x, y = blobs()
    assert linear_probe(x[:200], y[:200], x[200:], y[200:])["accuracy"] > 0.95
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert linear_probe(noise[:200], y[:200], noise[200:], y[200:])["accuracy"] < 0.6


def test_knn_probe_agrees_with_sklearn():
    x, y = blobs(seed=2)
    mu, sd = x[:200].mean(0), x[:200].std(0) + 1e-6
    ref = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit((x[:200] - mu) / sd, y[:200])
    ours = knn_probe(x[:200], y[:200], x[200:], y[200:], k=5)["accuracy"]
    theirs = ref.score((x[200:] - mu) / sd, y[200:])
    assert abs(ours - theirs) <= 0.03  # weighted vs unweighted vote differ on near-ties only
