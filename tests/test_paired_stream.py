"""The paired loader's lazy form (data.stream=true): side a memory-mapped, the in-memory loader's pairs, split,
tokens and values; training on it logs the in-memory run's losses; the evaluation's bounded sample; the errors."""
import csv
import importlib.util
import json
import pickle

import numpy as np
import pytest

from polyjepa.errors import UserError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tokenizers") is None,
                                reason="the text tower needs the optional 'tokenizers' package (extra 'text')")

WORDS = ["red", "blue", "green", "small", "large", "dog", "cat", "ball", "tree", "car"]


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))  # compressed members are inflated here


def _pairs_npz(path, *, n=40, images=None, compressed=False, split=True, **extra):
    """An .npz of n items with two captions each, labels of 3 classes and (optionally) a train/dev/test split."""
    rng = np.random.default_rng(0)
    cols = {"captions": np.array([[" ".join(rng.choice(WORDS, 4)) for _ in range(2)] for _ in range(n)]),
            "labels": np.arange(n) % 3, **extra}
    if images is not None:
        cols["images"] = images
    if split:
        cols["split"] = np.array(["train"] * (n - 12) + ["dev"] * 2 + ["test"] * 10)
    (np.savez_compressed if compressed else np.savez)(path, **cols)
    return str(path)


def _both(path, **options):
    from polyjepa.paired.data import load_pairs

    options = {"max_len": 6, "min_frequency": 1, **options}
    return load_pairs(path, **options), load_pairs(path, stream=True, **options)


def _check_same(mem, lazy):
    from polyjepa.paired.stream import PairedSideA

    assert isinstance(lazy.a, PairedSideA) and lazy.a.shape == mem.a.shape
    assert np.array_equal(lazy.test, mem.test) and np.array_equal(lazy.y, mem.y)
    assert np.array_equal(lazy.b, mem.b) and np.array_equal(lazy.texts, mem.texts)
    assert lazy.meta == mem.meta and lazy.side_a == mem.side_a
    assert np.array_equal(lazy.a[np.arange(len(mem.a))].numpy(), mem.a)     # the same float32 operations
    rows = np.random.default_rng(1).integers(0, len(mem.a), 25)           # shuffled, with repeats
    assert np.array_equal(lazy.a[rows].numpy(), mem.a[rows])
    assert np.array_equal(lazy.a[mem.test].numpy(), mem.a[mem.test])   # a mask selects items


@pytest.mark.parametrize("compressed", [False, True])
def test_lazy_images_give_the_in_memory_pairs(tmp_path, compressed):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    mem, lazy = _both(_pairs_npz(tmp_path / "ic.npz", images=nhwc, compressed=compressed))
    assert mem.a.shape == (38, 3, 8, 8) and mem.test.sum() == 10          # the dev rows are left out
    _check_same(mem, lazy)
    # the statistics are those of every item of the file (dev rows too), as the in-memory loader's
    x = nhwc.transpose(0, 3, 1, 2).astype(np.float64) / 255
    assert np.allclose(lazy.a.mean.ravel(), x.mean((0, 2, 3)), atol=1e-7)
    assert np.allclose(lazy.a.std.ravel(), x.std((0, 2, 3)) + 1e-6, atol=1e-7)
    kept = np.r_[0:28, 30:40]
    z = (x[kept] - x.mean((0, 2, 3))[:, None, None]) / (x.std((0, 2, 3)) + 1e-6)[:, None, None]
    assert np.allclose(mem.a, z, rtol=0, atol=1e-5)                     # the in-memory values, independently
    # grey (n, H, W) float images without a split column: the stratified test_size share
    grey = rng.normal(3.0, 2.0, (40, 6, 6))
    mem, lazy = _both(_pairs_npz(tmp_path / "g.npz", images=grey, compressed=compressed, split=False),
                      test_size=0.25, split_seed=3)
    assert mem.a.shape == (40, 1, 6, 6) and mem.test.sum() == 10
    _check_same(mem, lazy)


