"""The av_clips loader's lazy form (data.stream=true): the in-memory loader's clips, spectrograms, split and labels
read from a cache each video is decoded into once; a second opening decodes nothing; training on it logs the
in-memory run's losses; an unreadable video is the in-memory loader's error."""
from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

av = pytest.importorskip("av", reason="the video + audio loader needs PyAV (pip install 'polyjepa[video]')")

from polyjepa.errors import UserError  # noqa: E402
from polyjepa.paired import clips as clips_mod  # noqa: E402
from polyjepa.paired.av_stream import AVClipSource  # noqa: E402
from polyjepa.paired.clips import load_av_pairs  # noqa: E402

from .test_paired_clips import RATE, _write  # noqa: E402

OPTS = dict(frames=4, frame_step=2, size=16, n_mels=16, test_size=2, split_seed=1)


def _folder(root, n=5):
    """n videos in two class folders (one with its audio in a file beside it, one too short for a clip)."""
    for k in range(n):
        sub = root / ("left" if k % 2 else "right")
        sub.mkdir(parents=True, exist_ok=True)
        if k == 1:
            _write(sub / f"v{k}.mkv", n_frames=24, shift=3 * k, audio=False, audio_file=sub / f"v{k}.wav")
        else:
            _write(sub / f"v{k}.mkv", n_frames=6 if k == 3 else 16 + 4 * k, shift=3 * k)
    return root


def _cache_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache" / "av_clips").iterdir())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "av_clips"


def test_lazy_pairs_equal_the_in_memory_ones(tmp_path, cache):
    import torch

    from polyjepa.audio.melspec import log_mel

    src = _folder(tmp_path / "clips")
    mem = load_av_pairs(str(src), **OPTS)
    lazy = load_av_pairs(str(src), **OPTS, stream=True)
    assert isinstance(lazy.a, AVClipSource) and lazy.a.shape == mem.a.shape
    n = len(mem.a)
    assert n == 3 + 0 + 2 + 3 + 4      # left/v1, left/v3, right/v0, v2, v4: 24, 6, 16, 24, 32 frames, 8 per clip
    np.testing.assert_array_equal(lazy.a[np.arange(n)].numpy(), mem.a)             # to the bit
    order = np.random.default_rng(0).permutation(n)
    np.testing.assert_array_equal(lazy.a[torch.from_numpy(order)].numpy(), mem.a[order])
    np.testing.assert_array_equal(lazy.a[mem.test].numpy(), mem.a[mem.test])       # a mask selects rows
    np.testing.assert_array_equal(lazy.a.subset(order[:3])[np.arange(3)].numpy(), mem.a[order[:3]])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy.a))[5].numpy(), mem.a[5])
    for key in ("b", "test", "y"):
        np.testing.assert_array_equal(getattr(lazy, key), getattr(mem, key))
    assert lazy.meta == mem.meta and (lazy.side_a, lazy.side_b) == ("video", "audio")
    assert sorted(set(mem.y.tolist())) == [0, 1] and 0 < mem.test.sum() < n

    # the values against an independent computation: every file decoded and cut, the pixels / 255 standardised
    # with the training clips' per-channel mean and std, the log-mels of all clips' audio at once, standardised
    files = sorted(p for p in src.rglob("*.mkv"))
    raw, waves, owner = [], [], []
    for i, f in enumerate(files):
        beside = f.with_suffix(".wav")
        d = clips_mod.decode_file(f, beside if beside.exists() else None, size=16, sample_rate=RATE)
        for c, w in clips_mod.cut_clips(d, frames=4, frame_step=2):
            raw.append(c)
            waves.append(w)
            owner.append(i)
    x = np.stack(raw).transpose(0, 4, 1, 2, 3).astype(np.float64) / 255
    train = ~mem.test
    mean = x[train].mean(axis=(0, 2, 3, 4), keepdims=True)
    std = x[train].std(axis=(0, 2, 3, 4), keepdims=True) + 1e-6
    np.testing.assert_allclose(mem.a, (x - mean) / std, rtol=0, atol=2e-6)     # exact sums: float32 rounding
    mel = log_mel(torch.from_numpy(np.stack(waves)), RATE, n_mels=16).double().numpy()[:, None, None]
    expect = (mel - mel[train].mean()) / (mel[train].std() + 1e-6)
    np.testing.assert_allclose(mem.b, expect, rtol=0, atol=2e-6)
    assert abs(mem.b[train].mean()) < 1e-5 and abs(mem.b[train].std() - 1) < 1e-4

    # the cache: one entry per file (the short one with no clips has its record only), nothing left half-written
    names = _cache_files(tmp_path)
    assert len([m for m in names if m.endswith(".json")]) == 5 and not any(m.startswith(".") for m in names)
    assert len([m for m in names if m.endswith(".mel.npy")]) == 4
    clip_files = [m for m in names if m.endswith(".npy") and not m.endswith(".mel.npy")]
    assert len(clip_files) == 4 and all(np.load(cache / m).dtype == np.uint8 for m in clip_files)


