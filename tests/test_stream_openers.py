"""The lazy forms of loaders: found through the registry, a user's own, and an official test split kept."""
import numpy as np
import pytest

from polyjepa import registry
from polyjepa.config import DataConfig
from polyjepa.data.lazy import IndexedSource
from polyjepa.data.prepare import prepare
from polyjepa.data.sources import Loaded
from polyjepa.errors import UserError

N, TEST = 40, np.arange(30, 40)


def _arrays(path):
    rng = np.random.default_rng(int(path.split("-")[-1]))
    x = rng.normal(2.0, 3.0, size=(N, 2, 5)).astype(np.float32)
    y = np.arange(N) % 3
    return x, y


def load_pairs_split(source, *, shift: float = 0.0):
    x, y = _arrays(source)
    return Loaded(x[:30] + shift, y[:30], "toy", x_test=x[30:] + shift, y_test=y[30:])


class ToySource(IndexedSource):
    def __init__(self, source, shift):
        self.x, self.labels = _arrays(source)
        self.x = self.x + shift
        self.sample_shape = (2, 5)
        self._rows = np.arange(N)
        self.test_rows = TEST
        self.meta = {}

    def _read(self, rows):
        return self.x[rows]


def open_pairs_split(source, *, fitted=None, seed=0, shift: float = 0.0):
    return ToySource(source, shift)


@pytest.fixture
def toy_loader():
    registry.register("data", "toy_split", load_pairs_split, {"source"}, stream=open_pairs_split)
    yield
    registry._USER["data"].pop("toy_split")
    registry._USER_STREAMS.pop("toy_split")
    registry._tables.cache_clear()
    registry.stream_openers.cache_clear()


def test_modalities_declare_their_lazy_forms():
    openers = registry.stream_openers()
    assert {"series", "edf_epochs", "audio", "clips"} <= set(openers)
    loaders = registry._tables()[0]["data"]
    assert set(openers) <= set(loaders) | set(registry._USER_STREAMS)


@pytest.mark.parametrize("max_samples", [None, 12])
def test_an_official_test_split_is_kept_and_equals_the_in_memory_one(toy_loader, max_samples):
    cfg = DataConfig(source="toy-3", loader="toy_split", max_samples=max_samples)
    mem = prepare(cfg, None, {"shift": 1.5})
    lazy = prepare(DataConfig(**{**cfg.__dict__, "stream": True}), None, {"shift": 1.5})
    assert len(lazy.x_test) == len(mem.x_test) == 10   # the official test part, whole
    np.testing.assert_array_equal(lazy.y_test, mem.y_test)
    np.testing.assert_allclose(lazy.x_test[np.arange(10)].numpy(), mem.x_test, rtol=1e-5, atol=1e-5)
    assert len(lazy.x_train) == len(mem.x_train) == (max_samples or 30)
    np.testing.assert_array_equal(lazy.y_train, mem.y_train)
    np.testing.assert_allclose(lazy.x_train[np.arange(len(mem.x_train))].numpy(), mem.x_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lazy.mean, mem.mean, rtol=1e-5)


def test_a_loader_without_a_lazy_form_names_those_that_have_one():
    with pytest.raises(UserError, match=r"data.loader=interactions reads its data into memory.*series.*drop data.stream"):
        prepare(DataConfig(source="x.npz", loader="interactions", stream=True))
    with pytest.raises(UserError, match="unknown data.loader 'nope'"):
        prepare(DataConfig(source="x.npz", loader="nope", stream=True))


def test_a_seed_the_in_memory_loader_does_not_take_is_refused_when_streamed_too(tmp_path):
    np.save(tmp_path / "s.npy", np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32))
    with pytest.raises(UserError, match="data.loader=series takes no option seed: drop data.seed"):
        prepare(DataConfig(source=str(tmp_path / "s.npy"), loader="series", stream=True), None, {"seed": 3})