def test_lazy_vectors_and_the_source_pickles_without_its_map(tmp_path):
    feats = np.random.default_rng(2).normal(size=(40, 7))
    mem, lazy = _both(_pairs_npz(tmp_path / "v.npz", features=feats))
    _check_same(mem, lazy)
    assert np.array_equal(lazy.a[np.arange(38)].numpy(), feats[np.r_[0:28, 30:40]].astype(np.float32))
    from polyjepa.paired.run import train_arrays

    a, b, ids, y = train_arrays(lazy)
    blob = pickle.dumps(a)
    assert len(blob) < 4096                                      # the map is not pickled: a DataLoader worker maps
    again = pickle.loads(blob)
    assert np.array_equal(again[np.arange(len(again))].numpy(), mem.a[~mem.test])
    assert np.array_equal(ids, np.flatnonzero(~mem.test)) and np.array_equal(b, mem.b[~mem.test])


def test_statistics_of_a_sample_follow_the_in_memory_formula(tmp_path, monkeypatch):
    """Beyond STATS_ROWS items the statistics come from a random sample: the in-memory formula on those items."""
    from polyjepa.data.lazy import stats_sample
    from polyjepa.paired import stream

    images = np.random.default_rng(3).integers(0, 256, (40, 5, 5, 3), dtype=np.uint8)
    monkeypatch.setattr(stream, "STATS_ROWS", 9)
    monkeypatch.setattr(stream, "STATS_CHUNK", 4)
    _, lazy = _both(_pairs_npz(tmp_path / "s.npz", images=images), split_seed=5)
    pick = stats_sample(40, 9, 5)
    assert len(pick) == 9
    x = images[pick].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)) + 1e-6
    assert np.allclose(lazy.a.mean.ravel(), mean, atol=1e-6) and np.allclose(lazy.a.std.ravel(), std, atol=1e-6)
    first = lazy.a[np.arange(3)].numpy()
    raw = images[[0, 1, 2]].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    assert np.allclose(first, (raw - mean[:, None, None]) / std[:, None, None], atol=1e-5)


def test_evaluation_sample_is_bounded_stratified_and_exact_when_whole(tmp_path):
    from polyjepa.paired.run import evaluation_rows, format_paired_table, pairs_subset

    images = np.random.default_rng(4).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    mem, lazy = _both(_pairs_npz(tmp_path / "e.npz", images=images))
    assert evaluation_rows(mem, None, 1 << 30) == (None, None)          # pairs in memory are evaluated whole
    rows, note = evaluation_rows(lazy, None, 1 << 30)
    assert np.array_equal(rows, np.arange(38)) and note["train"] == 28 and note["test"] == 10
    whole = pairs_subset(lazy, rows)
    assert isinstance(whole.a, np.ndarray) and np.array_equal(whole.a, mem.a)
    assert np.array_equal(whole.b, mem.b) and np.array_equal(whole.test, mem.test)
    rows, note = evaluation_rows(lazy, 9, None, seed=0)
    assert note == {"train": 9, "test": 9, "of_train": 28, "of_test": 10, "streamed": True}
    part = pairs_subset(lazy, rows)
    assert part.test.sum() == 9 and np.bincount(part.y[~part.test]).tolist() == [3, 3, 3]   # stratified
    assert np.array_equal(part.a, mem.a[rows]) and np.array_equal(part.texts, mem.texts[rows])
    per = 4 * 3 * 8 * 8
    rows, note = evaluation_rows(lazy, None, 19 * per)                  # 19 items' bytes: both parts shrink
    assert note["train"] + note["test"] <= 19 and note["test"] >= 1 and note["max_bytes"] == 19 * per
    assert len(rows) == note["train"] + note["test"]
    with pytest.raises(UserError, match="eval.max_bytes"):
        evaluation_rows(lazy, None, 2 * per)
    summary = {"recipe": "r", "data": "e.npz", "n_train": 28, "n_test": 10, "side_a": "image", "eval_sample": note,
               "results": {}}
    assert f"stratified sample of {note['train']} train / {note['test']} test pairs" in format_paired_table(summary)


