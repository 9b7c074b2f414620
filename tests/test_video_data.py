import numpy as np
import pytest

from polyjepa.errors import UserError
from polyjepa.video import moving_digits
from polyjepa.video.sources import load_clips, load_moving_digits, to_ncthw

from .conftest import SHARED_DATA


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * 16).astype(np.uint8), d.target


def test_moving_digits_are_deterministic_under_a_seed():
    im, y = _digits()
    a = moving_digits(im, y, 20, frames=6, frame_size=32, digit_size=12, digits=2, seed=3)
    b = moving_digits(im, y, 20, frames=6, frame_size=32, digit_size=12, digits=2, seed=3)
    c = moving_digits(im, y, 20, frames=6, frame_size=32, digit_size=12, digits=2, seed=4)
    assert np.array_equal(a.clips, b.clips) and np.array_equal(a.velocity, b.velocity)
    assert not np.array_equal(a.clips, c.clips)
    assert a.clips.shape == (20, 1, 6, 32, 32) and a.labels.shape == (20, 2)
    assert np.array_equal(a.labels, y[a.source_index])


def test_velocities_are_what_the_generator_says():
    im, y = _digits()
    d = moving_digits(im, y, 50, frames=10, frame_size=32, digit_size=12, digits=1, speed=(1.0, 3.0), seed=0)
    room = 32 - 12
    pos, vel = d.position[:, :, 0], d.velocity[:, :, 0]
    speed = np.linalg.norm(vel, axis=-1)
    assert np.allclose(speed, speed[:, :1], atol=1e-5) and speed.min() >= 1 - 1e-6 and speed.max() <= 3 + 1e-6
    bounced = 0
    for t in range(9):
        free = pos[:, t] + vel[:, t]
        reflected = np.where(free > room, 2 * room - free, np.where(free < 0, -free, free))
        np.testing.assert_allclose(pos[:, t + 1], reflected, atol=1e-4)
        hit = (free > room) | (free < 0)
        # a component flips exactly when it hit a wall, otherwise the velocity is unchanged
        np.testing.assert_allclose(vel[:, t + 1], np.where(hit, -vel[:, t], vel[:, t]), atol=1e-6)
        bounced += hit.sum()
    assert bounced > 0  # the test saw bounces
    # the pixels say the same: each frame is the digit pasted at its rounded position
    digit = np.asarray(d.clips[0, 0, 0])
    ty, tx = np.rint(pos[0, 0]).astype(int)
    for t in range(10):
        y0, x0 = np.rint(pos[0, t]).astype(int)
        frame = d.clips[0, 0, t]
        assert np.array_equal(frame[y0:y0 + 12, x0:x0 + 12], digit[ty:ty + 12, tx:tx + 12])
        assert frame.sum() == pytest.approx(digit.sum(), rel=1e-5)  # nothing else in the frame


def _fingerprints(clips):
    """Translation-invariant fingerprint of each clip's first frame: its sorted pixel values."""
    return {np.sort(c[0, 0].ravel()).tobytes() for c in clips}


def test_loader_splits_digit_images_and_labels_the_first_digit():
    loaded = load_moving_digits("digits", frames=4, frame_size=24, digit_size=10, n_train=300, n_test=100, seed=1)
    assert loaded.x.shape == (300, 1, 4, 24, 24) and loaded.x_test.shape == (100, 1, 4, 24, 24)
    assert loaded.y.shape == (300,) and loaded.meta["layout"] == "CTHW"
    assert not _fingerprints(loaded.x) & _fingerprints(loaded.x_test)
    same = load_moving_digits("digits", frames=4, frame_size=24, digit_size=10, n_train=300, n_test=100, seed=1)
    assert np.array_equal(same.x_test, loaded.x_test)


@pytest.mark.skipif(not (SHARED_DATA / "mnist_t10k.npz").exists(), reason="needs ../shared/data/mnist_t10k.npz")
def test_mnist_train_and_test_clips_use_disjoint_digit_images():
    loaded = load_moving_digits(str(SHARED_DATA / "mnist_t10k.npz"), frames=2, frame_size=32, digit_size=28,
                                n_train=2000, n_test=500)
    assert not _fingerprints(loaded.x) & _fingerprints(loaded.x_test)
    # and the check can fail: clips drawn from one pool share digit images
    assert _fingerprints(loaded.x[:1000]) & _fingerprints(loaded.x[1000:])
    assert set(np.unique(loaded.y)) == set(range(10))


