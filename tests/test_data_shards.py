"""Tar shards (the WebDataset layout) read lazily: the same images and labels as the folder they were made from,
labels from .cls members or sub-folders, every sample once per epoch across DataLoader workers, and a shard cut
short keeps what precedes the cut, with a warning naming it."""
from __future__ import annotations

import io
import tarfile
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from polyjepa.config import DataConfig
from polyjepa.data.batches import MaskedBatches
from polyjepa.data.prepare import prepare
from polyjepa.data.stream import ImageFolderStream, TarShardStream, open_stream
from polyjepa.errors import UserError

N = 24


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _images():
    rng = np.random.default_rng(0)
    out = []
    for i in range(N):
        a = rng.integers(0, 256, (10, 12), dtype=np.uint8)
        a[0, 0] = i  # the image's id, so decoded samples name themselves
        out.append(a)
    return out


@pytest.fixture
def shards(tmp_path):
    """24 grey PNGs with .cls classes (i % 3), in 3 shards of 8 samples, written in sample order."""
    root = tmp_path / "shards"
    root.mkdir()
    for s in range(3):
        with tarfile.open(root / f"part-{s:04d}.tar", "w") as tf:
            for i in range(8 * s, 8 * s + 8):
                _add(tf, f"{i:05d}.png", _png(_images()[i]))
                _add(tf, f"{i:05d}.cls", str(i % 3).encode())
    return root


def ids(x: torch.Tensor) -> list[int]:
    return [int(round(v * 255)) for v in x[:, 0, 0, 0].tolist()]


def test_shards_give_their_images_and_classes_in_order(shards):
    stream = open_stream(shards)
    assert isinstance(stream, TarShardStream) and stream.shape == (N, 1, 10, 12) and stream.mode == "L"
    x = stream[np.arange(N)]
    assert ids(x) == list(range(N))
    np.testing.assert_array_equal(stream.labels, np.arange(N) % 3)
    np.testing.assert_allclose(x[5, 0].numpy(), _images()[5] / 255.0, atol=1e-7)
    sub = stream.subset([7, 2, 20])
    assert ids(sub[np.arange(3)]) == [7, 2, 20] and list(sub.labels) == [1, 2, 2]


def test_shards_equal_the_folder_they_were_made_from(tmp_path):
    from PIL import Image

    folder, shard = tmp_path / "folder", tmp_path / "one.tar"
    with tarfile.open(shard, "w") as tf:
        for i, a in enumerate(_images()):
            (folder / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(folder / f"c{i % 3}" / f"{i:03d}.png")
            _add(tf, f"c{i % 3}/{i:03d}.png", _png(a))
    lazy_folder, lazy_tar = ImageFolderStream(folder), open_stream(shard)
    assert ids(lazy_tar[np.arange(N)]) == list(range(N))  # the shard's order: as written
    order = ids(lazy_folder[np.arange(N)])  # the folder's: its files sorted
    assert order == sorted(range(N), key=lambda i: f"c{i % 3}/{i:03d}")
    torch.testing.assert_close(lazy_tar[order], lazy_folder[np.arange(N)])
    np.testing.assert_array_equal(lazy_tar.labels[order], lazy_folder.labels)  # sub-folders inside are classes
    np.testing.assert_array_equal(lazy_tar.labels, np.arange(N) % 3)


def test_workers_read_every_sample_of_an_epoch_once(shards):
    stream = open_stream(shards)
    batches = MaskedBatches(stream, batch_size=6, make_batch=lambda x, g, p: {"x": x}, seed=1)
    loader = DataLoader(batches, sampler=range(4), batch_size=None, num_workers=2)
    seen = [i for b in loader for i in ids(b["x"])]
    assert sorted(seen) == list(range(N))


def test_a_truncated_shard_keeps_the_images_before_the_cut(shards):
    last = shards / "part-0002.tar"
    data = last.read_bytes()
    last.write_bytes(data[:len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = TarShardStream(shards, max_bad=0.5)
    assert any("part-0002.tar" in str(w.message) and "truncated" in str(w.message) for w in caught)
    assert 16 < len(stream) < N and ids(stream[np.arange(16)]) == list(range(16))
    assert any("part-0002.tar" in s for s in stream.skipped)
    # given a run's skip log, the cut counts once, as the shard, and says the number of lost images is unknown
    from polyjepa.data.skiplog import read_skip_log

    log = shards / "skipped.tsv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TarShardStream(shards, max_bad=0.5, skip_log=log)
    assert list(read_skip_log(log)) == [str(last)] and "unknown" in read_skip_log(log)[str(last)]


def test_bad_shards_are_one_clear_error(tmp_path, shards):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="no .tar shards found"):
        TarShardStream(tmp_path / "empty_dir")
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        _add(tf, "a.png", _png(_images()[0]))
        _add(tf, "a.cls", b"cat")
    with pytest.raises(UserError, match="not an integer class"):
        TarShardStream(bad)
    with pytest.raises(UserError, match="tar shard: shards are read lazily, with data.stream=true"):
        prepare(DataConfig(source=str(bad)))


def test_prepare_streams_shards_with_a_stratified_split(shards):
    lazy = prepare(DataConfig(source=str(shards), stream=True, test_size=0.25))
    assert isinstance(lazy.x_train, TarShardStream) and len(lazy.x_train) == 18 and len(lazy.x_test) == 6
    assert np.bincount(lazy.y_test).tolist() == [2, 2, 2]
    x = lazy.x_train[np.arange(18)].numpy()
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-4  # normalised with the training images' statistics