def test_pretrain_streamed_logs_the_in_memory_losses(tmp_path, capsys):
    from polyjepa.cli import main

    images = np.random.default_rng(5).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    src = _pairs_npz(tmp_path / "p.npz", images=images, compressed=True)
    common = ["train.max_steps=4", "train.threads=1", "train.batch_size=16", "train.log_every=1", "data.max_len=6",
              "data.vocab_size=60", "tower_a.dim=16", "tower_a.heads=2", "tower_b.dim=16", "tower_b.heads=2",
              "method.proj_dim=8", "--no-progress"]
    runs = {}
    for tag, extra in (("memory", []), ("lazy", ["data.stream=true", "train.num_workers=1"])):
        code = main(["pretrain", "clip-digits", "--data", src, "--out", str(tmp_path / tag), *common, *extra])
        assert code in (None, 0)
        losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / tag / "metrics.csv")) if r.get("loss")]
        runs[tag] = (losses, json.loads((tmp_path / tag / "summary.json").read_text()))
    (mem_losses, mem), (lazy_losses, lazy) = runs["memory"], runs["lazy"]
    assert len(mem_losses) == 4 and np.allclose(lazy_losses, mem_losses, rtol=0, atol=1e-4)
    assert lazy["eval_sample"] == {"train": 28, "test": 10, "of_train": 28, "of_test": 10, "streamed": True}
    assert "eval_sample" not in mem and lazy["n_train"] == mem["n_train"] == 28
    for name, row in mem["results"].items():                     # the whole split: the in-memory evaluation
        for key, value in row.items():
            assert lazy["results"][name][key] == pytest.approx(value, abs=1e-6), (name, key)
    assert "stratified sample" not in capsys.readouterr().out
    from polyjepa.paired.run import embed_side, load_paired_run

    method, pairs = load_paired_run(tmp_path / "lazy")                  # the run's pairs, side a still lazy
    za = embed_side(method, pairs.a[pairs.test][:5], "a")
    assert not isinstance(pairs.a, np.ndarray) and za.shape == (5, 8)


def test_stream_errors_are_one_line(tmp_path):
    from polyjepa.paired.data import load_pairs
    from polyjepa.runner import pretrain

    with pytest.raises(UserError, match="bundled digits pairs are read into memory: drop data.stream"):
        pretrain("clip-digits", out=str(tmp_path / "a"), overrides=["data.stream=true"], progress=False)
    graph = _pairs_npz(tmp_path / "g.npz", split=False, edge_index=np.array([[0, 1, 2], [1, 2, 3]]))
    with pytest.raises(UserError, match=r"graph's nodes \(edge_index\), which are read into memory"):
        load_pairs(graph, stream=True)
    with pytest.raises(UserError, match="TI-JEPA reads its image-caption pairs into memory"):
        pretrain("tijepa-flickr8k", data=graph, out=str(tmp_path / "c"), overrides=["data.stream=true"],
                 progress=False)
    bad = np.random.default_rng(0).normal(size=(40, 4))
    bad[[3, 31]] = np.nan
    nan = _pairs_npz(tmp_path / "nan.npz", features=bad)
    with pytest.raises(UserError, match="NaN or inf"):           # the in-memory loader refuses it as it loads
        load_pairs(nan, max_len=6, min_frequency=1)
    lazy = load_pairs(nan, max_len=6, min_frequency=1, stream=True)   # the lazy form when a batch reads it
    with pytest.raises(UserError, match=r"NaN or inf values .* its rows \[3, 31\]"):   # the file's rows
        lazy.a[np.arange(38)]
    short = _pairs_npz(tmp_path / "short.npz", split=False, features=bad[:30])
    with pytest.raises(UserError, match="side a has 30 items but side b has 40 texts"):
        load_pairs(short, stream=True)
