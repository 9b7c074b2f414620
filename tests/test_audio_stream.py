"""A folder of audio files read lazily: the spectrograms, labels, standardisation and split of the in-memory audio
loader; every clip once per epoch across ranks and DataLoader workers; a file whose header cannot be read skipped
with a warning naming it; a pretrain run from the command line."""
import csv
import json
import pickle

import numpy as np
import pytest
from torch.utils.data import DataLoader

from polyjepa.audio.data import load_audio
from polyjepa.cli import main
from polyjepa.config import DataConfig
from polyjepa.data.batches import MaskedBatches
from polyjepa.data.prepare import prepare
from polyjepa.data.stream import as_source
from polyjepa.errors import UserError

from .test_audio_data import RATE, tone_clips

sf = pytest.importorskip("soundfile")
from polyjepa.audio.stream import AudioFolderStream  # noqa: E402

OPTS = {"n_mels": 16, "frames": 32}


@pytest.fixture
def clips_folder(tmp_path, monkeypatch):
    """24 tone clips of 0.2-0.9 s at 8 kHz, one sub-folder per pitch, as .wav (16-bit) and .flac."""
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    clips, y = tone_clips(24)
    root = tmp_path / "clips"
    for i, (c, label) in enumerate(zip(clips, y)):
        (root / f"p{label}").mkdir(parents=True, exist_ok=True)
        sf.write(root / f"p{label}" / f"{i:02d}.{'flac' if i % 4 == 0 else 'wav'}", c, RATE)
    return root


@pytest.mark.parametrize("crop", ["center", "stretch"])
def test_lazy_spectrograms_equal_the_in_memory_loader(clips_folder, crop, monkeypatch):
    eager = load_audio(str(clips_folder), crop=crop, **OPTS)
    lazy = AudioFolderStream(clips_folder, crop=crop, **OPTS)
    assert lazy.shape == eager.x.shape == (24, 1, 16, 32)
    np.testing.assert_array_equal(lazy[np.arange(24)].numpy(), eager.x)  # same clips, order, values
    np.testing.assert_array_equal(lazy.labels, eager.y)
    assert {k: lazy.fitted_meta()[k] for k in ("sample_rate", "mean", "std", "valid_fraction")} == \
           {k: eager.meta[k] for k in ("sample_rate", "mean", "std", "valid_fraction")}
    rows = np.array([23, 0, 11, 0])
    np.testing.assert_array_equal(lazy[rows].numpy(), eager.x[rows])
    assert len(pickle.dumps(lazy)) < 20_000  # workers get the file list, not waveforms
    # a trained run's statistics are reused, not re-estimated
    fitted = AudioFolderStream(clips_folder, crop=crop, fitted={"sample_rate": RATE, "mean": 1.0, "std": 2.0}, **OPTS)
    assert (fitted.mean, fitted.std) == (1.0, 2.0)
    # standardisation from a sample of clips when there are more than stats_clips
    sampled = AudioFolderStream(clips_folder, crop=crop, stats_clips=10, **OPTS)
    assert sampled.mean != lazy.mean and abs(sampled.mean - lazy.mean) < 0.5 * lazy.std
    # the clips were decoded once, into the cache: a second opening decodes nothing
    assert lazy.cache_file.exists() and lazy.cache_file.stat().st_size < 24 * 17 * 32 * 4 + 1000
    import polyjepa.audio.stream as stream

    monkeypatch.setattr(stream, "read_audio", lambda *a, **k: pytest.fail("decoded again"))
    np.testing.assert_array_equal(AudioFolderStream(clips_folder, crop=crop, **OPTS)[rows].numpy(), eager.x[rows])


def test_ranks_and_workers_cover_every_clip_once_per_epoch(clips_folder):
    lazy = AudioFolderStream(clips_folder, **OPTS)
    ref = lazy[np.arange(24)].numpy()

    def rows(world_size, workers, epoch):
        out = []
        for rank in range(world_size):
            b = MaskedBatches(as_source(lazy), batch_size=8, make_batch=lambda x, g, p: {"x": x}, seed=5, rank=rank,
                              world_size=world_size)
            steps = range(epoch * b.steps_per_epoch, (epoch + 1) * b.steps_per_epoch)
            for batch in DataLoader(b, sampler=steps, batch_size=None, num_workers=workers):
                out.append([int(np.flatnonzero((ref == r).all(axis=(1, 2, 3)))[0]) for r in batch["x"].numpy()])
        return out

    for epoch in (0, 1):
        seen = rows(2, 2, epoch)
        assert sorted(i for b in seen for i in b) == list(range(24)) and all(len(b) == 4 for b in seen)
    assert rows(2, 0, 0) == rows(2, 2, 0)


