"""Arrays of an .npz archive memory-mapped: stored members in place, compressed ones inflated once into a cache."""
import zipfile

import numpy as np
import pytest

from polyjepa.data.lazy import npz_array, npz_members
from polyjepa.errors import UserError


def _arrays():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(50, 3, 7)).astype(np.float32),
            "f": np.asfortranarray(rng.integers(0, 9, size=(6, 5)).astype(np.int16)),
            "y": np.arange(50, dtype=np.int64), "s": np.array(["train", "test"] * 3),
            "empty": np.zeros((0, 4), np.float32)}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_every_member_reads_back_as_numpy_loads_it(tmp_path, save):
    arrays = _arrays()
    path = tmp_path / "a.npz"
    save(path, **arrays)
    cache = tmp_path / "cache"
    assert sorted(npz_members(path)) == sorted(arrays)
    for key, want in arrays.items():
        got = npz_array(path, key, cache=cache)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), want)
    stored = save is np.savez
    assert isinstance(npz_array(path, "x", cache=cache), np.memmap)
    assert (not cache.exists()) if stored else len(list(cache.glob("*.npy"))) == len(arrays)


def test_a_changed_archive_is_inflated_again(tmp_path):
    path, cache = tmp_path / "a.npz", tmp_path / "cache"
    np.savez_compressed(path, x=np.zeros(10))
    assert npz_array(path, "x", cache=cache).sum() == 0
    np.savez_compressed(path, x=np.ones(12))
    np.testing.assert_array_equal(npz_array(path, "x", cache=cache), np.ones(12))


def test_bad_archives_get_one_clear_line(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(10.0))
    with pytest.raises(UserError, match="has no array 'z' .it holds x."):
        npz_array(path, "z")
    np.savez(path, o=np.array([1, "a", None], dtype=object))
    with pytest.raises(UserError, match="does not unpickle"):
        npz_array(path, "o", cache=tmp_path)
    np.savez_compressed(path, x=np.arange(100000.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read"):
        npz_array(path, "x", cache=tmp_path / "c")
    assert not list(tmp_path.glob("c/*"))
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="re-create it"):
        npz_members(path)


def test_an_interrupted_inflate_leaves_no_cache(tmp_path, monkeypatch):
    path, cache = tmp_path / "a.npz", tmp_path / "cache"
    np.savez_compressed(path, x=np.arange(1000.0))

    def broken(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("shutil.copyfileobj", broken)
    with pytest.raises(KeyboardInterrupt):
        npz_array(path, "x", cache=cache)
    assert not list(cache.iterdir())
    assert zipfile.is_zipfile(path)


def test_a_pickled_member_is_refused_as_such_not_called_corrupt(tmp_path):
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, x=np.array([{"a": 1}, None], dtype=object))
        with pytest.raises(UserError) as e:
            npz_array(path, "x", cache=tmp_path / "cache")
        assert "corrupt" not in str(e.value) and "object" in str(e.value).lower()
