"""Series read lazily (a memory-mapped .npy, EDF epochs read record by record): the samples, labels and split of
the in-memory loaders; every sample once per epoch across ranks and DataLoader workers; a resume in the middle
of an epoch continues the same order; an unreadable EDF file skipped with a warning; a pretrain run."""
import csv
import json
import pickle

import numpy as np
import pytest
from torch.utils.data import DataLoader

from polyjepa.cli import main
from polyjepa.config import DataConfig
from polyjepa.data.batches import MaskedBatches
from polyjepa.data.prepare import prepare
from polyjepa.data.stream import as_source
from polyjepa.errors import UserError
from polyjepa.timeseries.data import load_series
from polyjepa.timeseries.edf import load_edf_epochs
from polyjepa.timeseries.stream import EdfEpochs, NpySeries
from tests.test_timeseries_edf import write_edf

FS = 64


@pytest.fixture
def edf_folder(tmp_path):
    """Three 3-channel EDF+ files of 40 s at 64 Hz, 1-s records, an annotation (T0/T1/T2) every 2.5 s from 1 s."""
    rng = np.random.default_rng(0)
    root = tmp_path / "eeg"
    root.mkdir()
    for k in range(3):
        t = np.arange(40 * FS) / FS
        x = np.stack([40 * np.sin(2 * np.pi * (3 + c + k) * t) + rng.normal(0, 5, len(t)) for c in range(3)])
        ann = [(round(2.5 * i + 0.25 * k + 1.0, 2), 4.0, f"T{i % 3}") for i in range(16)]
        write_edf(root / f"S{k:02d}.edf", np.clip(x, -99, 99), FS, ann)
    return root


def test_edf_epochs_equal_the_in_memory_loader(edf_folder):
    eager = load_edf_epochs(str(edf_folder), seconds=2.0)
    lazy = EdfEpochs(edf_folder, seconds=2.0)
    assert lazy.shape == eager.x.shape == (45, 3, 128)  # the last annotation of each file runs past its end
    np.testing.assert_array_equal(lazy[np.arange(len(lazy))].numpy(), eager.x)  # same windows, order and values
    np.testing.assert_array_equal(lazy.labels, eager.y)
    rows = np.array([44, 3, 17, 3])
    np.testing.assert_array_equal(lazy[rows].numpy(), eager.x[rows])
    np.testing.assert_array_equal(lazy[7].numpy(), eager.x[7])
    assert len(pickle.dumps(lazy)) < 20_000  # DataLoader workers get the index, not the signals


def test_edf_annotations_are_indexed_a_chunk_of_records_at_a_time(edf_folder, monkeypatch):
    import polyjepa.timeseries.stream as stream

    monkeypatch.setattr(stream, "INDEX_BYTES", 1000)  # several records per chunk, many chunks per file
    np.testing.assert_array_equal(EdfEpochs(edf_folder, seconds=2.0).labels,
                                  load_edf_epochs(str(edf_folder), seconds=2.0).y)


