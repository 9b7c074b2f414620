"""The quick start's pieces: the bundled MNIST sample and the table's one-line verdict."""
import numpy as np
import pytest

from .conftest import SHARED_DATA
from polyjepa.config import load_recipe
from polyjepa.data.sources import BUNDLED, load_images
from polyjepa.runner import format_table


def test_mnist6k_is_bundled_and_balanced():
    loaded = load_images("mnist6k")
    assert loaded.x.shape == (6000, 1, 28, 28) and loaded.x.dtype == np.float32
    assert 0.0 <= loaded.x.min() and loaded.x.max() == 1.0
    counts = np.bincount(loaded.y, minlength=10)
    assert len(counts) == 10 and counts.min() > 450  # every digit, none rare
    assert "mnist6k" in BUNDLED and loaded.name == "mnist6k"


def test_mnist6k_rows_are_the_stated_mnist_test_rows():
    path = SHARED_DATA / "mnist_t10k.npz"
    if not path.exists():
        pytest.skip(f"{path} absent: the check against the full MNIST test set needs ../shared/data")
    from importlib.resources import files

    full = np.load(path)
    sample = np.load(files("polyjepa") / "data" / "bundled" / "mnist6k.npz")
    idx = np.sort(np.random.default_rng(0).permutation(10000)[:6000])
    assert np.array_equal(sample["index"], idx)
    assert np.array_equal(sample["images"], full["images"][idx])
    assert np.array_equal(sample["labels"], full["labels"][idx])


def test_quickstart_recipe_reads_the_bundled_sample():
    cfg = load_recipe("cjepa-mnist6k")
    assert cfg.data.source == "mnist6k" and cfg.train.max_steps > 0


def _summary(ours, random_init, raw):
    return {"recipe": "r", "data": "d", "n_train": 10, "n_test": 5, "rankme": 3.0,
            "probe": {"linear": {"accuracy": ours}, "knn": {"accuracy": ours, "k": 20}},
            "baselines": {"random_init": {"linear": {"accuracy": random_init}, "knn": {"accuracy": 0.5}, "rankme": 1.0},
                          "raw": {"linear": {"accuracy": raw}, "knn": {"accuracy": 0.5}, "rankme": 2.0}}}


def test_table_states_the_margins_over_both_baselines():
    text = format_table(_summary(0.97, 0.95, 0.9125))
    assert "+2.0 points over the random-init encoder" in text
    assert "+5.8 points over the raw input" in text
    assert "20-nearest neighbours" in text
    assert "-1.0 points under the raw input" in format_table(_summary(0.90, 0.85, 0.91))
