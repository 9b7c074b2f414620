"""The audio data loader: FSDD-layout .npz and folders of files, normalisation, official split, clear errors."""
import numpy as np
import pytest

from polyjepa.audio.data import load_audio
from polyjepa.audio.io import read_audio
from polyjepa.errors import UserError

from .conftest import SHARED_DATA

RATE = 8000


def tone_clips(n=24, seed=0):
    """Clips of one of 3 pitches (the label), random lengths 0.2-0.9 s, at 8 kHz."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    clips = []
    for c in y:
        t = np.arange(rng.integers(1600, 7200)) / RATE
        clips.append((0.3 * np.sin(2 * np.pi * (300 + 600 * c) * t) + 0.01 * rng.normal(size=t.size)))
    return clips, y


def write_npz(path, clips, y, take=None, rate=RATE):
    audio = np.concatenate([(c * 32767).astype(np.int16) for c in clips])
    lengths = np.array([len(c) for c in clips])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    extra = {} if take is None else {"take": take}
    np.savez(path, audio=audio, offsets=offsets, lengths=lengths, sample_rate=rate, digit=y, **extra)
    return path


def test_npz_loader_shapes_normalisation_padding_and_split(tmp_path):
    clips, y = tone_clips()
    take = np.arange(len(y)) // 3                     # takes 0-4 -> 15 test clips
    d = load_audio(str(write_npz(tmp_path / "t.npz", clips, y, take)), n_mels=16, frames=40)
    assert d.x.shape == (9, 1, 16, 40) and d.x_test.shape == (15, 1, 16, 40) and d.x.dtype == np.float32
    assert list(d.y_test) == list(y[take < 5]) and d.meta["sample_rate"] == RATE
    # Standardised on the real training frames; padded frames are exactly 0.
    n_frames = np.array([1 + (len(c) - 200) // 80 for c in clips])[take >= 5]
    real = np.concatenate([d.x[i, 0, :, :min(k, 40)].T for i, k in enumerate(n_frames)])
    assert abs(real.mean()) < 1e-4 and abs(real.std() - 1) < 1e-3
    for i, k in enumerate(n_frames):
        if k < 40:
            assert (d.x[i, 0, :, k:] == 0).all()
    # A trained run's statistics are reused (fitted), so the same clips come out the same.
    again = load_audio(str(tmp_path / "t.npz"), n_mels=16, frames=40, fitted=d.meta)
    assert np.allclose(again.x, d.x)
    # Each tone's energy is in a different mel band: the label is recoverable from the spectrum.
    band = d.x_test[:, 0].mean(-1).argmax(-1)
    assert len(set(zip(band.tolist(), d.y_test.tolist()))) == 3



def test_npz_loader_stretch_fills_every_window_and_rejects_unknown_crops(tmp_path):
    clips, y = tone_clips()
    path = str(write_npz(tmp_path / "t.npz", clips, y))
    d = load_audio(path, n_mels=16, frames=40, crop="stretch")
    assert d.x.shape == (24, 1, 16, 40) and d.meta["valid_fraction"] == 1.0
    assert not (d.x == 0).all(axis=2).any()                 # no padding frame in any clip
    assert abs(d.x.mean()) < 1e-4 and abs(d.x.std() - 1) < 1e-3
    with pytest.raises(UserError, match="unknown data.crop"):
        load_audio(path, n_mels=16, frames=40, crop="squeeze")

def test_folder_of_files_with_classes_and_resampling(tmp_path):
    sf = pytest.importorskip("soundfile")
    clips, y = tone_clips(9)
    for i, (c, label) in enumerate(zip(clips, y)):
        (tmp_path / f"c{label}").mkdir(exist_ok=True)
        rate = RATE if i % 2 else 16000
        data = c if rate == RATE else np.interp(np.arange(2 * len(c)) / 2, np.arange(len(c)), c)
        sf.write(tmp_path / f"c{label}" / f"{i}.{'wav' if i % 3 else 'flac'}", data, rate)
    with pytest.raises(UserError, match="different sample rates"):
        load_audio(str(tmp_path), n_mels=16, frames=32)
    d = load_audio(str(tmp_path), n_mels=16, frames=32, sample_rate=RATE)
    assert d.x.shape == (9, 1, 16, 32) and sorted(d.y.tolist()) == sorted(y.tolist())
    wave, rate = read_audio(tmp_path / "c0" / "0.flac")
    assert rate == 16000 and wave.dtype == np.float32 and abs(np.abs(wave).max() - 0.3) < 0.05


def test_bad_audio_gets_one_clear_error(tmp_path):
    clips, y = tone_clips(6)
    with pytest.raises(UserError, match="does not exist"):
        load_audio(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    pytest.importorskip("soundfile")
    with pytest.raises(UserError, match="cannot read audio file"):
        read_audio(bad)
    with pytest.raises(UserError, match="cannot read audio file"):
        load_audio(str(tmp_path))
    silent = [c if i != 2 else np.zeros_like(c) for i, c in enumerate(clips)]
    with pytest.raises(UserError, match=r"\[2\] is silent"):
        load_audio(str(write_npz(tmp_path / "s.npz", silent, y)))
    empty = [c if i != 1 else c[:0] for i, c in enumerate(clips)]
    with pytest.raises(UserError, match=r"\[1\] is empty"):
        load_audio(str(write_npz(tmp_path / "e.npz", empty, y)))
    short = [c if i != 3 else c[:50] for i, c in enumerate(clips)]
    with pytest.raises(UserError, match=r"\[3\]: a clip of 50 samples is shorter than one"):
        load_audio(str(write_npz(tmp_path / "short.npz", short, y)))
    path = write_npz(tmp_path / "ok.npz", clips, y)
    with pytest.raises(UserError, match="Nyquist"):
        load_audio(str(path), f_max=6000.0)           # 8 kHz audio cannot hold a 6 kHz mel range
    with pytest.raises(UserError, match="no label array 'speaker'"):
        load_audio(str(path), label="speaker")
    for rate in (0, -8000):
        with pytest.raises(UserError, match="data.sample_rate must be a positive rate"):
            load_audio(str(path), sample_rate=rate)
    np.savez(tmp_path / "img.npz", images=np.zeros((3, 4, 4)))
    with pytest.raises(UserError, match="the FSDD layout"):
        load_audio(str(tmp_path / "img.npz"))


def test_npz_without_label_arrays_is_unlabelled_and_stereo_npz_is_mixed_to_mono(tmp_path):
    clips, y = tone_clips(6)
    path = write_npz(tmp_path / "t.npz", clips, y)
    z = dict(np.load(path))
    del z["digit"]
    np.savez(tmp_path / "nolabel.npz", **z)
    d = load_audio(str(tmp_path / "nolabel.npz"), n_mels=16, frames=40)
    assert d.y is None and d.x.shape == (6, 1, 16, 40)
    # (samples, channels) audio, as soundfile writes it: the same clips in both channels read as mono
    np.savez(tmp_path / "stereo.npz", **dict(z, audio=np.stack([z["audio"], z["audio"]], axis=1), digit=y))
    s = load_audio(str(tmp_path / "stereo.npz"), n_mels=16, frames=40)
    m = load_audio(str(path), n_mels=16, frames=40)
    assert np.allclose(s.x, m.x, atol=1e-5) and list(s.y) == list(y)
    np.savez(tmp_path / "cube.npz", **dict(z, audio=np.zeros((len(z["audio"]), 2, 2), np.int16)))
    with pytest.raises(UserError, match="'audio' has shape"):
        load_audio(str(tmp_path / "cube.npz"))


@pytest.mark.skipif(not (SHARED_DATA / "fsdd.npz").exists(), reason="needs ../shared/data/fsdd.npz")
def test_fsdd_official_split():
    d = load_audio(str(SHARED_DATA / "fsdd.npz"), n_mels=32, frames=64)
    assert d.x.shape == (2700, 1, 32, 64) and d.x_test.shape == (300, 1, 32, 64)
    assert np.bincount(d.y_test).tolist() == [30] * 10
    s = load_audio(str(SHARED_DATA / "fsdd.npz"), label="speaker", n_mels=32, frames=64, fitted=d.meta)
    assert np.allclose(s.x, d.x) and len(np.unique(s.y)) == 6


def test_equal_length_rows_read_as_the_concatenated_layout_and_groups_stay_on_one_side(tmp_path):
    clips, y = tone_clips(n=24)
    clips = [c[:1600] for c in clips]                  # equal lengths: one clip per row of 'audio'
    rows = np.stack([(c * 32767).astype(np.int16) for c in clips])
    group = np.repeat(np.arange(8), 3)                 # 8 recordings of 3 clips each
    np.savez(tmp_path / "rows.npz", audio=rows, sample_rate=RATE, digit=y, rec=group)
    flat = load_audio(str(write_npz(tmp_path / "flat.npz", clips, y)), n_mels=16, frames=16)
    d = load_audio(str(tmp_path / "rows.npz"), n_mels=16, frames=16)
    assert np.array_equal(d.x, flat.x) and np.array_equal(d.y, flat.y)
    held = load_audio(str(tmp_path / "rows.npz"), n_mels=16, frames=16, group="rec", test_groups=0.25, group_seed=3)
    assert held.x.shape[0] == 18 and held.x_test.shape[0] == 6     # 2 of 8 groups, whole
    # Which clips were held out: the test rows equal the spectrograms of two whole recordings.
    all_x = load_audio(str(tmp_path / "rows.npz"), n_mels=16, frames=16, fitted=held.meta).x
    test_rows = [i for i in range(24) if any(np.array_equal(all_x[i], t) for t in held.x_test)]
    assert len(test_rows) == 6 and len(set(group[test_rows])) == 2
    again = load_audio(str(tmp_path / "rows.npz"), n_mels=16, frames=16, group="rec", test_groups=0.25, group_seed=3)
    assert np.array_equal(again.x_test, held.x_test)                # the seed fixes the held-out groups
    with pytest.raises(UserError, match="no array 'recording'"):
        load_audio(str(tmp_path / "rows.npz"), group="recording")
    with pytest.raises(UserError, match="test_groups must be a fraction"):
        load_audio(str(tmp_path / "rows.npz"), group="rec", test_groups=1.5)
    np.savez(tmp_path / "one.npz", audio=rows, sample_rate=RATE, digit=y, rec=np.zeros(24, int))
    with pytest.raises(UserError, match="1 group"):
        load_audio(str(tmp_path / "one.npz"), group="rec")
    np.savez(tmp_path / "cube.npz", audio=rows[:, None], sample_rate=RATE, digit=y)
    with pytest.raises(UserError, match="no offsets/lengths"):
        load_audio(str(tmp_path / "cube.npz"))
