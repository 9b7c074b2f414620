"""MFCC baseline: the DCT against scipy and closed forms; summary statistics over the real frames only."""
import numpy as np
import pytest

from polyjepa.audio.mfcc import dct_matrix, mfcc, mfcc_summary


def test_dct_is_orthonormal_and_matches_scipy():
    scipy_fft = pytest.importorskip("scipy.fft")
    d = dct_matrix(32, 32)
    assert np.allclose(d @ d.T, np.eye(32))
    v = np.random.default_rng(0).normal(size=(5, 32))
    assert np.allclose(v @ dct_matrix(32, 13).T, scipy_fft.dct(v, type=2, norm="ortho")[:, :13])
    c = mfcc(np.full((32, 7), 2.0), 13)                      # a flat spectrum has only the 0th coefficient
    assert np.allclose(c[0], 2.0 * np.sqrt(32)) and np.allclose(c[1:], 0)


def test_summary_ignores_padding():
    rng = np.random.default_rng(1)
    spec = rng.normal(size=(2, 1, 16, 10)).astype(np.float32)
    spec[1, :, :, 6:] = 0.0                                  # clip 1 has 6 real frames
    f = mfcc_summary(spec, n_mfcc=4)
    assert f.shape == (2, 16)
    c = mfcc(spec[1, 0, :, :6].astype(np.float64), 4)
    d = np.diff(c, axis=1)
    expected = np.concatenate([c.mean(1), c.std(1), d.mean(1), d.std(1)])
    assert np.allclose(f[1], expected, atol=1e-5)
    assert not np.allclose(mfcc_summary(spec, valid=np.ones((2, 10), bool), n_mfcc=4)[1], expected)
