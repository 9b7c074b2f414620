"""Video + audio pairs from one's own clips: the paired loader ``av_clips``.

A folder of video files, each with an audio track or with an audio file of the same name beside it, is
decoded with PyAV one file at a time (frames are resized as they are decoded; a file's audio is held only
while its clips are cut), into clips of ``frames`` frames taken every ``frame_step`` frames and, for each
clip, the audio of the same span of time: from the first frame's timestamp for ``frames x frame_step``
frame periods, resampled to ``sample_rate`` and turned into a log-mel spectrogram by the audio front end
(:func:`polyjepa.audio.melspec.log_mel`). Side a is the clip (C, T, H, W), side b its spectrogram
(1, n_mels, F); both are standardised with the training clips' statistics (the pixels per channel from exact
integer sums of each file's clips, the spectrograms over all their values). With ``stream=True`` each file is
decoded once into the user cache and side a is read from there per batch (:mod:`polyjepa.paired.av_stream`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")


@dataclass
class DecodedClip:
    """One file's decoded content: frames (T, H, W, 3) uint8, their start times (T,) in seconds, the frame
    period, and the mono audio (S,) float32 at ``rate`` starting at ``audio_start`` seconds."""

    frames: np.ndarray
    times: np.ndarray
    period: float
    audio: np.ndarray
    rate: int
    audio_start: float


def _av():
    try:
        import av
    except ImportError:
        raise UserError("reading video + audio clips needs PyAV: pip install 'polyjepa[video]'") from None
    return av


def _open(path: Path):
    av = _av()
    try:
        return av.open(str(path))
    except Exception as e:  # container errors come from FFmpeg through several exception types
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e}): re-encode it (e.g. H.264 + AAC in .mp4) or "
                        f"drop it from the folder") from None


def decode_video(path: Path, size: int, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(frames (T, size, size, 3) uint8, start times (T,) s, frame period s) of a file's first video stream."""
    with _open(path) as c:
        if not c.streams.video:
            raise UserError(f"{path} has no video stream: the folder must hold videos (or remove this file)")
        stream = c.streams.video[0]
        frames, times = [], []
        try:
            for frame in c.decode(stream):
                frames.append(frame.to_ndarray(width=size, height=size, format="rgb24"))
                times.append(float(frame.time) if frame.time is not None else len(times) / float(stream.average_rate))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except Exception as e:
            raise UserError(f"cannot decode the video of {path} ({type(e).__name__}: {e}): re-encode it") from None
        rate = stream.average_rate or stream.guessed_rate
    if not frames:
        raise UserError(f"{path} has a video stream with no frames: drop or re-encode it")
    if rate:
        period = 1.0 / float(rate)
    elif len(times) > 1:
        period = float(np.median(np.diff(times)))
    else:
        raise UserError(f"{path}: cannot tell its frame rate (one frame, no rate in the container): re-encode it")
    return np.stack(frames), np.asarray(times, np.float64), period


def decode_audio(path: Path, *, what: str) -> tuple[np.ndarray, int, float]:
    """(mono float32 samples, rate, start time s) of a file's first audio stream (``what`` names it in errors)."""
    av = _av()
    with _open(path) as c:
        if not c.streams.audio:
            raise UserError(f"{what} has no audio stream: every video needs a sound track, or an audio file of the "
                            f"same name beside it ({', '.join(AUDIO_SUFFIXES)})")
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono")    # to mono float at the stream's own rate
        parts, start, rate = [], None, stream.rate
        try:
            for frame in c.decode(stream):
                if start is None:
                    start = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray()[0])
                    rate = out.sample_rate
            for out in resampler.resample(None):
                parts.append(out.to_ndarray()[0])
        except Exception as e:
            raise UserError(f"cannot decode the audio of {what} ({type(e).__name__}: {e}): re-encode it") from None
    if not parts:
        raise UserError(f"{what} has an audio stream with no samples: drop or re-encode it")
    return np.concatenate(parts).astype(np.float32), int(rate), start or 0.0


def decode_file(video: Path, audio: Path | None, *, size: int, sample_rate: int,
                max_frames: int | None = None) -> DecodedClip:
    """Frames of ``video`` and the audio of ``audio`` (default: the video's own track) at ``sample_rate``."""
    import torch

    from ..audio.resample import resample

    frames, times, period = decode_video(video, size, max_frames)
    wave, rate, start = decode_audio(audio or video, what=str(audio or video))
    if rate != sample_rate:
        wave = resample(torch.from_numpy(wave)[None], rate, sample_rate)[0].numpy()
    return DecodedClip(frames, times, period, wave, sample_rate, start)


