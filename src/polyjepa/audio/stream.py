"""A folder of audio files read lazily: each access reads and decodes the clips of one batch and turns them into
the ``audio`` loader's log-mel spectrograms, so memory holds a batch of clips, never the waveform set."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..data.stream import LazySource
from ..errors import UserError, warn
from .io import AUDIO_SUFFIXES, read_audio

STATS_CLIPS = 2000  # clips whose real frames give the standardisation (all of them when there are fewer)


class AudioFolderStream(LazySource):
    """The clips of a folder of .wav/.flac files as (k, 1, n_mels, frames) log-mels, decoded on access.

    The spectrograms are :func:`polyjepa.audio.data.load_audio`'s for a folder, sample for sample: resampled
    to one rate, Kaldi-style log-mels, cut or padded to ``frames`` (``crop``), standardised with one mean and
    std over the real frames, padding set to 0. The mean and std come from ``fitted`` (a trained run's meta)
    or from the real frames of ``stats_clips`` clips drawn at random (all of them, as the in-memory loader
    takes them, when there are no more). Opening reads each file's header only (length and rate); a file
    whose header cannot be read is skipped with a warning naming it and listed in ``skipped``. Labels are the
    class sub-folders, as the in-memory loader gives them.

    Args:
        root: the folder (clips directly in it, or one sub-folder per class).
        sample_rate, n_mels, frames, win_ms, hop_ms, n_fft, f_min, f_max, window, crop: as ``load_audio``.
        fitted: a trained run's meta (its sample rate, mean and std are reused).
    """

    def __init__(self, root: str | Path, *, sample_rate: int | None = None, n_mels: int = 40, frames: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0, n_fft: int | None = None, f_min: float = 20.0,
                 f_max: float | None = None, window: str = "povey", crop: str = "center", fitted: dict | None = None,
                 stats_clips: int = STATS_CLIPS, seed: int = 0):
        from .crop import CROPS
        from .data import _common_rate

        if crop not in CROPS:
            raise UserError(f"unknown data.crop {crop!r}: use one of {', '.join(CROPS)}")
        if sample_rate is not None and not sample_rate > 0:
            raise UserError(f"data.sample_rate must be a positive rate in Hz (or null for the data's own), got {sample_rate}")
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
        for f in files:
            info = _header(f)
            if isinstance(info, str):
                warn(f"skipping audio file {f}: {info}")
                self.skipped.append(str(f))
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
        if fitted.get("mean") is not None:
            self.mean, self.std = float(fitted["mean"]), float(fitted["std"])
            self.valid_fraction = fitted.get("valid_fraction")
        else:
            self._fit_stats(stats_clips, seed)

    def _fit_stats(self, n: int, seed: int) -> None:
        """Mean and std of the real frames of ``n`` clips (all, in order, when there are at most ``n``)."""
        pick = np.arange(len(self)) if len(self) <= n else np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        specs, valid = self._spectrograms(pick)
        vals = specs.transpose(0, 2, 1)[valid]                   # (frames_real, n_mels)
        self.mean, self.std = float(vals.mean()), float(max(vals.std(), 1e-6))
        self.valid_fraction = float(valid.mean())

    def _spectrograms(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(specs (k, n_mels, frames), valid (k, frames)) of clips ``rows``, read one file at a time."""
        from .data import _spectrograms

        clips = (read_audio(self.files[int(i)])[0] for i in rows)  # a generator: one waveform in memory at a time
        return _spectrograms(clips, self.rates[rows].tolist(), [str(self.files[int(i)]) for i in rows],
                             rate=self.rate, frames=self.frames, crop=self.crop, **self.fbank)

    def fitted_meta(self) -> dict:
        """What the in-memory loader's meta holds, so a run reuses the rate and the standardisation."""
        return {"sample_rate": self.rate, "mean": self.mean, "std": self.std, "n_mels": self.sample_shape[1],
                "frames": self.frames, "valid_fraction": self.valid_fraction}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx) -> torch.Tensor:
        """(k, 1, n_mels, frames) float32 for an index array, tensor, list or slice; (1, n_mels, frames) for one."""
        if isinstance(idx, (int, np.integer)):
            return self[np.array([int(idx)])][0]
        if isinstance(idx, slice):
            idx = np.arange(*idx.indices(len(self)))
        elif isinstance(idx, torch.Tensor):
            idx = idx.numpy()
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
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
        self.channel_norm = (np.asarray(mean, np.float32).reshape(-1, 1, 1), np.asarray(std, np.float32).reshape(-1, 1, 1))

    def channel_stats(self, n: int = 2000, seed: int = 0) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of ``n`` clips' spectrograms drawn at random (all when there are no more)."""
        from ..data.prepare import channel_stats

        pick = np.arange(len(self)) if len(self) <= n else np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        norm, self.channel_norm = self.channel_norm, None
        try:
            return channel_stats(self[pick].numpy())
        finally:
            self.channel_norm = norm

    def subset(self, indices) -> "AudioFolderStream":
        """The clips at ``indices`` (in that order) as a source of their own, standardised as this one."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = copy.copy(self)
        out.files = [self.files[int(i)] for i in idx]
        out.rates = self.rates[idx]
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
