"""A folder of audio files read lazily: each clip is decoded once, one at a time, into the ``audio`` loader's
log-mel spectrogram, written into a memory-mapped cache; each access reads the rows of one batch, so memory never
holds the waveform set."""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.lazy import filled_npy, stats_sample
from ..data.stream import LazySource, index_rows
from ..errors import UserError, warn
from .io import AUDIO_SUFFIXES, read_audio

STATS_CLIPS = 2000  # clips whose real frames give the standardisation (all of them when there are fewer)
CACHE_CLIPS = 64    # clips decoded and written to the cache per chunk
CACHE_VERSION = 1


class AudioFolderStream(LazySource):
    """The clips of a folder of .wav/.flac files as (k, 1, n_mels, frames) log-mels, read from a cache on access.

    The spectrograms are :func:`polyjepa.audio.data.load_audio`'s for a folder, sample for sample: resampled
    to one rate, Kaldi-style log-mels, cut or padded to ``frames`` (``crop``), standardised with one mean and
    std over the real frames, padding set to 0. Opening reads each file's header (rate); a file whose header
    cannot be read is skipped with a warning naming it, listed in ``skipped`` and appended to ``skip_log`` (a run's
    skip log, see :mod:`polyjepa.data.skiplog`) when given. The clips are then decoded
    one at a time into their spectrograms and real-frame masks, written into one memory-mapped array under
    ``cache`` (default: the user cache's ``audio`` folder), keyed by every file's path, size and modification
    time and the options, under a temporary name renamed when complete; a second opening reuses it. A clip
    that cannot be decoded then is an error naming it. The mean and std come from ``fitted`` (a trained run's
    meta) or from the real frames of ``stats_clips`` clips drawn at random (all of them, as the in-memory
    loader takes them, when there are no more). Labels are the class sub-folders, as in memory.

    Args:
        root: the folder (clips directly in it, or one sub-folder per class).
        sample_rate, n_mels, frames, win_ms, hop_ms, n_fft, f_min, f_max, window, crop: as ``load_audio``.
        fitted: a trained run's meta (its sample rate, mean and std are reused).
        cache: the folder of the spectrogram cache.
        skip_log: the file each skipped clip is appended to.
    """

    def __init__(self, root: str | Path, *, sample_rate: int | None = None, n_mels: int = 40, frames: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0, n_fft: int | None = None, f_min: float = 20.0,
                 f_max: float | None = None, window: str = "povey", crop: str = "center", fitted: dict | None = None,
                 stats_clips: int = STATS_CLIPS, seed: int = 0, cache: str | os.PathLike | None = None,
                 skip_log: str | os.PathLike | None = None):
        from .crop import CROPS
        from .data import _common_rate

        if crop not in CROPS:
            raise UserError(f"unknown data.crop {crop!r}: use one of {', '.join(CROPS)}")
        if sample_rate is not None and not sample_rate > 0:
            raise UserError(f"data.sample_rate must be a positive rate in Hz (or null for the data's own), got "
                            f"{sample_rate}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"data.stream=true reads a folder of audio files ({', '.join(sorted(AUDIO_SUFFIXES))}), "
                            f"not {str(root)!r}: pass a folder, or drop data.stream to read an .npz into memory")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise UserError(f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) found under {self.root}")
        classes = sorted({p.parent.relative_to(self.root).as_posix() for p in files})
        labelled = len(classes) > 1 or classes[0] != "."
        self.files, rates, labels, self.skipped = [], [], [], []
        self.skip_log, self.skip_reasons = (None if skip_log is None else Path(skip_log)), {}
        for f in files:
            info = _header(f)
            if isinstance(info, str):
                warn(f"skipping audio file {f}: {info}")
                self.skipped.append(str(f))
                self.record_skip(str(f), info)
                continue
            self.files.append(f)
            rates.append(info)
            labels.append(classes.index(f.parent.relative_to(self.root).as_posix()))
        if not self.files:
            raise UserError(f"no audio file under {self.root} can be read")
        self.labels = np.asarray(labels, dtype=np.int64) if labelled else None
        self.rates = np.asarray(rates, dtype=np.int64)
        fitted = fitted or {}
        self.rate = int(fitted.get("sample_rate") or sample_rate or _common_rate(rates, self.root))
        self.frames, self.crop = int(frames), crop
        self.fbank = {"n_mels": n_mels, "win_ms": win_ms, "hop_ms": hop_ms, "n_fft": n_fft, "f_min": f_min,
                      "f_max": f_max, "window": window}
        self.sample_shape = (1, int(n_mels), self.frames)
        self.mean = self.std = self.channel_norm = None
        self._rows = np.arange(len(self.files), dtype=np.int64)
        self.cache_file = self._build_cache(cache)
        if fitted.get("mean") is not None:
            self.mean, self.std = float(fitted["mean"]), float(fitted["std"])
            self.valid_fraction = fitted.get("valid_fraction")
        else:
            self._fit_stats(stats_clips, seed)

    def _fit_stats(self, n: int, seed: int) -> None:
        """Mean and std of the real frames of ``n`` clips (all, in order, when there are at most ``n``)."""
        pick = stats_sample(len(self), n, seed)
        specs, valid = self._spectrograms(pick)
        vals = specs.transpose(0, 2, 1)[valid]                   # (frames_real, n_mels)
        self.mean, self.std = float(vals.mean()), float(max(vals.std(), 1e-6))
        self.valid_fraction = float(valid.mean())

    def _decode(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(specs (k, n_mels, frames), valid (k, frames)) of files ``rows``, decoded one file at a time."""
        from .data import _spectrograms

        clips = (read_audio(self.files[int(i)])[0] for i in rows)  # a generator: one waveform in memory at a time
        return _spectrograms(clips, self.rates[rows].tolist(), [str(self.files[int(i)]) for i in rows],
                             rate=self.rate, frames=self.frames, crop=self.crop, **self.fbank)

    def _build_cache(self, cache) -> Path:
        """The .npy of (n, n_mels + 1, frames) float32: each clip's spectrogram and, last, its real-frame mask."""
        from ..eval.cache import cache_dir

        folder = Path(cache) if cache is not None else cache_dir() / "audio"
        files = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in self.files]
        key = json.dumps({"files": files, "rate": self.rate, "frames": self.frames, "crop": self.crop,
                          "fbank": self.fbank, "version": CACHE_VERSION}, sort_keys=True, default=str)
        out = folder / f"{self.root.name}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
        if out.exists():
            return out
        folder.mkdir(parents=True, exist_ok=True)
        n_mels = self.sample_shape[1]
        with filled_npy(out, (len(self.files), n_mels + 1, self.frames)) as mm:
            for i in range(0, len(self.files), CACHE_CLIPS):
                specs, valid = self._decode(np.arange(i, min(i + CACHE_CLIPS, len(self.files))))
                mm[i:i + len(specs), :n_mels] = specs
                mm[i:i + len(specs), n_mels] = valid
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_map", None)  # each DataLoader worker maps the cache itself
        return state

    def _spectrograms(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(specs (k, n_mels, frames), valid (k, frames)) of clips ``rows`` (of this source), from the cache."""
        if getattr(self, "_map", None) is None:
            self._map = np.load(self.cache_file, mmap_mode="r")
        at = self._rows[np.asarray(rows, dtype=np.int64)]
        order = np.argsort(at, kind="stable")  # read the file forwards, then restore the batch's order
        block = np.empty((len(at), *self._map.shape[1:]), np.float32)
        block[order] = self._map[at[order]]
        return block[:, :-1], block[:, -1] > 0.5

    def fitted_meta(self) -> dict:
        """What the in-memory loader's meta holds, so a run reuses the rate and the standardisation."""
        return {"sample_rate": self.rate, "mean": self.mean, "std": self.std, "n_mels": self.sample_shape[1],
                "frames": self.frames, "valid_fraction": self.valid_fraction}

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, idx) -> torch.Tensor:
        """(k, 1, n_mels, frames) float32 for an index array, tensor, list or slice; (1, n_mels, frames) for one."""
        if isinstance(idx, (int, np.integer)):
            return self[np.array([int(idx)])][0]
        idx = index_rows(idx, len(self))
        if not len(idx):
            return torch.empty((0, *self.sample_shape))
        specs, valid = self._spectrograms(idx)
        x = ((specs - self.mean) / self.std) * valid[:, None, :]  # padding -> 0 (the data mean)
        x = x[:, None].astype(np.float32)
        if self.channel_norm is not None:  # data.normalize=channel on top, as prepare() does in memory
            x = (x - self.channel_norm[0]) / self.channel_norm[1]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def set_normalisation(self, mean, std) -> None:
        """Standardise the (already standardised) spectrograms once more per channel (data.normalize=channel)."""
        self.channel_norm = (np.asarray(mean, np.float32).reshape(-1, 1, 1),
                             np.asarray(std, np.float32).reshape(-1, 1, 1))

    def channel_stats(self, n: int = 2000, seed: int = 0, chunk: int = 64) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of ``n`` clips' spectrograms drawn at random (all when there are no more),
        read ``chunk`` clips at a time and combined in float64, so memory holds one chunk."""
        from ..data.lazy import chunked_channel_stats

        pick = stats_sample(len(self), n, seed)
        norm, self.channel_norm = self.channel_norm, None
        try:
            return chunked_channel_stats(self[pick[i:i + chunk]].numpy() for i in range(0, len(pick), chunk))
        finally:
            self.channel_norm = norm

    def subset(self, indices) -> "AudioFolderStream":
        """The clips at ``indices`` (in that order) as a source of their own, standardised as this one."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = copy.copy(self)
        out._rows = self._rows[idx]
        out.labels = None if self.labels is None else self.labels[idx]
        return out

    def __repr__(self) -> str:
        return f"AudioFolderStream({str(self.root)!r}, {len(self)} clips of {self.sample_shape} at {self.rate} Hz)"


def _header(path: Path) -> int | str:
    """The sample rate of an audio file from its header, or why it cannot be read."""
    try:
        import soundfile as sf
    except ImportError:
        raise UserError("reading audio files needs the 'soundfile' package: pip install 'polyjepa[audio]'") from None
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile's errors: a bad header, an unknown format
        return f"it cannot be read ({e})"
    if info.frames == 0:
        return "it holds no samples"
    if info.samplerate <= 0:
        return f"its sample rate is {info.samplerate}"
    return int(info.samplerate)


def open_audio(source, *, label: str = "digit", group: str | None = None, fitted: dict | None = None, seed: int = 0,
               **options) -> AudioFolderStream:
    """The ``audio`` loader's data.stream=true form: a folder of clips, decoded batch by batch."""
    if group is not None:
        raise UserError(f"data.group={group!r} names an array of an .npz, but data.stream=true reads a folder: drop "
                        f"data.group")
    for k in ("test_groups", "group_seed"):
        options.pop(k, None)
    stream = AudioFolderStream(str(source), fitted=fitted, seed=seed, **options)
    stream.meta = {**stream.fitted_meta(), "label": label}
    return stream
