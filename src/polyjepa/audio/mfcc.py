"""MFCCs as the DCT of log-mel features, and per-clip summary statistics (the classical baseline)."""
from __future__ import annotations

import math

import numpy as np


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II: row k = s_k cos(pi k (2m + 1) / (2 n_in)), s_0 = sqrt(1/n), else sqrt(2/n)."""
    if not 1 <= n_out <= n_in:
        raise ValueError(f"need 1 <= n_out <= n_in, got {n_out} coefficients from {n_in} mel bins")
    k = np.arange(n_out)[:, None]
    m = np.arange(n_in)[None, :]
    d = np.cos(math.pi * k * (2 * m + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    d[0] /= math.sqrt(2.0)
    return d


def mfcc(log_mel: np.ndarray, n_mfcc: int = 13) -> np.ndarray:
    """(..., n_mels, frames) log-mel -> (..., n_mfcc, frames) cepstral coefficients (DCT over the mel axis)."""
    return np.einsum("km,...mt->...kt", dct_matrix(log_mel.shape[-2], n_mfcc), log_mel)


def mfcc_summary(x: np.ndarray, valid: np.ndarray | None = None, n_mfcc: int = 13) -> np.ndarray:
    """Per-clip statistics of MFCCs and their first differences over the real frames.

    Args:
        x: (n, 1, n_mels, frames) or (n, n_mels, frames) log-mel spectrograms.
        valid: (n, frames) bool, the frames that come from the clip (default: frames not all zero,
            the padding of ``load_audio``).
    Returns:
        (n, 4 * n_mfcc): mean and std of the MFCCs, mean and std of their deltas.
    """
    spec = x[:, 0] if x.ndim == 4 else x
    if valid is None:
        valid = np.abs(spec).sum(1) > 0
    c = mfcc(spec, n_mfcc)                                         # (n, K, T)
    w = valid[:, None, :].astype(np.float64)
    cnt = np.maximum(w.sum(-1), 1.0)
    mean = (c * w).sum(-1) / cnt
    std = np.sqrt((((c - mean[..., None]) ** 2) * w).sum(-1) / cnt)
    d = np.diff(c, axis=-1)
    wd = w[..., 1:] * w[..., :-1]
    cd = np.maximum(wd.sum(-1), 1.0)
    dmean = (d * wd).sum(-1) / cd
    dstd = np.sqrt((((d - dmean[..., None]) ** 2) * wd).sum(-1) / cd)
    return np.concatenate([mean, std, dmean, dstd], axis=1).astype(np.float32)
