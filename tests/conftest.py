import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A recipe small enough that a whole pretrain -> evaluate run takes a few seconds.
TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.max_steps=8", "train.log_every=2", "train.monitor_every=4",
        "train.checkpoint_every=4", "data.max_samples=400", "eval.monitor_samples=128"]


@pytest.fixture(autouse=True)
def _quiet_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _results_elsewhere(tmp_path_factory, monkeypatch):
    """Benchmarks run by tests write their result files to a temporary folder, never into results/."""
    monkeypatch.setenv("POLYJEPA_RESULTS", str(tmp_path_factory.mktemp("results")))


@pytest.fixture(autouse=True)
def _cache_elsewhere(tmp_path_factory, monkeypatch):
    """Each test has its own baseline cache, never the user's."""
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny_overrides():
    return list(TINY)


@pytest.fixture
def image_npz(tmp_path):
    """A small labelled image set as a .npz (16x16, 3 classes of bars)."""
    rng = np.random.default_rng(0)
    n = 150
    y = np.arange(n) % 3
    x = rng.normal(0, 0.1, (n, 16, 16)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, 4 * c:4 * c + 4] += 1.0
    path = tmp_path / "bars.npz"
    np.savez(path, images=x, labels=y)
    return path
