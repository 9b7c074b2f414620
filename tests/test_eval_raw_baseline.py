"""The raw-input baseline flattens the evaluation sample without copying it when every value is finite, copies only
samples with NaN or inf (zeroed), never changes the sample, and gives the probes' results of a zeroed copy."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from polyjepa.config import EvalConfig
from polyjepa.data.prepare import Prepared
from polyjepa.eval.evaluate import raw_features

evaluate = importlib.import_module("polyjepa.eval.evaluate")  # the module (the package exports its function)


def reference(x: np.ndarray) -> np.ndarray:
    """An independent raw baseline: a flattened copy with every non-finite value set to 0."""
    out = np.array(x, copy=True).reshape(len(x), -1)
    out[~np.isfinite(out)] = 0
    return out


def test_finite_samples_are_flattened_without_a_copy():
    x = np.random.default_rng(0).normal(size=(40, 3, 5, 5)).astype(np.float32)
    before = x.copy()
    out = raw_features(x)
    assert out.shape == (40, 75) and out.dtype == np.float32 and np.shares_memory(out, x)
    np.testing.assert_array_equal(out, reference(x))
    np.testing.assert_array_equal(x, before)
    t = x.transpose(0, 2, 3, 1)  # not contiguous: flattening must copy, in the transposed order
    np.testing.assert_array_equal(raw_features(t), reference(t))
    assert raw_features(np.zeros((0, 3, 4), np.float32)).shape == (0, 12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_in_the_last_chunk_is_zeroed_in_a_copy(monkeypatch, bad):
    monkeypatch.setattr(evaluate, "FINITE_CHECK_BYTES", 4 * 75 * 3)  # three samples per chunk: 14 chunks
    x = np.random.default_rng(1).normal(size=(40, 3, 25)).astype(np.float32)
    x[39, 2, 24] = bad
    before = x.copy()
    out = raw_features(x)
    assert not np.shares_memory(out, x) and out[39, -1] == 0
    np.testing.assert_array_equal(out, reference(x))
    np.testing.assert_array_equal(x, before)  # the sample keeps its NaN / inf for the other representations


def _copying_raw_features(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x.reshape(len(x), int(np.prod(x.shape[1:]))), nan=0.0, posinf=0.0, neginf=0.0)


@pytest.mark.parametrize("missing", [False, True])
def test_evaluation_results_equal_those_of_a_copied_baseline(monkeypatch, missing):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:, None] / 16).astype(np.float32)
    if missing:
        x[::7, 0, 3, 3] = np.nan
    x.flags.writeable = False  # the baseline reads the sample (a view of it), never writes it
    data = Prepared(x[:1200], d.target[:1200], x[1200:], d.target[1200:], None, None, "digits")
    encoder = torch.nn.Module()
    encoder.embed = lambda b, pool="mean", layers=1: b.flatten(1)[:, :8] * 2.0
    encoder.register_parameter("w", torch.nn.Parameter(torch.zeros(1)))
    cfg = EvalConfig(baselines=True, cache_baselines=False)
    got = evaluate.evaluate(encoder, data, cfg)
    monkeypatch.setattr(evaluate, "raw_features", _copying_raw_features)
    want = evaluate.evaluate(encoder, data, cfg)
    assert got["baselines"]["raw"] == want["baselines"]["raw"]
    assert got["probe"] == want["probe"] and got["rankme"] == want["rankme"]
    assert got["baselines"]["raw"]["linear"]["accuracy"] > 0.8
