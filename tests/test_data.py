"""Data preparation: the fixed stratified MNIST split, normalisation, and the bundled default."""
import numpy as np
import pytest

from polyjepa.config import DataConfig, load_recipe, dataclass_from
from polyjepa.data.prepare import prepare

from .conftest import SHARED_DATA

MNIST = SHARED_DATA / "mnist_t10k.npz"


@pytest.mark.skipif(not MNIST.exists(), reason=f"{MNIST} is absent (the shared data folder is not beside the repo)")
def test_mnist_benchmark_split_is_fixed_and_stratified():
    cfg = dataclass_from(load_recipe("ijepa-mnist", [f"data.source={MNIST}"]), "data", DataConfig)
    a, b = prepare(cfg), prepare(cfg)
    assert len(a.x_train) == 8000 and len(a.x_test) == 2000 and a.x_train.shape[1:] == (1, 28, 28)
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_test, b.x_test)
    share_train = np.bincount(a.y_train) / 8000
    share_test = np.bincount(a.y_test) / 2000
    assert np.abs(share_train - share_test).max() < 0.002
    assert abs(float(a.x_train.mean())) < 1e-3 and abs(float(a.x_train.std()) - 1) < 1e-2


def test_digits_default_and_reused_statistics():
    d = prepare(DataConfig())
    assert len(d.x_train) + len(d.x_test) == 1797 and d.x_train.shape[1:] == (1, 8, 8)
    again = prepare(DataConfig(), {"mean": d.mean, "std": d.std})
    assert np.array_equal(again.x_test, d.x_test)
    sub = prepare(DataConfig(max_samples=300))
    assert len(sub.x_train) + len(sub.x_test) == 300 and set(np.unique(sub.y_train)) == set(range(10))
