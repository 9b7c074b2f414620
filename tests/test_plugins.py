"""Parts and data loaders plug in through the registry; the generic paths (official splits, meta, progress)."""
import numpy as np
import pytest
import torch

from polyjepa import registry
from polyjepa.config import DataConfig, load_recipe
from polyjepa.data import Loaded, MaskedBatches
from polyjepa.data.prepare import prepare
from polyjepa.errors import UserError


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_USER", {})
    monkeypatch.setattr(registry, "_USER_ASSEMBLERS", {})
    registry._tables.cache_clear()
    yield registry
    registry._tables.cache_clear()


def split_loader(source, *, n_test: int = 5, fitted=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2, 4, 4)).astype(np.float32)
    y = np.arange(30) % 3
    meta = {"seen_fitted": fitted is not None, "n_test": n_test}
    return Loaded(x[n_test:], y[n_test:], source, x_test=x[:n_test], y_test=y[:n_test], meta=meta)


def test_registered_loader_keeps_official_split_and_meta(clean_registry):
    clean_registry.register("data", "split", split_loader, {"source"})
    cfg = load_recipe("ijepa-digits", ["data.loader=split", "data.n_test=6"])
    from polyjepa.config import dataclass_from, part_kwargs

    p = prepare(dataclass_from(cfg, "data", DataConfig), None, part_kwargs(cfg, "data"))
    assert len(p.x_test) == 6 and len(p.x_train) == 24 and p.meta == {"seen_fitted": False, "n_test": 6}
    assert np.allclose(p.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)  # per-channel, train statistics
    again = prepare(dataclass_from(cfg, "data", DataConfig), p.stats, part_kwargs(cfg, "data"))
    assert again.meta["seen_fitted"] and np.allclose(again.x_test, p.x_test)
    with pytest.raises(UserError, match="unknown config key 'data.bogus'"):
        load_recipe("ijepa-digits", ["data.loader=split", "data.bogus=1"])
    with pytest.raises(UserError, match="unknown data.loader 'nope'"):
        load_recipe("ijepa-digits", ["data.loader=nope"])


def test_normalize_none_keeps_values():
    p = prepare(DataConfig(normalize="none"))
    assert p.mean is None and p.x_train.max() == pytest.approx(1.0)


def test_image_tokenizer_on_series_data_says_what_is_wrong():
    from polyjepa.build import build_method

    cfg = load_recipe("ijepa-digits")
    with pytest.raises(UserError, match="tokenizer 'patch2d' needs image_size"):
        build_method(cfg, (3, 100))


def test_registered_masker_gets_progress_and_input(clean_registry):
    seen = []

    class ProgressMasker:
        uses_progress, uses_input = True, True

        def __init__(self, grid):
            self.n = grid[0] * grid[1]

        def __call__(self, batch_size, generator, *, progress, x):
            seen.append((progress, tuple(x.shape)))
            idx = torch.randperm(self.n, generator=generator)
            return idx[None, :8].expand(batch_size, -1), idx[None, None, 8:12].expand(batch_size, 1, -1)

    clean_registry.register("masker", "progress", ProgressMasker, {"grid"})
    from polyjepa.build import build_method

    from polyjepa.config import validate

    cfg = load_recipe("ijepa-digits", ["encoder.size=micro", "encoder.depth=1", "predictor.dim=16",
                                       "predictor.depth=1", "predictor.heads=2"])
    cfg.masker = {"name": "progress"}
    validate(cfg)
    method = build_method(cfg, (1, 8, 8))
    batches = MaskedBatches(torch.zeros(40, 1, 8, 8), batch_size=10, masker=method.masker, total_steps=8)
    batch = batches[2]
    assert seen[-1] == (0.25, (10, 1, 8, 8))
    out = method(batch)
    assert torch.isfinite(out["loss"])


def test_make_batch_replaces_the_masker():
    calls = []

    def make(x, g, progress):
        calls.append(progress)
        return {"x": x, "views": torch.stack([x, x.flip(-1)])}

    b = MaskedBatches(torch.arange(20.0).reshape(10, 2), batch_size=5, make_batch=make, total_steps=4)
    assert set(b[1]) == {"x", "views"} and calls == [0.25]
    with pytest.raises(ValueError, match="exactly one"):
        MaskedBatches(torch.zeros(10, 2), batch_size=5)