def test_an_unreadable_edf_file_is_skipped_with_a_warning_naming_it(edf_folder):
    good = EdfEpochs(edf_folder, seconds=2.0)
    raw = (edf_folder / "S01.edf").read_bytes()
    (edf_folder / "S01.edf").write_bytes(raw[:len(raw) // 2])  # cut short
    (edf_folder / "S03.edf").write_bytes(b"nonsense")
    with pytest.warns(Warning, match="S01.edf") as record:
        lazy = EdfEpochs(edf_folder, seconds=2.0)
    assert any("S03.edf" in str(w.message) for w in record)
    assert [p.name for p in lazy.files] == ["S00.edf", "S02.edf"] and len(lazy.skipped) == 2
    keep = np.r_[0:15, 30:45]
    np.testing.assert_array_equal(lazy[np.arange(30)].numpy(), good[keep].numpy())
    with pytest.raises(UserError, match="S01.edf is truncated"):
        load_edf_epochs(str(edf_folder), seconds=2.0)  # the in-memory loader stops at it


def test_prepare_splits_and_normalises_streamed_epochs_as_in_memory(edf_folder):
    opts = {"seconds": 2.0}
    eager = prepare(DataConfig(source=str(edf_folder), loader="edf_epochs", test_size=0.3), options=dict(opts))
    lazy = prepare(DataConfig(source=str(edf_folder), loader="edf_epochs", test_size=0.3, stream=True),
                   options=dict(opts))
    assert isinstance(lazy.x_train, EdfEpochs) and lazy.x_train.shape == eager.x_train.shape
    np.testing.assert_array_equal(lazy.y_train, eager.y_train)
    np.testing.assert_array_equal(lazy.y_test, eager.y_test)
    np.testing.assert_allclose(lazy.mean, eager.mean, rtol=1e-9)
    np.testing.assert_allclose(lazy.std, eager.std, rtol=1e-9)
    np.testing.assert_allclose(lazy.x_train[np.arange(len(eager.x_train))].numpy(), eager.x_train, atol=1e-5)
    np.testing.assert_allclose(lazy.x_test[np.arange(len(eager.x_test))].numpy(), eager.x_test, atol=1e-5)
    assert lazy.meta == eager.meta


def identity_masker(batch_size, generator):
    import torch

    return torch.zeros(batch_size, 1, dtype=torch.long), torch.zeros(batch_size, 1, 1, dtype=torch.long)


def epoch_rows(source, reference, *, world_size, workers, batch_size=8, epoch=0, steps=None):
    """Per rank, the reference rows of every batch of one epoch (or of ``steps``), read through DataLoader workers."""
    out = []
    for rank in range(world_size):
        b = MaskedBatches(as_source(source), batch_size=batch_size, masker=identity_masker, seed=3, rank=rank,
                          world_size=world_size)
        span = steps or range(epoch * b.steps_per_epoch, (epoch + 1) * b.steps_per_epoch)
        loader = DataLoader(b, sampler=span, batch_size=None, num_workers=workers)
        out.append([[int(np.flatnonzero((reference == row).all(axis=(1, 2)))[0]) for row in batch["x"].numpy()]
                    for batch in loader])
    return out


def test_ranks_and_workers_cover_every_epoch_once_and_a_resume_continues_the_order(edf_folder):
    lazy = EdfEpochs(edf_folder, seconds=2.0).subset(np.arange(40))
    ref = lazy[np.arange(40)].numpy()
    for epoch in (0, 1):
        per_rank = epoch_rows(lazy, ref, world_size=2, workers=2, epoch=epoch)
        seen = [i for rank in per_rank for batch in rank for i in batch]
        assert sorted(seen) == list(range(40)) and all(len(b) == 4 for r in per_rank for b in r)
    assert epoch_rows(lazy, ref, world_size=2, workers=0) == epoch_rows(lazy, ref, world_size=2, workers=2)
    full = epoch_rows(lazy, ref, world_size=1, workers=2, steps=range(0, 8))[0]
    resumed = (epoch_rows(lazy, ref, world_size=1, workers=0, steps=range(0, 3))[0]
               + epoch_rows(lazy, ref, world_size=1, workers=2, steps=range(3, 8))[0])
    assert resumed == full


def test_a_memory_mapped_npy_gives_the_in_memory_series(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2, 50)).astype(np.float64)
    np.save(tmp_path / "s.npy", x)
    eager = load_series(str(tmp_path / "s.npy"))
    lazy = NpySeries(tmp_path / "s.npy")
    rows = np.array([29, 0, 5, 5, 12])
    np.testing.assert_array_equal(lazy[rows].numpy(), eager.x[rows])
    again = pickle.loads(pickle.dumps(lazy))  # after a read: a worker maps the file itself, gets no rows
    assert len(pickle.dumps(lazy)) < 2000 and again.shape == (30, 2, 50)
    np.testing.assert_array_equal(again[np.arange(30)].numpy(), eager.x)
    np.save(tmp_path / "u.npy", x[:, 0])  # (n, L): one channel
    np.testing.assert_array_equal(NpySeries(tmp_path / "u.npy", length=60)[np.arange(30)].numpy(),
                                  load_series(str(tmp_path / "u.npy"), length=60).x)  # NaN-padded as in memory
    eager_p = prepare(DataConfig(source=str(tmp_path / "s.npy"), loader="series"))
    lazy_p = prepare(DataConfig(source=str(tmp_path / "s.npy"), loader="series", stream=True))
    np.testing.assert_allclose(lazy_p.x_train[np.arange(30)].numpy(), eager_p.x_train, atol=1e-5)
    assert lazy_p.meta == eager_p.meta and len(lazy_p.x_test) == 0
    with pytest.raises(UserError, match="memory-maps an .npy file"):
        prepare(DataConfig(source="GunPoint", loader="series", stream=True))


def _losses(run):
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


TINY = ["encoder.depth=1", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2", "train.batch_size=8",
        "train.max_steps=4", "train.log_every=1", "train.monitor_every=0", "train.threads=1", "eval.baselines=false",
        "--no-progress"]


def test_pretrain_streams_edf_epochs_and_trains_as_the_in_memory_run(edf_folder, tmp_path):
    common = ["pretrain", "eegjepa", "--data", str(edf_folder), "data.seconds=2.0", "tokenizer.patch_size=16", *TINY]
    assert main([*common, "--out", str(tmp_path / "mem")]) == 0
    assert main([*common, "--out", str(tmp_path / "lazy"), "data.stream=true", "train.num_workers=1"]) == 0
    mem, lazy = _losses(tmp_path / "mem"), _losses(tmp_path / "lazy")
    assert len(mem) == len(lazy) == 4
    assert all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(mem, lazy)), (mem, lazy)
    summary = json.loads((tmp_path / "lazy" / "summary.json").read_text())
    assert summary["n_train"] == 31 and summary["n_test"] == 14 and summary["eval_sample"]["streamed"]
    assert "balanced_accuracy" in json.dumps(summary["probe"]) or "accuracy" in json.dumps(summary["probe"])
    assert main(["probe", str(tmp_path / "lazy")]) == 0


def test_streaming_options_the_lazy_form_lacks_is_one_clear_error(edf_folder, tmp_path, capsys):
    with pytest.raises(UserError, match="takes no option window"):
        prepare(DataConfig(source=str(edf_folder), loader="edf_epochs", stream=True), options={"window": 3})
    with pytest.raises(UserError, match="data.loader=interactions reads its data into memory"):
        prepare(DataConfig(source=str(edf_folder), loader="interactions", stream=True))


def test_chunked_channel_statistics_equal_the_whole_array_ones():
    from polyjepa.data.prepare import channel_stats
    from polyjepa.data.lazy import chunked_channel_stats

    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 3, 40)) * np.array([1.0, 1e3, 1e-3])[:, None] + np.array([5.0, -2e4, 0.0])[:, None]
    x[7, :, 30:] = np.nan  # padding
    want = channel_stats(x)
    for chunk in (1, 7, 50):
        got = chunked_channel_stats(x[i:i + chunk] for i in range(0, 50, chunk))
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10)
    with pytest.raises(UserError, match=r"channel\(s\) \[1\]"):
        bad = x.copy()
        bad[:, 1] = np.nan
        chunked_channel_stats([bad[:20], bad[20:]])
