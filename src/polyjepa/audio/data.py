"""The ``audio`` data loader: clips -> fixed-size normalised log-mel spectrograms (n, 1, n_mels, frames)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded, label_vector, labels_or_targets, read_numpy
from ..errors import UserError
from .io import AUDIO_SUFFIXES, read_audio


def load_audio(source: str, *, label: str = "digit", sample_rate: int | None = None, n_mels: int = 40,
               frames: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0, n_fft: int | None = None,
               f_min: float = 20.0, f_max: float | None = None, window: str = "povey", crop: str = "center",
               group: str | None = None, test_groups: float = 0.25, group_seed: int = 0,
               fitted: dict | None = None) -> Loaded:
    """Load clips and turn each into a log-mel spectrogram of ``frames`` frames, standardised per data set.

    ``source`` is an .npz in the FSDD layout (``audio`` int16/float concatenated clips, ``offsets``,
    ``lengths``, ``sample_rate``, label arrays such as ``digit``/``speaker``, none for unlabelled clips; ``audio`` may be
    ``(samples, channels)``, averaged to mono; a ``take`` array gives the official FSDD split, takes 0-4 test), an
    .npz of equal-length clips (``audio`` ``(clips, samples)`` without ``offsets``/``lengths``, plus
    ``sample_rate`` and label arrays), or a folder of .wav/.flac files (one sub-folder per class gives labels).
    ``group`` names an array of the .npz whose values tie clips together (the recording a clip was cut
    from): the test part is then whole groups, a ``test_groups`` fraction of them drawn with ``group_seed``,
    so that no recording has clips on both sides. Clips are resampled to ``sample_rate`` (default: the data's own rate), turned into
    Kaldi-style log-mel features (see ``log_mel``), cut to their centre ``frames`` or padded at the end
    (``crop``: see ``crop_or_pad``; ``stretch`` resamples each clip's time axis to ``frames``).
    Values are standardised with the mean and std of the real (unpadded) training frames, one scalar
    pair per data set (the AudioMAE convention); padding is then 0. Set ``data.normalize: none`` in
    the recipe: this loader normalises. ``fitted`` (a trained run's meta) reuses its statistics and rate.

    Returns Loaded with x (n, 1, n_mels, frames) float32 and meta {sample_rate, mean, std, valid_fraction, ...}.
    """
    from .crop import CROPS

    if crop not in CROPS:
        raise UserError(f"unknown data.crop {crop!r}: use one of {', '.join(CROPS)}")
    fitted = fitted or {}
    path = Path(source)
    if not path.exists():
        raise UserError(f"audio data {source!r} does not exist: pass an .npz in the FSDD layout or a folder of "
                        f".wav/.flac files")
    if path.is_dir():
        if group is not None:
            raise UserError(f"data.group={group!r} names an array of an .npz, but {source} is a folder: drop "
                            f"data.group or store the clips and their groups in an .npz")
        clips, rates, y, names = _folder_clips(path)
        test = None
    elif path.suffix == ".npz":
        clips, rates, y, test, names = _npz_clips(path, label, group, test_groups, group_seed)
    else:
        raise UserError(f"cannot read {source!r} as audio data: use an .npz in the FSDD layout or a folder of "
                        f".wav/.flac files")
    if sample_rate is not None and not sample_rate > 0:
        raise UserError(f"data.sample_rate must be a positive rate in Hz (or null for the data's own), got {sample_rate}")
    rate = int(fitted.get("sample_rate") or sample_rate or _common_rate(rates, path))
    specs, valid = _spectrograms(clips, rates, names, rate=rate, n_mels=n_mels, frames=frames, win_ms=win_ms,
                                 hop_ms=hop_ms, n_fft=n_fft, f_min=f_min, f_max=f_max, window=window, crop=crop)
    train = np.ones(len(specs), bool) if test is None else ~test
    if fitted.get("mean") is not None:
        mean, std = float(fitted["mean"]), float(fitted["std"])
    else:
        vals = specs[train].transpose(0, 2, 1)[valid[train]]     # (frames_real, n_mels)
        mean, std = float(vals.mean()), float(max(vals.std(), 1e-6))
    x = ((specs - mean) / std) * valid[:, None, :]               # padding -> 0 (the data mean)
    x = x[:, None].astype(np.float32)                             # (n, 1, n_mels, frames)
    meta = {"sample_rate": rate, "mean": mean, "std": std, "n_mels": n_mels, "frames": frames,
            "valid_fraction": float(valid[train].mean()), "label": label}
    if test is None:
        return Loaded(x, y, path.name, meta=meta)
    return Loaded(x[train], y[train] if y is not None else None, path.name, x_test=x[test],
                  y_test=y[test] if y is not None else None, meta=meta)


def _npz_clips(path: Path, label: str, group: str | None = None, test_groups: float = 0.25, seed: int = 0):
    with read_numpy(path) as z:
        keys = set(z.keys())
        need = {"audio", "sample_rate"}
        rows = "offsets" not in keys and "lengths" not in keys   # equal-length clips, one per row of ``audio``
        if not rows:
            need |= {"offsets", "lengths"}
        if not need <= keys:
            raise UserError(f"{path} has arrays {sorted(keys)} but audio data need {sorted(need)} (the FSDD "
                            f"layout: concatenated clips with offsets and lengths; or 'audio' as (clips, samples))")
        audio, rate = z["audio"], int(z["sample_rate"])
        if rows and audio.ndim != 2:
            raise UserError(f"{path}: 'audio' has shape {audio.shape} and no offsets/lengths: store equal-length "
                            f"clips as (clips, samples), or concatenated clips with 'offsets' and 'lengths'")
        if rows:
            n = np.full(len(audio), audio.shape[1], np.int64)
            off = np.arange(len(audio), dtype=np.int64) * audio.shape[1]
            audio = audio.reshape(-1)
        else:
            off, n = z["offsets"].astype(np.int64), z["lengths"].astype(np.int64)
        others = sorted(keys - need - {"take", "offsets", "lengths"})
        if label not in keys and others:
            raise UserError(f"{path} has no label array {label!r}: set data.label to one of {others}")
        if group is not None and group not in keys:
            raise UserError(f"{path} has no array {group!r} to group clips by: set data.group to one of {others} "
                            f"or to null")
        y = label_vector(z[label]) if label in keys else None    # no label arrays at all: unlabelled clips
        take = z["take"] if "take" in keys else None
        groups = label_vector(z[group]) if group is not None else None
    if len(off) != len(n) or (y is not None and len(y) != len(n)) or (groups is not None and len(groups) != len(n)):
        raise UserError(f"{path}: offsets ({len(off)}), lengths ({len(n)}), {label} "
                        f"({len(n) if y is None else len(y)}){'' if groups is None else f' and {group} ({len(groups)})'} "
                        f"differ in length")
    if audio.ndim not in (1, 2):
        raise UserError(f"{path}: 'audio' has shape {audio.shape}: store the clips concatenated along the first "
                        f"axis, (samples,) or (samples, channels)")
    if (off < 0).any() or (off + n > len(audio)).any():
        raise UserError(f"{path}: some clips run past the end of 'audio': fix offsets/lengths")
    scale = 32768.0 if audio.dtype == np.int16 else (2.0**31 if audio.dtype == np.int32 else 1.0)
    # (samples, channels), as soundfile writes multi-channel audio: channels are averaged, as read_audio does
    audio = audio.reshape(len(audio), -1)
    clips = [audio[o:o + k].astype(np.float32).mean(axis=1) / scale for o, k in zip(off, n)]
    y = labels_or_targets(y)[0] if y is not None else None
    if groups is not None:
        test = group_holdout(groups, test_groups, seed, where=f"{path} ({group})")
    else:
        test = (np.asarray(take) < 5) if take is not None else None   # FSDD's official split: takes 0-4 are test
    return clips, [rate] * len(clips), y, test, [f"{path.name}[{i}]" for i in range(len(clips))]


def group_holdout(groups, fraction: float, seed: int, where: str = "the data") -> np.ndarray:
    """Boolean test mask holding out whole groups: ``round(fraction * groups)`` of them (at least one, never all),
    drawn with ``seed``. Every clip of a group falls on the same side."""
    names = np.unique(groups)
    if len(names) < 2:
        raise UserError(f"{where} has {len(names)} group(s): a group-held-out split needs two or more; set "
                        f"data.group to null")
    if not 0 < fraction < 1:
        raise UserError(f"data.test_groups must be a fraction between 0 and 1, got {fraction}")
    k = min(max(1, int(round(fraction * len(names)))), len(names) - 1)
    held = np.random.default_rng(seed).choice(names, size=k, replace=False)
    return np.isin(groups, held)


def _folder_clips(path: Path):
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise UserError(f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) found under {path}")
    classes = sorted({p.parent.relative_to(path).as_posix() for p in files})
    clips, rates = zip(*(read_audio(f) for f in files))
    labelled = len(classes) > 1 or classes[0] != "."
    y = np.array([classes.index(p.parent.relative_to(path).as_posix()) for p in files]) if labelled else None
    return list(clips), list(rates), y, [str(f) for f in files]


def _common_rate(rates, path) -> int:
    found = sorted(set(rates))
    if len(found) > 1:
        raise UserError(f"the clips under {path} have different sample rates {found}: set data.sample_rate "
                        f"(e.g. data.sample_rate={found[0]}) to resample them to one")
    return found[0]


def _spectrograms(clips, rates, names, *, rate, frames, crop, **fbank):
    """(specs (n, n_mels, frames), valid (n, frames)) of the clips, each checked, resampled and cut/padded."""
    import torch

    if rate <= 0:
        raise UserError(f"data.sample_rate must be positive, got {rate}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny FFTs: threads only add contention (40 s vs 3 s on 2 cores)
    try:
        with torch.inference_mode():
            pairs = [_one_spectrogram(c, r, name, rate, frames, crop, fbank) for c, r, name in zip(clips, rates, names)]
    finally:
        torch.set_num_threads(threads)
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _one_spectrogram(clip, r, name, rate, frames, crop, fbank):
    import torch

    from .crop import crop_or_pad
    from .melspec import log_mel
    from .resample import resample

    if r <= 0:
        raise UserError(f"{name} has sample rate {r}: re-encode the file with a valid rate")
    if len(clip) == 0:
        raise UserError(f"{name} is empty (no samples): remove it")
    if not np.isfinite(clip).all():
        raise UserError(f"{name} contains NaN or inf samples: remove or repair it")
    if np.abs(clip).max() == 0:
        raise UserError(f"{name} is silent (every sample is 0): remove it")
    wave = resample(torch.from_numpy(np.ascontiguousarray(clip)), r, rate)
    try:
        spec = log_mel(wave, rate, **fbank)
    except ValueError as e:
        raise UserError(f"{name}: {e}: remove the clip or change data.win_ms/n_mels/f_max") from None
    spec, ok = crop_or_pad(spec, frames, crop=crop)
    return spec.numpy(), ok.numpy()