def test_a_second_opening_decodes_nothing(tmp_path, cache, monkeypatch):
    src = _folder(tmp_path / "clips", n=3)
    first = load_av_pairs(str(src), **OPTS, stream=True)
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args[0])
        raise AssertionError(f"decoded {args[0]} again")

    monkeypatch.setattr(clips_mod, "decode_file", refuse)
    again = load_av_pairs(str(src), **OPTS, stream=True)
    assert not calls and {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    n = len(first.a)
    np.testing.assert_array_equal(again.a[np.arange(n)].numpy(), first.a[np.arange(n)].numpy())
    np.testing.assert_array_equal(again.b, first.b)
    np.testing.assert_array_equal(again.test, first.test)
    # other decoding options, or a file that changed, are decoded anew
    with pytest.raises(AssertionError, match="decoded"):
        load_av_pairs(str(src), **{**OPTS, "size": 8}, stream=True)
    _write(src / "right" / "v0.mkv", n_frames=20, shift=7)
    calls.clear()
    with pytest.raises(AssertionError, match="v0.mkv"):
        load_av_pairs(str(src), **OPTS, stream=True)
    assert len(calls) == 1
    # an entry whose record was lost is decoded again rather than read half
    monkeypatch.undo()
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    record = next(p for p in sorted(cache.glob("v2-*.json")))
    record.unlink()
    load_av_pairs(str(src), **OPTS, stream=True)
    assert record.exists()


def test_an_unreadable_video_is_the_in_memory_error(tmp_path, cache):
    src = _folder(tmp_path / "clips", n=2)
    (src / "right" / "broken.mp4").write_bytes(b"this is not a video" * 50)
    with pytest.raises(UserError) as mem:
        load_av_pairs(str(src), **OPTS)
    with pytest.raises(UserError) as lazy:
        load_av_pairs(str(src), **OPTS, stream=True)
    assert str(lazy.value) == str(mem.value) and "broken.mp4" in str(lazy.value) and "\n" not in str(lazy.value)
    assert not any(p.name.startswith(".") for p in cache.iterdir())     # no temporary file left behind


def test_pretrain_streamed_logs_the_in_memory_losses(tmp_path, cache):
    from polyjepa.cli import main
    from polyjepa.paired.run import embed_side, load_paired_run

    src = tmp_path / "clips"
    src.mkdir()
    for k in range(6):
        _write(src / f"c{k}.mkv", n_frames=24, shift=4 * k)
    common = ["train.max_steps=3", "train.threads=1", "train.batch_size=6", "train.log_every=1", "data.frames=4",
              "data.size=16", "data.n_mels=16", "data.test_size=2", "tower_a.dim=16", "tower_a.depth=1",
              "tower_a.heads=2", "tower_b.dim=16", "tower_b.depth=1", "tower_b.heads=2", "method.proj_dim=8",
              "--no-progress"]
    runs = {}
    # one DataLoader worker each: with workers the loop runs numpy's BLAS on one thread, and the small CCA
    # baseline moves by a test pair between one and two threads
    for tag, extra in (("memory", ["train.num_workers=1"]), ("lazy", ["data.stream=true", "train.num_workers=1"])):
        code = main(["pretrain", "clip-av", "--data", str(src), "--out", str(tmp_path / tag), *common, *extra])
        assert code in (None, 0)
        losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / tag / "metrics.csv")) if r.get("loss")]
        runs[tag] = (losses, json.loads((tmp_path / tag / "summary.json").read_text()))
    (mem_losses, mem), (lazy_losses, lazy) = runs["memory"], runs["lazy"]
    assert len(mem_losses) == 3 and np.allclose(lazy_losses, mem_losses, rtol=0, atol=1e-4)
    assert lazy["eval_sample"] == {"train": 24, "test": 12, "of_train": 24, "of_test": 12, "streamed": True}
    assert "eval_sample" not in mem and lazy["n_train"] == mem["n_train"] == 24
    for name, row in mem["results"].items():                    # the whole split: the in-memory evaluation
        for key, value in row.items():
            assert lazy["results"][name][key] == pytest.approx(value, abs=1e-6), (name, key)
    method, pairs = load_paired_run(tmp_path / "lazy")                # reopened from the cache, side a lazy
    assert isinstance(pairs.a, AVClipSource)
    assert embed_side(method, pairs.a[pairs.test][:4], "a").shape == (4, 8)
