"""The baseline cache: a hit returns the very numbers a fresh computation gives; any change to the data, the
probe settings or the random-init encoder's weights misses."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import EvalConfig, load_recipe
from polyjepa.data.prepare import Prepared
from polyjepa.eval import cache
from polyjepa.eval.evaluate import evaluate


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def small_data(seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(120) % 3
    x = rng.normal(0, 0.3, (120, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, :, 2 * c:2 * c + 2] += 1.0
    return Prepared(x[:90], y[:90], x[90:], y[90:], None, None, "bars")


def encoder(seed=0):
    cfg = load_recipe("ijepa-digits", ["encoder.size=micro", "encoder.depth=1", "predictor.dim=16",
                                       "predictor.depth=1", "predictor.heads=2"])
    return build_method(cfg, (1, 8, 8), seed=seed).encoder()


CFG = EvalConfig(pool="mean", knn_k=5, probe_C=1.0)


def test_a_hit_returns_identical_numbers(cache_folder):
    data, enc, rnd = small_data(), encoder(1), encoder(0)
    first = evaluate(enc, data, CFG, random_encoder=rnd)
    assert first["cached"] == [] and len(list((cache_folder / "baselines").glob("*.json"))) == 2
    second = evaluate(enc, data, CFG, random_encoder=encoder(0))  # rebuilt: same weights, same key
    assert second["cached"] == ["raw", "random_init"]
    assert second["baselines"] == first["baselines"]
    assert json.dumps(second["baselines"], sort_keys=True) == json.dumps(first["baselines"], sort_keys=True)
    assert second["probe"] == first["probe"]  # the pretrained encoder is never cached


def test_a_changed_array_or_probe_setting_misses(cache_folder):
    data, enc, rnd = small_data(), encoder(1), encoder(0)
    evaluate(enc, data, CFG, random_encoder=rnd)
    changed = dataclasses.replace(data, x_test=data.x_test.copy())
    changed.x_test[3, 0, 2, 2] += 1e-3
    assert evaluate(enc, changed, CFG, random_encoder=rnd)["cached"] == []
    relabelled = dataclasses.replace(data, y_train=np.roll(data.y_train, 1))
    assert evaluate(enc, relabelled, CFG, random_encoder=rnd)["cached"] == []
    assert evaluate(enc, data, dataclasses.replace(CFG, knn_k=7), random_encoder=rnd)["cached"] == []
    assert evaluate(enc, data, CFG, random_encoder=rnd, seed=1)["cached"] == []  # the probe's split seed
    # the read-out and the random encoder's weights change the random-init baseline only
    assert evaluate(enc, data, dataclasses.replace(CFG, pool="mean+std"), random_encoder=rnd)["cached"] == ["raw"]
    assert evaluate(enc, data, CFG, random_encoder=encoder(5))["cached"] == ["raw"]
    assert evaluate(enc, data, CFG, random_encoder=rnd)["cached"] == ["raw", "random_init"]


def test_digests_follow_contents_not_identity():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert cache.array_digest(a) == cache.array_digest(a.copy())
    assert cache.array_digest(a) != cache.array_digest(a.reshape(4, 3))       # shape
    assert cache.array_digest(a) != cache.array_digest(a.astype(np.float64))  # dtype
    assert cache.array_digest(a, None) != cache.array_digest(a)
    empty = np.zeros((0, 1, 8, 8), np.float32)  # an unlabelled set has an empty test split
    assert cache.array_digest(empty) != cache.array_digest(np.zeros((0, 1, 4, 4), np.float32))
    assert cache.array_digest(np.float32(3)) != cache.array_digest(np.float32(4))
    m = torch.nn.Linear(3, 2)
    d = cache.module_digest(m)
    with torch.no_grad():
        m.bias[0] += 1e-6
    assert cache.module_digest(m) != d


def test_a_damaged_entry_is_recomputed_and_caching_can_be_off(cache_folder):
    data, enc, rnd = small_data(), encoder(1), encoder(0)
    first = evaluate(enc, data, CFG, random_encoder=rnd)
    for f in (cache_folder / "baselines").glob("*.json"):
        f.write_text("{not json")
    again = evaluate(enc, data, CFG, random_encoder=rnd)
    assert again["cached"] == [] and again["baselines"] == first["baselines"]
    off = dataclasses.replace(CFG, cache_baselines=False)
    assert evaluate(enc, data, off, random_encoder=rnd)["cached"] == []
    assert not list((cache_folder / "baselines").glob(".*.tmp"))  # atomic writes leave no temporary files


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("POLYJEPA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "polyjepa"
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x"
