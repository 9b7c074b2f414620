"""The ``lidar_bev`` loader's lazy form: sweeps indexed at open time, each (sweep, copy) rasterised on access with
augmentations seeded per sample, equal to the in-memory loader row for row; bad sweeps are one line."""
from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest

from polyjepa.bev.data import load_lidar_bev
from polyjepa.bev.stream import LidarBEVStream
from polyjepa.config import DataConfig
from polyjepa.data.prepare import prepare
from polyjepa.errors import UserError

KITTI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti_velodyne_12frames.npz"
SMALL = dict(x_range=(0.0, 12.8), y_range=(-6.4, 6.4), cell=0.4)


def cloud(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 12, n), rng.uniform(-6, 6, n), rng.uniform(-2.5, 0.5, n),
                     rng.uniform(0, 1, n)], 1).astype(np.float32)


@pytest.fixture()
def sweeps(tmp_path):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    for i in range(3):
        cloud(2000 + 500 * i, i).tofile(folder / f"{i:06d}.bin")
    return folder


def test_a_folder_of_sweeps_read_lazily_equals_the_in_memory_maps(sweeps):
    opts = dict(SMALL, copies=4, dropout=0.1, augment_seed=3)
    want = load_lidar_bev(str(sweeps), **opts)
    lazy = LidarBEVStream(sweeps, **opts)
    assert lazy.shape == want.x.shape == (12, 5, 32, 32) and lazy.meta == want.meta
    order = np.random.default_rng(0).permutation(12)  # any order, any batch: the same sample
    np.testing.assert_array_equal(lazy[order].numpy(), want.x[order])
    again = pickle.loads(pickle.dumps(lazy))  # as a DataLoader worker gets it: paths and an index
    assert len(pickle.dumps(lazy)) < 4000
    np.testing.assert_array_equal(again[[5]].numpy(), want.x[[5]])
    # copies of a sweep differ (independent draws), and another augment_seed draws others
    assert not np.array_equal(want.x[0], want.x[1])
    other = LidarBEVStream(sweeps, **dict(opts, augment_seed=4))
    assert not np.array_equal(other[[0]].numpy(), want.x[[0]])
    # the unaugmented sweeps are the sweeps as they are
    plain = load_lidar_bev(str(sweeps), **SMALL, copies=1, flip=False, max_angle=0.0, scale=(1.0, 1.0))
    from polyjepa.bev.grid import BEVGrid, bev_features

    np.testing.assert_array_equal(plain.x[2], bev_features(cloud(3000, 2), BEVGrid(SMALL["x_range"], SMALL["y_range"],
                                                                                   cell=0.4)).numpy())


@pytest.mark.skipif(not KITTI.exists(), reason="needs ../shared/data/kitti_velodyne_12frames.npz")
def test_the_kitti_frames_npz_read_lazily_equals_the_in_memory_maps(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))  # the compressed arrays are inflated here once
    want = load_lidar_bev(str(KITTI), copies=2, split="training", cell=0.8)
    lazy = LidarBEVStream(KITTI, copies=2, split="training", cell=0.8)
    from polyjepa.bev.data import read_sweeps

    assert lazy.names == read_sweeps(KITTI, split="training")[1] and len(lazy.names) == 6
    idx = np.array([11, 0, 5, 6])
    np.testing.assert_array_equal(lazy[idx].numpy(), want.x[idx])
    assert lazy.meta == want.meta
    with pytest.raises(UserError, match="choose one of all, training, testing"):
        LidarBEVStream(KITTI, split="validation")


def test_prepare_streams_lidar_sweeps_as_the_in_memory_path(sweeps):
    options = dict(SMALL, copies=2)
    mem = prepare(DataConfig(source=str(sweeps), loader="lidar_bev", normalize="none"), options=options)
    lazy = prepare(DataConfig(source=str(sweeps), loader="lidar_bev", normalize="none", stream=True), options=options)
    assert isinstance(lazy.x_train, LidarBEVStream) and lazy.meta == mem.meta
    np.testing.assert_array_equal(lazy.x_train[np.arange(6)].numpy(), mem.x_train)


def test_bad_sweeps_are_one_clear_line(tmp_path, sweeps):
    odd = tmp_path / "odd.bin"
    np.concatenate([cloud(10).ravel(), [1.0, 2.0]]).astype(np.float32).tofile(odd)
    far = tmp_path / "far.bin"
    (cloud(50) + np.array([500.0, 0, 0, 0], np.float32)).tofile(far)
    nan = cloud(50)
    nan[7, 0] = np.nan
    nan_file = tmp_path / "nan.bin"
    nan.tofile(nan_file)
    for source, words, at_open in [(odd, "not a whole number of 16-byte kitti records", True),
                                   (tmp_path / "none.bin", "does not exist", True),
                                   (tmp_path / "x.txt", "cannot read LiDAR data", True),
                                   (far, "no point inside the BEV grid", False), (nan_file, "NaN", False)]:
        if source.suffix == ".txt":
            source.write_text("x")
        with pytest.raises(UserError, match=words) as e:
            LidarBEVStream(source, **SMALL, copies=1)[0] if not at_open else LidarBEVStream(source, **SMALL)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="copies"):
        LidarBEVStream(sweeps, **SMALL, copies=0)
    with pytest.raises(UserError, match="data.split"):
        LidarBEVStream(sweeps, **SMALL, split="val")


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def test_pretrain_on_streamed_sweeps_trains_as_the_in_memory_run(sweeps, tmp_path):
    from polyjepa.cli import main

    common = ["pretrain", "adljepa-kitti", "--data", str(sweeps), "data.x_range=[0.0, 12.8]", "data.y_range=[-6.4, 6.4]",
              "encoder.widths=[8, 16]", "encoder.blocks=1", "predictor.depth=2", "data.copies=2",
              "train.batch_size=2", "train.max_steps=3", "train.log_every=1", "train.threads=1", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "mem")]) == 0
    assert main([*common, "--out", str(tmp_path / "lazy"), "data.stream=true"]) == 0
    mem, lazy = _losses(tmp_path / "mem"), _losses(tmp_path / "lazy")
    assert len(mem) == len(lazy) == 3
    assert all(abs(a - b) <= 1e-4 * abs(a) for a, b in zip(mem, lazy)), (mem, lazy)
    # and its embeddings, read lazily, are the in-memory ones
    from polyjepa.export.pretrained import PretrainedEncoder

    enc = PretrainedEncoder.from_run(tmp_path / "lazy")
    got = enc.embed(str(sweeps), batch_size=4, out=tmp_path / "e.npy")
    np.testing.assert_allclose(got, enc.embed(str(sweeps), stream=False), rtol=1e-5, atol=1e-6)
