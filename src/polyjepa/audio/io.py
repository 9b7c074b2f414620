"""Read WAV/FLAC files into float waveforms (through the optional ``soundfile`` package)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(waveform (T,) float32 in [-1, 1], sample rate) of an audio file; channels are averaged to mono.

    Raises UserError for a missing, unreadable or empty file.
    """
    try:
        import soundfile as sf
    except ImportError:
        raise UserError("reading audio files needs the 'soundfile' package: pip install 'polyjepa[audio]'") from None
    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file {path} does not exist: pass an existing .wav or .flac file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors (bad header, unknown format) are RuntimeError/LibsndfileError
        raise UserError(f"cannot read audio file {path}: {e}; re-encode it as WAV or FLAC or remove it") from None
    if data.shape[0] == 0:
        raise UserError(f"audio file {path} holds no samples: remove it")
    return np.ascontiguousarray(data.mean(axis=1)), int(rate)