def cut_clips(d: DecodedClip, *, frames: int, frame_step: int = 1,
              max_clips: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Non-overlapping clips of ``frames`` frames every ``frame_step`` and, for each, the audio samples of the
    same time span: from the first frame's time for ``frames x frame_step`` frame periods (S samples,
    S = round(frames x frame_step x period x rate)); clips whose audio runs past the track are left out."""
    span = frames * frame_step
    n_samples = int(round(span * d.period * d.rate))
    out = []
    for first in range(0, len(d.frames) - span + 1, span):
        begin = int(round((d.times[first] - d.audio_start) * d.rate))
        if begin < 0 or begin + n_samples > len(d.audio):
            continue
        out.append((d.frames[first:first + span:frame_step], d.audio[begin:begin + n_samples]))
        if max_clips is not None and len(out) >= max_clips:
            break
    return out


def _pairs_of_folder(path: Path) -> list[tuple[Path, Path | None]]:
    if not path.is_dir():
        raise UserError(f"av_clips reads a folder of video files (with sound, or with an audio file of the same "
                        f"name beside each); {str(path)!r} is not a folder")
    videos = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise UserError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {path}: put the clips there")
    pairs = []
    for v in videos:
        audio = next((v.with_suffix(s) for s in AUDIO_SUFFIXES if v.with_suffix(s).is_file()), None)
        pairs.append((v, audio))
    return pairs


@dataclass
class FileClips:
    """One file's share of the pairs: ``clips`` (k, T, H, W, 3) uint8 (or where they are cached), the log-mels of
    their audio ``mels`` (k, n_mels, F) float32 (None when k = 0), the audio samples per clip, and the per-channel
    sums of the clips' pixels and of their squares (exact integers, for the standardisation)."""

    count: int
    samples: int
    mels: np.ndarray | None
    sums: list[int]
    squares: list[int]
    clips: np.ndarray | Path | None = None


def pixel_sums(clips: np.ndarray) -> tuple[list[int], list[int]]:
    """Per-channel sums of (k, T, H, W, C) uint8 pixels and of their squares, as exact integers (a clip at a time)."""
    sums = np.zeros(clips.shape[-1], np.int64)
    squares = np.zeros(clips.shape[-1], np.int64)
    for clip in clips:
        v = clip.reshape(-1, clips.shape[-1]).astype(np.int64)
        sums += v.sum(0)
        squares += (v * v).sum(0)
    return sums.tolist(), squares.tolist()


def file_clips(video: Path, audio: Path | None, *, frames: int, frame_step: int, size: int, sample_rate: int,
               n_mels: int, win_ms: float, hop_ms: float, clips_per_file: int | None) -> FileClips:
    """Decode one file and cut it into clips with the log-mel of each clip's audio (see the module doc); memory
    holds this file's frames and audio only while it is cut. Both the in-memory loader and its lazy form
    (:mod:`polyjepa.paired.av_stream`) compute a file's share here, so the two give the same values."""
    import torch

    from ..audio.melspec import log_mel

    limit = None if clips_per_file is None else clips_per_file * frames * frame_step
    d = decode_file(video, audio, size=size, sample_rate=sample_rate, max_frames=limit)
    cut = cut_clips(d, frames=frames, frame_step=frame_step, max_clips=clips_per_file)
    samples = int(round(frames * frame_step * d.period * d.rate))
    del d
    if not cut:
        return FileClips(0, samples, None, [0, 0, 0], [0, 0, 0],
                         np.zeros((0, frames, size, size, 3), np.uint8))
    clips = np.stack([c for c, _ in cut])
    waves = torch.from_numpy(np.stack([w for _, w in cut]))
    del cut
    try:
        mels = log_mel(waves, sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms).numpy()
    except ValueError as e:
        raise UserError(f"cannot make spectrograms of the clips' audio: {e}; use longer clips (data.frames)") from None
    return FileClips(len(clips), samples, mels.astype(np.float32, copy=False), *pixel_sums(clips), clips=clips)


def clips_to_float(clips: np.ndarray) -> np.ndarray:
    """(k, T, H, W, 3) uint8 clips -> (k, 3, T, H, W) float32 in [0, 1] (C-contiguous)."""
    out = np.ascontiguousarray(clips.transpose(0, 4, 1, 2, 3), dtype=np.float32)
    out /= np.float32(255.0)
    return out


