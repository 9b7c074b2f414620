"""RankMe, LiDAR, the covariance spectrum and the collapse alarm against closed forms."""
import numpy as np
import pytest
import torch

from polyjepa.diagnostics import collapse_alarm, covariance_spectrum, lidar, rankme, spectrum_summary


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rankme_of_k_equal_singular_values():
    q1, _ = torch.linalg.qr(randn(512, 256, seed=1))
    q2, _ = torch.linalg.qr(randn(256, 256, seed=2))
    s = torch.zeros(256)
    s[:10] = 3.0
    z = q1 @ torch.diag(s).double() @ q2.T
    assert rankme(z) == pytest.approx(10.004, abs=2e-3)
    assert rankme(torch.ones(50, 8)) == pytest.approx(1.0, abs=1e-4)
    x = randn(300, 20, seed=3)
    q, _ = torch.linalg.qr(randn(20, 20, seed=4))
    assert rankme(x @ q * 7.0) == pytest.approx(rankme(x), rel=1e-6)


def synthetic_views(n=300, q=10, d=12, k=4, seed=0):
    """Class signal in the first k of d dimensions, view noise in all of them."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n, d))
    centres[:, :k] = rng.normal(0, 10.0, (n, k))
    views = centres[:, None, :] + rng.normal(0, 1.0, (n, q, d))
    return torch.from_numpy(views)


def test_lidar_counts_signal_dimensions_and_is_invariant_to_linear_maps():
    e = synthetic_views()
    base = lidar(e, delta=1e-10)
    assert base == pytest.approx(4.0, abs=0.2)
    a = randn(12, 12, seed=5) + 3 * torch.eye(12, dtype=torch.float64)
    mapped = lidar(e @ a.T, delta=1e-10)
    assert mapped == pytest.approx(base, rel=1e-6)
    flat = e.reshape(-1, 12)
    assert abs(rankme(flat @ a.T) - rankme(flat)) > 0.1  # RankMe moves under the same map
    with pytest.raises(ValueError):
        lidar(e[:, :1])


def test_lidar_reference_loop():
    e = synthetic_views(n=20, q=3, d=5, k=2, seed=1)
    n, q, d = e.shape
    e_np = e.numpy()
    mu = e_np.mean(1)
    sb = sum(np.outer(m - mu.mean(0), m - mu.mean(0)) for m in mu) / (n - 1)
    sw = sum(np.outer(e_np[i, j] - mu[i], e_np[i, j] - mu[i]) for i in range(n) for j in range(q)) / (n * (q - 1))
    sw = sw + 1e-4 * np.eye(d)
    w, v = np.linalg.eigh(sw)
    isq = v @ np.diag(w ** -0.5) @ v.T
    lam = np.clip(np.linalg.eigvalsh(isq @ sb @ isq), 0, None)
    p = (lam + 1e-8) / (lam + 1e-8).sum()
    assert lidar(e) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-8)


def test_covariance_spectrum_recovers_known_eigenvalues():
    true = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25], dtype=torch.float64)
    q, _ = torch.linalg.qr(randn(5, 5, seed=1))
    n = 20000
    z = randn(n, 5, seed=2) * true.sqrt() @ q.T + 10.0
    ev = covariance_spectrum(z)
    assert torch.all(ev[:-1] >= ev[1:])
    assert torch.allclose(ev, true, rtol=4 * (2 / n) ** 0.5)
    wide = covariance_spectrum(randn(4, 10, seed=3))  # fewer samples than features: N - 1 non-zero
    assert wide.shape == (10,) and int((wide > 1e-9).sum()) == 3
    assert spectrum_summary(torch.tensor([1.0, 0.5, 1e-5, 0.0])) == {"n_above": 2, "top_share": pytest.approx(1 / 1.50001)}


def test_collapse_alarm_states_the_reason():
    assert collapse_alarm(30.0, 0.5) is None
    msg = collapse_alarm(1.2, 0.5)
    assert msg.startswith("COLLAPSE") and "RankMe 1.20" in msg
    assert "std" in collapse_alarm(30.0, 1e-6)


def test_lidar_of_wide_embeddings_equals_the_full_computation():
    e = synthetic_views(n=6, q=3, d=40, k=3, seed=2)  # d > n (q + 1): the reduced path
    n, q, d = e.shape
    mu = e.mean(1)
    cb, cw = mu - mu.mean(0), (e - mu[:, None]).reshape(-1, d)
    sb, sw = cb.T @ cb / (n - 1), cw.T @ cw / (n * (q - 1)) + 1e-4 * torch.eye(d, dtype=e.dtype)
    w, v = torch.linalg.eigh(sw)
    isq = v @ torch.diag(w.rsqrt()) @ v.T
    lam = torch.linalg.eigvalsh(isq @ sb @ isq).clamp_min(0)
    p = (lam + 1e-8) / (lam + 1e-8).sum()
    assert lidar(e) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-7)
