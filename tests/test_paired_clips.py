"""Video + audio pairs from one's own clips (the ``av_clips`` loader): decoded frames and audio against what was
written (a moving square whose tone follows its position), a recipe trained end to end, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av", reason="the video + audio loader needs PyAV (pip install 'polyjepa[video]')")

from polyjepa.errors import UserError  # noqa: E402
from polyjepa.paired.clips import cut_clips, decode_file, load_av_pairs  # noqa: E402

FPS, RATE, SIZE, SQUARE = 10, 16000, 32, 6


def _x(i, shift=0):
    return (3 * i + shift) % (SIZE - SQUARE)                     # the square's left edge in frame i


def _freq(x):
    return 400.0 + 50.0 * x                      # its tone: 50 Hz per pixel, far apart in a 0.1 s window


def _tone(n_frames, shift=0):
    """The written audio: frame i's span of time holds a sine at _freq(_x(i)), phase-continuous, in [-0.5, 0.5]."""
    per = RATE // FPS
    f = np.repeat([_freq(_x(i, shift)) for i in range(n_frames)], per)
    return 0.5 * np.sin(2 * np.pi * np.cumsum(f) / RATE)


def _write(path, n_frames=24, shift=0, audio=True, audio_file=None):
    """A clip: a white square moving right on black (mpeg4), with its tone (16-bit PCM) in the file or beside it."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=FPS)
        v.width = v.height = SIZE
        v.pix_fmt = "yuv420p"
        v.bit_rate = 2_000_000
        a = c.add_stream("pcm_s16le", rate=RATE, layout="mono") if audio else None
        for i in range(n_frames):
            img = np.zeros((SIZE, SIZE, 3), np.uint8)
            img[10:10 + SQUARE, _x(i, shift):_x(i, shift) + SQUARE] = 255
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            _mux_audio(c, a, _tone(n_frames, shift))
    if audio_file is not None:
        with av.open(str(audio_file), "w") as c:
            _mux_audio(c, c.add_stream("pcm_s16le", rate=RATE, layout="mono"), _tone(n_frames, shift))


def _mux_audio(c, stream, wave):
    pcm = np.round(wave * 32767).astype(np.int16)
    for k in range(0, len(pcm), 1024):
        frame = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024], format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, k
        for p in stream.encode(frame):
            c.mux(p)
    for p in stream.encode():
        c.mux(p)


def _peak(wave):
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=RATE))          # 1 Hz bins
    return float(np.argmax(spec))


def test_decoded_frames_and_audio_match_what_was_written(tmp_path):
    path = tmp_path / "clip.mkv"
    _write(path, n_frames=24)
    d = decode_file(path, None, size=SIZE, sample_rate=RATE)
    assert d.frames.shape == (24, SIZE, SIZE, 3)
    assert d.period == pytest.approx(1 / FPS)
    np.testing.assert_allclose(d.times, np.arange(24) / FPS, atol=1e-6)
    cols = d.frames[:, 10:10 + SQUARE].mean((1, 3))                          # (T, W) brightness per column
    left = np.array([np.flatnonzero(c > 128)[0] for c in cols])
    np.testing.assert_array_equal(left, [_x(i) for i in range(24)])          # mpeg4 keeps the square's edge
    # 16-bit PCM comes back sample for sample, starting at the first frame's time
    assert d.audio_start == pytest.approx(0.0) and len(d.audio) == 24 * RATE // FPS
    np.testing.assert_allclose(d.audio, _tone(24), atol=1 / 32767 + 1e-6)

    clips = cut_clips(d, frames=8, frame_step=1)
    assert len(clips) == 3
    for j, (frames, wave) in enumerate(clips):
        assert frames.shape == (8, SIZE, SIZE, 3) and len(wave) == 8 * RATE // FPS
        np.testing.assert_array_equal(frames, d.frames[8 * j:8 * j + 8])
        per = RATE // FPS
        for t in range(8):                        # the tone under each frame is the one its square position gives
            x = np.flatnonzero(frames[t, 10:10 + SQUARE].mean((0, 2)) > 128)[0]
            assert abs(_peak(wave[t * per:(t + 1) * per]) - _freq(x)) <= 10.0
    # every other frame: the audio still covers the clip's whole span
    clips = cut_clips(d, frames=4, frame_step=2)
    assert len(clips) == 3 and len(clips[0][1]) == 8 * RATE // FPS
    np.testing.assert_array_equal(clips[1][0], d.frames[8:16:2])


def test_audio_beside_the_video_and_resampling(tmp_path):
    _write(tmp_path / "a.mkv", audio=False, audio_file=tmp_path / "a.wav")
    d = decode_file(tmp_path / "a.mkv", tmp_path / "a.wav", size=16, sample_rate=8000)
    assert d.frames.shape == (24, 16, 16, 3) and d.rate == 8000
    assert abs(len(d.audio) - 24 * 8000 // FPS) <= 1
    per = 8000 // FPS
    for i in range(2, 22):                        # the resampled tone keeps its frequency and its place in time
        spec = np.abs(np.fft.rfft(d.audio[i * per:(i + 1) * per] * np.hanning(per), n=8000))
        assert abs(int(np.argmax(spec)) - _freq(_x(i))) <= 10.0


def test_the_loader_gives_aligned_pairs_split_by_file(tmp_path):
    for k in range(5):
        _write(tmp_path / f"c{k}.mkv", n_frames=24, shift=5 * k)
    _write(tmp_path / "sep.mkv", n_frames=16, audio=False, audio_file=tmp_path / "sep.wav")
    pairs = load_av_pairs(str(tmp_path), frames=8, size=SIZE, n_mels=40, test_size=0.34, split_seed=0)
    assert pairs.side_a == "video" and pairs.side_b == "audio" and pairs.texts is None
    assert pairs.a.shape == (17, 3, 8, SIZE, SIZE)                          # 5 files x 3 clips + 2 clips
    assert pairs.b.shape[:4] == (17, 1, 1, 40) and pairs.b.shape[4] == 1 + (12800 - 400) // 160
    assert np.isfinite(pairs.a).all() and np.isfinite(pairs.b).all()
    assert 0 < pairs.test.sum() < 17 and abs(pairs.a[~pairs.test].mean()) < 1e-4
    # clips of one file all fall on one side of the split
    owner = np.repeat(np.arange(6), [3, 3, 3, 3, 3, 2])
    for f in range(6):
        assert len(set(pairs.test[owner == f])) == 1


def test_bad_input_is_one_clear_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no video files"):
        load_av_pairs(str(empty))
    silent = tmp_path / "silent"
    silent.mkdir()
    _write(silent / "a.mkv")
    _write(silent / "b.mkv", audio=False)
    with pytest.raises(UserError, match="b.mkv has no audio stream") as e:
        load_av_pairs(str(silent))
    assert "\n" not in str(e.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    _write(broken / "a.mkv")
    (broken / "b.mp4").write_bytes(b"this is not a video" * 50)
    with pytest.raises(UserError, match="cannot read .*b.mp4") as e:
        load_av_pairs(str(broken))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="not a folder"):
        load_av_pairs(str(broken / "a.mkv"))
    short = tmp_path / "short"
    short.mkdir()
    _write(short / "a.mkv", n_frames=12)
    _write(short / "b.mkv", n_frames=12)
    with pytest.raises(UserError, match="shorter than one clip"):
        load_av_pairs(str(short), frames=40)
    with pytest.raises(UserError, match="data.frames=1 must"):
        load_av_pairs(str(short), frames=1)


@pytest.mark.parametrize("objective", ["clip", "sinkhorn"])
def test_a_recipe_trains_end_to_end_and_the_cli_reports_bad_input(tmp_path, objective):
    from polyjepa.runner import pretrain

    (tmp_path / "clips").mkdir()
    for k in range(6):
        _write(tmp_path / "clips" / f"c{k}.mkv", n_frames=24, shift=4 * k)
    s = pretrain("clip-av", data=str(tmp_path / "clips"), out=str(tmp_path / "run"), progress=False,
                 overrides=["train.max_steps=4", "train.batch_size=6", f"objective.name={objective}",
                            "tower_a.depth=1", "tower_b.depth=1", "data.test_size=2"] +
                           (["objective.anchors=4"] if objective == "sinkhorn" else []),
                 echo=lambda *a, **k: None)
    assert s["side_a"] == "video" and s["side_b"] == "audio" and s["steps"] == 4
    assert s["n_train"] == 12 and s["n_test"] == 6
    assert set(s["results"]) == {"trained", "random_init", "raw_cca"}
    for row in s["results"].values():
        assert 0 <= row["a2b_r1"] <= row["a2b_r5"] <= 1 and 1 <= row["b2a_medr"] <= 6
    if objective == "clip":
        from polyjepa.paired.run import embed_side, load_paired_run

        method, pairs = load_paired_run(tmp_path / "run")
        z = embed_side(method, pairs.b[pairs.test][:, 0], "b")
        assert z.shape == (6, 64) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
        (tmp_path / "clips" / "c5.mkv").write_bytes(b"garbage" * 100)
        import subprocess
        import sys

        r = subprocess.run([sys.executable, "-m", "polyjepa", "pretrain", "clip-av", "--data", str(tmp_path / "clips"),
                            "--out", str(tmp_path / "run2")], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "polyjepa: error:" in r.stderr
        assert "c5.mkv" in r.stderr
