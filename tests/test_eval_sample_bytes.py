"""The probes' sample of lazy data holds at most ``eval.max_bytes``: fewer samples when they are large, both parts
in proportion and still stratified, decoded a chunk at a time into one array, and the summary says why."""
from __future__ import annotations

import numpy as np
import pytest

from polyjepa.data import prepare as prep
from polyjepa.data.lazy import IndexedSource
from polyjepa.data.prepare import Prepared, evaluation_sample
from polyjepa.errors import UserError


class BigSamples(IndexedSource):
    """Lazy samples of (2, 32, 32, 32) float32 (256 KiB each) whose values say which row they are."""

    sample_shape = (2, 32, 32, 32)

    def __init__(self, n: int, labels: np.ndarray):
        self._rows = np.arange(n, dtype=np.int64)
        self.labels = labels
        self.reads: list[int] = []

    def _read(self, rows):
        self.reads.append(len(rows))
        return np.broadcast_to(rows.astype(np.float32).reshape(-1, 1, 1, 1, 1), (len(rows), *self.sample_shape)).copy()


PER_SAMPLE = 4 * 2 * 32 ** 3


def lazy_data(n_train=400, n_test=200, classes=4):
    y_train = np.arange(n_train) % classes
    y_test = np.arange(n_test) % classes
    train = BigSamples(n_train, y_train)
    test = BigSamples(n_test, y_test)
    return Prepared(train, y_train, test, y_test, None, None, "big")


def test_the_byte_bound_holds_keeps_strata_and_says_so(monkeypatch):
    monkeypatch.setattr(prep, "EVAL_DECODE_BYTES", 5 * PER_SAMPLE)  # chunks of 5 samples
    data = lazy_data()
    budget = 60 * PER_SAMPLE + 100
    ev, note = evaluation_sample(data, None, max_bytes=budget)
    assert ev.x_train.nbytes + ev.x_test.nbytes <= budget
    assert (len(ev.x_train), len(ev.x_test)) == (40, 20)  # 60 samples fit, train : test kept at 2 : 1
    assert note == {"train": 40, "test": 20, "of_train": 400, "of_test": 200, "streamed": True,
                    "max_bytes": budget, "sample_bytes": PER_SAMPLE}
    for y in (ev.y_train, ev.y_test):  # stratified: every class equally often, as in the data
        counts = np.bincount(y, minlength=4)
        assert counts.max() - counts.min() <= 1
    # the decoded rows are the samples their labels belong to, in order
    rows = ev.x_train[:, 0, 0, 0, 0].astype(int)
    assert (np.diff(rows) > 0).all() and (data.y_train[rows] == ev.y_train).all()
    assert max(data.x_train.reads) <= 5 and sum(data.x_train.reads) == 40  # decoded a chunk at a time


def test_the_sample_count_bound_applies_first_and_the_bytes_only_when_they_bite():
    data = lazy_data()
    ev, note = evaluation_sample(data, 30, max_bytes=1 << 30)
    assert (len(ev.x_train), len(ev.x_test)) == (30, 30) and "max_bytes" not in note
    ev, note = evaluation_sample(data, 30, max_bytes=20 * PER_SAMPLE)
    assert (len(ev.x_train), len(ev.x_test)) == (10, 10) and note["max_bytes"] == 20 * PER_SAMPLE
    ev, note = evaluation_sample(data, None, max_bytes=None)  # no byte bound: STREAM_EVAL_SAMPLES, here all
    assert (len(ev.x_train), len(ev.x_test)) == (400, 200) and "max_bytes" not in note
    # in-memory data are used as they are: the byte bound is for data that must be decoded
    mem = Prepared(np.zeros((50, 2, 32, 32, 32), np.float32), np.arange(50) % 2, np.zeros((10, 2, 32, 32, 32),
                   np.float32), np.arange(10) % 2, None, None, "mem")
    same, none = evaluation_sample(mem, None, max_bytes=PER_SAMPLE)
    assert same is mem and none is None


def test_a_budget_too_small_for_the_probes_is_one_clear_line():
    with pytest.raises(UserError, match="holds 2 sample") as e:
        evaluation_sample(lazy_data(), None, max_bytes=2 * PER_SAMPLE)
    assert "raise eval.max_bytes" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="positive number of bytes"):
        evaluation_sample(lazy_data(), None, max_bytes=-5)
    from polyjepa.config import load_recipe

    with pytest.raises(UserError, match="max_bytes"):
        load_recipe("ijepa-digits", ["eval.max_bytes=0"])


def test_the_table_names_the_byte_bound():
    from polyjepa.runner import format_table

    summary = {"recipe": "r", "data": "d", "n_train": 400, "n_test": 200, "probe": {}, "baselines": {},
               "eval_sample": {"train": 40, "test": 20, "of_train": 400, "of_test": 200, "streamed": True,
                               "max_bytes": 1 << 30, "sample_bytes": 16 << 20}}
    line = [x for x in format_table(summary).splitlines() if x.startswith("probes on")][0]
    assert line == ("probes on a stratified sample of 40 train / 20 test (streamed data; fewer, as "
                    "eval.max_bytes=1.0 GiB holds 64 samples of 16.0 MiB)")


def test_a_small_training_part_keeps_two_samples_under_the_byte_bound():
    from polyjepa.data.prepare import _byte_bounded

    # 50 training and 10,000 test samples, room for 100: proportional shares would leave 0 training samples
    assert _byte_bounded(50, 10000, 4, 400, (1,)) == (2, 98, True)
    for n_train, n_test, fits in ((10000, 5000, 3000), (5000, 1000, 600), (7, 3, 4), (3, 0, 2)):
        train, test, cut = _byte_bounded(n_train, n_test, 4, 4 * fits, (1,))
        assert cut and train + test <= fits and train >= min(n_train, 2) and test >= min(n_test, 1)
        assert train <= n_train and test <= n_test