def test_clip_arrays_layouts_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (5, 4, 3, 8, 8), dtype=np.uint8)   # (n, T, C, H, W)
    out = to_ncthw(x, "x")
    assert out.shape == (5, 3, 4, 8, 8) and out.dtype == np.float32 and out.max() <= 1
    np.testing.assert_array_equal(out, to_ncthw(x.transpose(0, 1, 3, 4, 2), "x"))      # channels last
    assert to_ncthw(x[:, :, 0], "x").shape == (5, 1, 4, 8, 8)                          # no channel axis
    with pytest.raises(UserError, match="no channel axis"):
        to_ncthw(np.zeros((5, 4, 7, 8, 9)), "x")
    with pytest.raises(UserError, match="at least 2 frames"):
        to_ncthw(np.zeros((5, 1, 1, 8, 8)), "x")
    with pytest.raises(UserError, match="must be"):
        to_ncthw(np.zeros((5, 8, 8)), "x")
    np.savez(tmp_path / "c.npz", x=x, labels=np.arange(5))
    loaded = load_clips(str(tmp_path / "c.npz"))
    assert loaded.x.shape == (5, 3, 4, 8, 8) and list(loaded.y) == [0, 1, 2, 3, 4]


def test_clips_given_to_the_moving_digits_loader_are_read_as_clips(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (6, 8, 16, 16), dtype=np.uint8)     # (n, T, H, W)
    np.savez(tmp_path / "c.npz", x=x, labels=np.arange(6) % 2)
    np.save(tmp_path / "c.npy", x)
    kw = dict(frames=8, frame_size=16, digit_size=8, n_train=4, n_test=2)
    for name in ("c.npz", "c.npy"):                  # e.g. `embed RUN --data my_clips.npz` of a moving-digits run
        got = load_moving_digits(str(tmp_path / name), **kw)
        want = load_clips(str(tmp_path / name))
        np.testing.assert_array_equal(got.x, want.x)
        assert got.x.shape == (6, 1, 8, 16, 16) and (got.y is None) == (name == "c.npy")
    np.savez(tmp_path / "d.npz", images=x[:, 0], labels=np.arange(6) % 2)       # digit images stay digits
    assert load_moving_digits(str(tmp_path / "d.npz"), **kw).x.shape == (4, 1, 8, 16, 16)
    np.savez(tmp_path / "four.npz", x=x[:, :4], labels=np.arange(6) % 2)     # 4 frames or 4 channels?
    with pytest.raises(UserError, match=r"clips of 4 frames, store them as \(n, frames, 1, height, width\)"):
        load_moving_digits(str(tmp_path / "four.npz"), **kw)
    np.savez(tmp_path / "four.npz", x=x[:, :4, None], labels=np.arange(6) % 2)
    assert load_moving_digits(str(tmp_path / "four.npz"), **kw).x.shape == (6, 1, 4, 16, 16)


def test_column_labels_of_clips(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 4, 8, 8), np.uint8), labels=np.array([[2], [0], [2]]))
    assert load_clips(str(tmp_path / "c.npz")).y.tolist() == [2, 0, 2]


def test_reading_a_video_file_into_clips(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    frames = np.zeros((10, 16, 16, 3), np.uint8)
    for t in range(10):
        frames[t, :, t:t + 3] = 255  # a bar moving right
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        iio.imwrite(tmp_path / cls / "v.gif", frames, loop=0)
    loaded = load_clips(str(tmp_path), frames=4, frame_step=2, grayscale=True)
    assert loaded.x.shape == (2, 1, 4, 16, 16) and sorted(loaded.y) == [0, 1]
    col = loaded.x[0, 0, :, 8].argmax(-1)
    assert list(col) == [0, 2, 4, 6]  # frames 0, 2, 4, 6 of the video
    with pytest.raises(UserError, match="data.frames"):
        load_clips(str(tmp_path))
    with pytest.raises(UserError, match="shorter than one clip"):
        load_clips(str(tmp_path), frames=20)
    with pytest.raises(UserError, match="data.frame_step=0 must both be 1 or more"):
        load_clips(str(tmp_path), frames=4, frame_step=0)


def test_an_unreadable_video_is_one_line_on_the_command_line(tmp_path, capsys):
    from polyjepa.cli import main

    pytest.importorskip("imageio.v3")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "broken.mp4").write_text("junk")    # imageio's error runs over several lines
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nmethod: {name: vjepa}\ndata: {loader: clips, source: %s, frames: 4}\n"
                      "tokenizer: {name: tubelet, patch_size: 8, tubelet_size: 2}\n" % (tmp_path / "clips"))
    assert main(["pretrain", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polyjepa: error: cannot load") and "broken.mp4" in err and len(err.splitlines()) == 1, err


def test_reading_an_mp4_with_pyav(tmp_path):
    pytest.importorskip("av")
    iio = pytest.importorskip("imageio.v3")
    frames = np.zeros((8, 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24] = 200
    iio.imwrite(tmp_path / "v.mp4", frames, plugin="pyav", codec="libx264", fps=10)
    loaded = load_clips(str(tmp_path / "v.mp4"), frames=8, size=16)
    assert loaded.x.shape == (1, 3, 8, 16, 16) and loaded.y is None
    assert abs(loaded.x[0, :, :, 8, 8].mean() - 200 / 255) < 0.05