def clip_standardisation(shares: list[FileClips], train_files, per_clip: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std + 1e-6), each (3,) float64, of the pixels / 255 of the clips of ``train_files``
    (``per_clip`` pixels per channel in a clip): exact integer sums, divided once (correctly rounded)."""
    import math

    n = sum(shares[f].count for f in train_files) * per_clip
    if n == 0:
        raise UserError("the training files give no clips (they are shorter than one clip): bring longer videos, "
                        "or lower data.frames or data.frame_step")
    s1 = [sum(shares[f].sums[c] for f in train_files) for c in range(3)]
    s2 = [sum(shares[f].squares[c] for f in train_files) for c in range(3)]
    mean = np.array([s / (255 * n) for s in s1], np.float64)
    std = np.array([math.sqrt((n * q - s * s) / (255 * 255 * n * n)) for s, q in zip(s1, s2)], np.float64)
    return mean, std + 1e-6


def _standardise(x: np.ndarray, train: np.ndarray, axes: tuple) -> np.ndarray:
    xt = x[train]
    mean = xt.mean(axis=axes, keepdims=True)
    std = xt.std(axis=axes, keepdims=True) + 1e-6
    return ((x - mean) / std).astype(np.float32)


def load_av_pairs(source: str, *, frames: int = 8, frame_step: int = 1, size: int = 32, sample_rate: int = 16000,
                  n_mels: int = 40, win_ms: float = 25.0, hop_ms: float = 10.0, clips_per_file: int | None = None,
                  test_size: float = 0.2, split_seed: int = 0, fitted: dict | None = None, stream: bool = False):
    """Aligned (video clip, log-mel of its audio) pairs from a folder of videos; see the module doc.

    Clips of one file stay on one side of the split (a held-out share ``test_size`` of the files, at least
    one), so the test pairs come from unseen files. Returns :class:`~polyjepa.paired.data.Pairs` with
    ``side_a='video'``, ``a`` (n, 3, frames, size, size) and ``b`` (n, 1, 1, n_mels, F) (one spectrogram per
    item), and labels from sub-folder names when the files sit in two or more sub-folders. ``stream``
    (``data.stream=true``): each file is decoded once into the user cache and side a is a lazy source of the
    same clips read per batch (:mod:`polyjepa.paired.av_stream`); side b, the split and labels are the same.
    """
    from .data import Pairs

    for key, value, low in (("frames", frames, 2), ("frame_step", frame_step, 1), ("size", size, 4),
                            ("sample_rate", sample_rate, 1000), ("n_mels", n_mels, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"data.{key}={value!r} must be a whole number >= {low}")
    path = Path(source)
    if not path.exists():
        raise UserError(f"av_clips source {source!r} does not exist: pass a folder of video files")
    files = _pairs_of_folder(path)
    options = dict(frames=frames, frame_step=frame_step, size=size, sample_rate=sample_rate, n_mels=n_mels,
                   win_ms=float(win_ms), hop_ms=float(hop_ms), clips_per_file=clips_per_file)
    if stream:
        from .av_stream import cached_shares

        shares = cached_shares(files, options)
    else:
        shares = [file_clips(video, audio, **options) for video, audio in files]
    if not any(s.count for s in shares):
        raise UserError(f"the videos under {path} are shorter than one clip of {frames} frames every {frame_step} "
                        f"(with audio): lower data.frames or data.frame_step")
    lens = {s.samples for s in shares if s.count}
    if len(lens) > 1:
        raise UserError(f"the videos under {path} have different frame rates (clip audio of {sorted(lens)} samples): "
                        f"re-encode them to one frame rate")
    owner = np.repeat(np.arange(len(files)), [s.count for s in shares])
    b = np.concatenate([s.mels for s in shares if s.count])[:, None, None]      # (n, K=1, 1, n_mels, F)
    n_files = len(files)
    if n_files < 2:
        raise UserError(f"{path} holds one video: bring at least two, so that clips of unseen files can be tested")
    rng = np.random.default_rng(split_seed)
    n_test = max(1, min(n_files - 1, int(round(test_size * n_files)) if test_size < 1 else int(test_size)))
    test_files = rng.permutation(n_files)[:n_test]
    test = np.isin(owner, test_files)
    if not test.any() or test.all():
        raise UserError("the split leaves no training or no test clips (the held-out files give none): set "
                        "data.test_size or data.split_seed, or bring longer videos")
    train_files = [f for f in range(n_files) if f not in set(test_files.tolist())]
    mean, std = clip_standardisation(shares, train_files, frames * size * size)
    if stream:
        from .av_stream import AVClipSource

        a = AVClipSource([s.clips for s in shares], [s.count for s in shares], frames=frames, size=size)
        a.set_normalisation(mean, std)
    else:
        a = clips_to_float(np.concatenate([s.clips for s in shares]))              # (n, 3, T, H, W)
        del shares
        a -= mean.astype(np.float32).reshape(1, -1, 1, 1, 1)
        a /= std.astype(np.float32).reshape(1, -1, 1, 1, 1)
    b = _standardise(b, ~test, (0, 1, 2, 3, 4))
    groups = [f[0].parent.relative_to(path).as_posix() for f in files]
    names = sorted(set(groups))
    y = np.asarray([names.index(groups[o]) for o in owner], np.int64) if len(names) > 1 else None
    meta = {"side_a": "video", "side_b": "audio", "sample_rate": sample_rate, "n_mels": n_mels,
            "frames": frames, "size": size, "files": n_files}
    return Pairs(a=a, b=b, texts=None, y=y, test=test, name=path.name, side_a="video", meta=meta,
                 side_b="audio")


load_av_pairs.paired = True  # the runner hands recipes with this loader to polyjepa.paired.run
