"""data.stream=true for points, volumes and image .npy/.npz files: the lazy sources give the in-memory loaders'
samples, labels and official split; bad input is one clear error; a pretrain run streams end to end."""
import json

import numpy as np
import pytest

from polyjepa.cli import main
from polyjepa.config import DataConfig
from polyjepa.data.prepare import prepare
from polyjepa.errors import UserError
from polyjepa.points.data import load_points
from polyjepa.points.stream import open_points
from polyjepa.volumes.run import load_volume_set
from polyjepa.volumes.stream import open_volume_set


def _all(source):
    return source[np.arange(len(source))].numpy()


def voxel_grids(n, side=12, seed=0, empty=()):
    """Boxes of random extent (label: which axis is longest) in (n, side, side, side) uint8 grids."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, side, side, side), np.uint8)
    y = np.zeros(n, np.int64)
    for i in range(n):
        lo = rng.integers(0, side // 3, 3)
        hi = lo + rng.integers(2, side - side // 3, 3)
        x[i, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
        y[i] = int(np.argmax(hi - lo))
    x[list(empty)] = 0
    return x, y


@pytest.fixture(params=["stored", "compressed"])
def grid_npz(request, tmp_path):
    x, y = voxel_grids(30, empty=(3, 17))
    xt, yt = voxel_grids(12, seed=1, empty=(5,))
    path = tmp_path / "grids.npz"
    (np.savez if request.param == "stored" else np.savez_compressed)(path, X_train=x, y_train=y, X_test=xt,
                                                                      y_test=yt)
    return path


def test_points_from_voxel_grids_equal_the_in_memory_ones_and_leave_out_empty_grids(grid_npz, monkeypatch, tmp_path):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    mem = load_points(str(grid_npz), points=40)
    lazy = open_points(grid_npz, points=40)
    assert lazy.meta == mem.meta == {"dropped_empty": {"train": 2, "test": 1}}
    test = lazy.test_rows
    assert len(test) == len(mem.x_test) == 11 and len(lazy) - len(test) == len(mem.x) == 28
    train = np.setdiff1d(np.arange(len(lazy)), test)
    np.testing.assert_allclose(_all(lazy.subset(train)), mem.x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_all(lazy.subset(test)), mem.x_test, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(lazy.labels[train], mem.y)
    np.testing.assert_array_equal(lazy.labels[test], mem.y_test)
    # a sample read alone, or in a shuffled batch with a repeat, is the same cloud
    pick = np.array([7, 2, 7, 30, 0])
    np.testing.assert_allclose(lazy[pick].numpy(), np.concatenate([mem.x, mem.x_test])[pick], atol=1e-6)
    np.testing.assert_allclose(lazy[5].numpy(), mem.x[5], atol=1e-6)
    # another seed draws other points; the surface flag changes them
    assert not np.allclose(_all(open_points(grid_npz, points=40, seed=1)), _all(lazy))
    np.testing.assert_allclose(_all(open_points(grid_npz, points=40, surface=False).subset(train)),
                               load_points(str(grid_npz), points=40, surface=False).x, atol=1e-6)


def test_prepare_streams_points_with_the_in_memory_split_and_values(grid_npz, monkeypatch, tmp_path):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    cfg = DataConfig(source=str(grid_npz), loader="points", normalize="none", max_samples=20)
    mem = prepare(cfg, None, {"points": 32})
    lazy = prepare(DataConfig(**{**cfg.__dict__, "stream": True}), None, {"points": 32})
    assert len(lazy.x_train) == len(mem.x_train) == 20 and len(lazy.x_test) == len(mem.x_test) == 11
    np.testing.assert_array_equal(lazy.y_train, mem.y_train)
    np.testing.assert_array_equal(lazy.y_test, mem.y_test)
    np.testing.assert_allclose(_all(lazy.x_train), mem.x_train, atol=1e-6)
    np.testing.assert_allclose(_all(lazy.x_test), mem.x_test, atol=1e-6)
    assert lazy.meta == mem.meta


def test_points_from_clouds_npy_and_a_folder_equal_the_in_memory_ones(tmp_path):
    rng = np.random.default_rng(0)
    clouds = rng.normal(size=(9, 50, 3)) * rng.uniform(0.5, 3, (9, 1, 1))
    np.savez(tmp_path / "c.npz", points=clouds, labels=np.arange(9) % 3)
    for points in (50, 32, 80):  # as stored, subsampled, repeated
        mem, lazy = load_points(str(tmp_path / "c.npz"), points=points), open_points(tmp_path / "c.npz", points=points)
        np.testing.assert_allclose(_all(lazy), mem.x, atol=1e-6)
        np.testing.assert_array_equal(lazy.labels, mem.y)
        assert getattr(lazy, "test_rows", None) is None
    np.save(tmp_path / "g.npy", voxel_grids(6, empty=(1,))[0])
    mem, lazy = load_points(str(tmp_path / "g.npy"), points=24), open_points(tmp_path / "g.npy", points=24)
    assert lazy.meta == mem.meta == {"dropped_empty": 1} and lazy.labels is None
    np.testing.assert_allclose(_all(lazy), mem.x, atol=1e-6)
    root = tmp_path / "shapes"
    for i, c in enumerate(clouds):
        part = root / f"class{i % 2}" / ("test" if i >= 6 else "train")
        part.mkdir(parents=True, exist_ok=True)
        np.save(part / f"{i}.npy", c)
    (root / "class1" / "train" / "mesh.off").write_text("OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n")
    mem, lazy = load_points(str(root), points=40, min_points=4), open_points(root, points=40, min_points=4)
    test = lazy.test_rows
    train = np.setdiff1d(np.arange(len(lazy)), test)
    np.testing.assert_allclose(_all(lazy.subset(train)), mem.x, atol=1e-6)
    np.testing.assert_allclose(_all(lazy.subset(test)), mem.x_test, atol=1e-6)
    np.testing.assert_array_equal(lazy.labels[train], mem.y)
    np.testing.assert_array_equal(lazy.labels[test], mem.y_test)
    assert lazy.meta == mem.meta


def test_bad_points_input_is_one_clear_error(tmp_path):
    np.savez(tmp_path / "nokey.npz", values=np.zeros((3, 10, 3)))
    with pytest.raises(UserError, match=r"no point clouds: store them under one of points"):
        open_points(tmp_path / "nokey.npz")
    np.save(tmp_path / "obj.npy", np.array([np.zeros((3, 3)), np.zeros((4, 3))], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=r"cannot memory-map .*obj.npy"):
        open_points(tmp_path / "obj.npy")
    np.savez(tmp_path / "objz.npz", points=np.array([np.zeros((3, 3)), np.zeros((4, 3))], dtype=object))
    with pytest.raises(UserError, match="holds Python objects"):
        open_points(tmp_path / "objz.npz")
    np.savez(tmp_path / "shape.npz", points=np.zeros((4, 10, 2)))
    with pytest.raises(UserError, match=r"has shape \(4, 10, 2\): point clouds must be \(n, points, 3\)"):
        open_points(tmp_path / "shape.npz")
    np.savez(tmp_path / "empty.npz", X_train=np.zeros((3, 4, 4, 4)), X_test=np.ones((2, 4, 4, 4)))
    with pytest.raises(UserError, match="every voxel grid is empty"):
        open_points(tmp_path / "empty.npz")
    bad = np.random.default_rng(0).normal(size=(5, 40, 3))
    bad[3, 2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    lazy = open_points(tmp_path / "nan.npy", points=40)
    lazy[np.array([0, 1])]
    with pytest.raises(UserError, match=r"NaN or inf coordinates in clouds \[3\]"):
        lazy[np.array([2, 3])]
    with pytest.raises(UserError, match="takes no option bogus"):
        prepare(DataConfig(source=str(tmp_path / "nan.npy"), loader="points", stream=True), None, {"bogus": 1})


def volume_npz(path, n=20, side=8, seed=0, layout=("X_train", "y_train", "X_test", "y_test"), dtype=np.int32):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.random((n, side, side, side)) * (1 + y[:, None, None, None]) * 70).astype(dtype)
    np.savez(path, **{layout[0]: x, layout[1]: y, layout[2]: x[:7] // 2, layout[3]: y[:7]})
    return path


@pytest.mark.parametrize("factor,max_train", [(1, None), (2, 12), (4, 0)])
def test_volumes_equal_the_in_memory_ones(tmp_path, factor, max_train):
    path = volume_npz(tmp_path / "v.npz")
    mem = load_volume_set(str(path), factor=factor, max_train=max_train)
    lazy = open_volume_set(path, factor=factor, max_train=max_train)
    test = lazy.test_rows
    train = np.setdiff1d(np.arange(len(lazy)), test)
    assert lazy.sample_shape == mem.x.shape[1:] and len(train) == len(mem.x) and len(test) == len(mem.x_test) == 7
    if len(train):
        np.testing.assert_allclose(_all(lazy.subset(train)), mem.x, rtol=1e-6, atol=0)
    np.testing.assert_allclose(_all(lazy.subset(test)), mem.x_test, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(lazy.labels[train], mem.y)
    np.testing.assert_array_equal(lazy.labels[test], mem.y_test)


def test_medmnist_volumes_and_bad_volume_input(tmp_path):
    layout = ("train_images", "train_labels", "test_images", "test_labels")
    path = volume_npz(tmp_path / "m.npz", layout=layout, dtype=np.float64)
    mem, lazy = load_volume_set(str(path)), open_volume_set(path)
    np.testing.assert_allclose(_all(lazy)[:20], mem.x, rtol=1e-6)
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 4, 4, 4)))
    with pytest.raises(UserError, match="expected X_train, y_train, X_test, y_test"):
        open_volume_set(tmp_path / "wrong.npz")
    np.savez(tmp_path / "flat.npz", X_train=np.zeros((2, 4, 4)), y_train=[0, 1], X_test=np.zeros((2, 4, 4)),
             y_test=[0, 1])
    with pytest.raises(UserError, match=r"must be an \(N, D, H, W\) array .* got shape \(2, 4, 4\)"):
        open_volume_set(tmp_path / "flat.npz")
    x = np.ones((2, 4, 4, 4))
    x[1, 0, 0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", X_train=x, y_train=[0, 1], X_test=x[:1] * 0, y_test=[0])
    with pytest.raises(UserError, match="hold NaN or inf"):
        open_volume_set(tmp_path / "inf.npz")
    with pytest.raises(UserError, match="not multiples of the downsampling factor 3"):
        open_volume_set(volume_npz(tmp_path / "v.npz"), factor=3)


def _image_arrays(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (24, 9, 10, 3), dtype=np.uint8)
    np.save(tmp_path / "nhwc.npy", nhwc)
    split = np.array(["train", "test", "val"])[np.arange(24) % 3]
    np.savez(tmp_path / "split.npz", x=rng.normal(size=(24, 1, 8, 8)).astype(np.float64),
             labels=np.array(["cat", "dog"])[np.arange(24) % 2], split=split)
    np.savez_compressed(tmp_path / "bits.npz", images=rng.integers(0, 2, (24, 6, 6)).astype(np.int64),
                        y=np.arange(24) % 2)
    return ["nhwc.npy", "split.npz", "bits.npz"]


@pytest.mark.parametrize("size", [None, 6])
def test_images_from_npy_and_npz_equal_the_in_memory_ones(tmp_path, monkeypatch, size):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    for name in _image_arrays(tmp_path):
        cfg = DataConfig(source=str(tmp_path / name), max_samples=16 if name == "bits.npz" else None)
        opts = {} if size is None else {"size": size}
        mem = prepare(cfg, None, opts)
        lazy = prepare(DataConfig(**{**cfg.__dict__, "stream": True}), None, opts)
        assert lazy.x_train.shape == mem.x_train.shape and lazy.x_test.shape == mem.x_test.shape, name
        np.testing.assert_allclose(_all(lazy.x_train), mem.x_train, rtol=1e-5, atol=1e-5)
        if len(mem.x_test):
            np.testing.assert_allclose(_all(lazy.x_test), mem.x_test, rtol=1e-5, atol=1e-5)
        for a, b in ((lazy.y_train, mem.y_train), (lazy.y_test, mem.y_test)):
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b))
        np.testing.assert_allclose(lazy.mean, mem.mean, rtol=1e-4)
    assert len(prepare(DataConfig(source=str(tmp_path / "split.npz"), stream=True)).x_test) == 8  # official split


def test_bad_image_arrays_are_one_clear_error(tmp_path):
    np.savez(tmp_path / "nokey.npz", pixels=np.zeros((3, 4, 4)))
    with pytest.raises(UserError, match="no images: store them under one of images"):
        prepare(DataConfig(source=str(tmp_path / "nokey.npz"), stream=True))
    np.save(tmp_path / "flat.npy", np.zeros((3, 16)))
    with pytest.raises(UserError, match=r"has shape \(3, 16\): images must be \(n, H, W\)"):
        prepare(DataConfig(source=str(tmp_path / "flat.npy"), stream=True))
    np.savez(tmp_path / "obj.npz", x=np.array([np.zeros((2, 2)), np.zeros((3, 3))], dtype=object))
    with pytest.raises(UserError, match="holds Python objects"):
        prepare(DataConfig(source=str(tmp_path / "obj.npz"), stream=True))
    x = np.zeros((4, 1, 3, 3), np.float32)
    x[2, 0, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    src = prepare(DataConfig(source=str(tmp_path / "nan.npy"), stream=True, normalize="none")).x_train
    with pytest.raises(UserError, match=r"NaN or inf in images \[2\]"):
        src[np.arange(4)]


def test_pretrain_streams_points_images_and_volumes_end_to_end(tmp_path, monkeypatch):
    from polyjepa.runner import pretrain

    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    x, y = voxel_grids(30, empty=(3,))
    np.savez(tmp_path / "g.npz", X_train=x[:20], y_train=y[:20], X_test=x[20:], y_test=y[20:])
    small = ["data.points=32", "tokenizer.n_groups=4", "tokenizer.group_size=8", "tokenizer.widths=[16,16,32]",
             "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "predictor.dim=16", "predictor.depth=1",
             "predictor.heads=2", "masker.n_targets=1", "train.batch_size=8", "train.max_steps=2",
             "train.log_every=1", "train.monitor_every=0", "train.threads=1", "eval.baselines=false", "--no-progress"]
    assert main(["pretrain", "pointjepa", "--data", str(tmp_path / "g.npz"), "--out", str(tmp_path / "p"),
                 "data.stream=true", *small]) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["n_train"] == 19 and summary["n_test"] == 10
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "digits.npz", images=(d.images[:120] * 16).astype(np.uint8), labels=d.target[:120])
    tiny = ["encoder.size=micro", "encoder.depth=1", "predictor.dim=16", "predictor.depth=1", "predictor.heads=2",
            "train.batch_size=16", "train.max_steps=2", "train.monitor_every=0", "train.threads=1",
            "eval.baselines=false", "--no-progress"]
    assert main(["pretrain", "ijepa-digits", "--data", str(tmp_path / "digits.npz"), "--out", str(tmp_path / "i"),
                 "data.stream=true", *tiny]) == 0
    summary = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert summary["n_train"] == 96 and summary["n_test"] == 24
    small = ["data.factor=1", "method.patch_size=4", "method.dim=16", "method.depth=1", "method.hidden=32",
             "method.projection=16", "train.batch_size=8", "train.max_steps=2", "data.stream=true"]
    s = pretrain("clustering-modelnet10", data=str(volume_npz(tmp_path / "v.npz")), out=str(tmp_path / "run"),
                 overrides=small, echo=lambda *a, **k: None)
    assert s["n_train"] == 20 and s["n_test"] == 7 and s["steps"] == 2


def test_row_chunks_read_mapped_files_and_views_in_order(tmp_path):
    from polyjepa.data.array_stream import row_chunks
    from polyjepa.data.lazy import npz_array

    a = np.random.default_rng(0).integers(0, 9, (37, 5, 6)).astype(np.int16)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "f.npy", np.asfortranarray(a))
    np.savez(tmp_path / "z.npz", q=np.zeros(3), a=a)
    maps = [np.load(tmp_path / "a.npy", mmap_mode="r"), npz_array(tmp_path / "z.npz", "a"),
            np.load(tmp_path / "f.npy", mmap_mode="r"), a]
    for m in maps:
        for v in (m, m[:, None], m[3:]):
            chunks = list(row_chunks(v, 100))
            assert len(chunks) == -(-len(v) // 1) and all(len(c) == 1 for c in chunks)  # 60-byte rows: 1 per chunk
            np.testing.assert_array_equal(np.concatenate(chunks), np.asarray(v))


def test_the_sources_pickle_without_their_maps_and_read_the_same_after(grid_npz, tmp_path, monkeypatch):
    import pickle

    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    _image_arrays(tmp_path)
    sources = [open_points(grid_npz, points=24), open_volume_set(volume_npz(tmp_path / "v.npz"), factor=2),
               prepare(DataConfig(source=str(tmp_path / "nhwc.npy"), stream=True)).x_train]
    for src in sources:
        blob = pickle.dumps(src.subset(np.arange(4)))
        assert len(blob) < 20_000, type(src).__name__  # a worker gets an index, not the data
        np.testing.assert_array_equal(pickle.loads(blob)[np.arange(4)].numpy(), src[np.arange(4)].numpy())


def test_the_points_loaders_own_seed_draws_the_streamed_points(grid_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    cfg = DataConfig(source=str(grid_npz), loader="points", normalize="none", split_seed=5)
    mem = prepare(cfg, None, {"points": 16, "seed": 3})
    lazy = prepare(DataConfig(**{**cfg.__dict__, "stream": True}), None, {"points": 16, "seed": 3})
    np.testing.assert_allclose(_all(lazy.x_train), mem.x_train, atol=1e-6)
    np.testing.assert_allclose(_all(lazy.x_test), mem.x_test, atol=1e-6)
    assert not np.allclose(_all(lazy.x_train), load_points(str(grid_npz), points=16).x)


def test_string_labels_of_an_official_split_share_one_code_per_class(tmp_path, monkeypatch):
    """'sofa' is one class in train and test alike, in memory and streamed (coded per part it was 1 in train and
    0 in a test part without 'chair')."""
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    clouds = lambda n: rng.normal(size=(n, 40, 3)).astype(np.float32)   # noqa: E731
    np.savez(tmp_path / "named.npz", X_train=clouds(3), X_test=clouds(2),
             y_train=np.array(["chair", "sofa", "table"]), y_test=np.array(["sofa", "table"]))
    mem = load_points(str(tmp_path / "named.npz"), points=32)
    assert mem.y.tolist() == [0, 1, 2] and mem.y_test.tolist() == [1, 2]
    lazy = open_points(tmp_path / "named.npz", points=32)
    assert lazy.labels.tolist() == [0, 1, 2, 1, 2] and lazy.test_rows.tolist() == [3, 4]