def test_an_unreadable_audio_file_is_skipped_and_an_interrupted_cache_is_not_kept(clips_folder, tmp_path, monkeypatch):
    (clips_folder / "p1" / "99.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.warns(Warning, match="99.wav"):
        lazy = AudioFolderStream(clips_folder, **OPTS)
    assert len(lazy) == 24 and lazy.skipped == [str(clips_folder / "p1" / "99.wav")]
    with pytest.raises(UserError, match="cannot read audio file"):
        load_audio(str(clips_folder), **OPTS)  # the in-memory loader stops at it
    with pytest.raises(UserError, match="reads a folder of audio files"):
        AudioFolderStream(clips_folder / "p1" / "01.wav", **OPTS)
    import polyjepa.audio.stream as stream

    real, calls = stream.read_audio, {"n": 0}

    def failing(path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise UserError(f"cannot read audio file {path}: damaged")
        return real(path)

    monkeypatch.setattr(stream, "read_audio", failing)
    with pytest.raises(UserError, match="damaged"), pytest.warns(Warning, match="99.wav"):
        AudioFolderStream(clips_folder, cache=tmp_path / "c2", **OPTS)
    assert list((tmp_path / "c2").iterdir()) == []  # no half-written cache is left to be read back


def test_prepare_splits_streamed_clips_as_in_memory(clips_folder):
    opts = {**OPTS, "crop": "stretch"}
    eager = prepare(DataConfig(source=str(clips_folder), loader="audio", normalize="none"), options=dict(opts))
    lazy = prepare(DataConfig(source=str(clips_folder), loader="audio", normalize="none", stream=True),
                   options=dict(opts))
    assert isinstance(lazy.x_train, AudioFolderStream)
    np.testing.assert_array_equal(lazy.y_train, eager.y_train)
    np.testing.assert_array_equal(lazy.y_test, eager.y_test)
    np.testing.assert_array_equal(lazy.x_train[np.arange(len(eager.x_train))].numpy(), eager.x_train)
    np.testing.assert_array_equal(lazy.x_test[np.arange(len(eager.x_test))].numpy(), eager.x_test)
    assert lazy.meta == eager.meta
    # data.normalize=channel standardises once more, as in memory
    eager_c = prepare(DataConfig(source=str(clips_folder), loader="audio"), options=dict(opts))
    lazy_c = prepare(DataConfig(source=str(clips_folder), loader="audio", stream=True), options=dict(opts))
    np.testing.assert_allclose(lazy_c.x_train[np.arange(len(eager_c.x_train))].numpy(), eager_c.x_train, atol=1e-5)


def _losses(run):
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


@pytest.mark.slow  # two pretrain runs; the EDF one in tests/test_series_stream.py runs by default
def test_pretrain_streams_a_folder_of_clips_and_trains_as_the_in_memory_run(clips_folder, tmp_path):
    common = ["pretrain", "ajepa", "--data", str(clips_folder), "data.n_mels=16", "data.frames=32",
              "tokenizer.patch_size=[4,4]", "encoder.depth=1", "predictor.dim=32", "predictor.depth=1",
              "predictor.heads=2", "train.batch_size=8", "train.max_steps=3", "train.max_epochs=null",
              "train.log_every=1", "train.monitor_every=0", "train.threads=1", "eval.baselines=false",
              "masker.block.n_targets=2", "masker.tf.n_targets=1", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "mem")]) == 0
    assert main([*common, "--out", str(tmp_path / "lazy"), "data.stream=true", "train.num_workers=1"]) == 0
    mem, lazy = _losses(tmp_path / "mem"), _losses(tmp_path / "lazy")
    assert len(mem) == len(lazy) == 3
    assert all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(mem, lazy)), (mem, lazy)
    summary = json.loads((tmp_path / "lazy" / "summary.json").read_text())
    assert summary["n_train"] == 19 and summary["n_test"] == 5 and summary["eval_sample"]["streamed"]
    assert main(["probe", str(tmp_path / "lazy")]) == 0
