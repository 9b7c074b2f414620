import pytest
import torch

from polyjepa.diagnostics import rankme
from polyjepa.objectives import latent_regression, vcr_loss


def test_latent_regression_matches_hand_computation():
    torch.manual_seed(0)
    p, t = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 4, 8)
    d = (p - t).abs()
    huber = torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()
    assert torch.allclose(latent_regression(p, t)["loss"], huber, atol=1e-6)
    assert torch.allclose(latent_regression(p, t, kind="l2")["loss"], ((p - t) ** 2).mean(), atol=1e-6)
    assert torch.allclose(latent_regression(p, t, kind="l1")["loss"], d.mean(), atol=1e-6)
    cos = (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1))
    assert torch.allclose(latent_regression(p, t, kind="cosine")["loss"], (1 - cos).mean(), atol=1e-6)
    assert latent_regression(t, t)["loss"] == 0


def test_latent_regression_gradient_only_to_prediction():
    p = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    latent_regression(p, t, kind="l2")["loss"].backward()
    assert torch.allclose(p.grad, 2 * (p - t).detach() / p.numel())
    assert t.grad is None
    with pytest.raises(ValueError, match="unknown latent loss"):
        latent_regression(p, t, kind="l3")


def test_vcr_matches_independent_loops():
    torch.manual_seed(1)
    z = torch.randn(16, 5) * torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0])
    out = vcr_loss(z, var_weight=2.0, cov_weight=0.5)
    B, D = z.shape
    mean = [sum(z[b, j] for b in range(B)) / B for j in range(D)]
    var = sum(max(0.0, 1.0 - float((sum((z[b, j] - mean[j]) ** 2 for b in range(B)) / (B - 1) + 1e-4) ** 0.5))
              for j in range(D)) / D
    cov = 0.0
    for i in range(D):
        for j in range(D):
            if i != j:
                c = sum((z[b, i] - mean[i]) * (z[b, j] - mean[j]) for b in range(B)) / (B - 1)
                cov += float(c) ** 2
    assert abs(float(out["var"]) - var) < 1e-5
    assert abs(float(out["cov"]) - cov / D) < 1e-4
    assert abs(float(out["loss"]) - (2 * var + 0.5 * cov / D)) < 1e-4


def test_vcr_closed_forms():
    const = torch.ones(8, 4)
    out = vcr_loss(const)
    assert abs(float(out["var"]) - (1 - 1e-2)) < 1e-6  # relu(1 - sqrt(0 + 1e-4))
    assert float(out["cov"]) == 0
    # decorrelated channels with std >= 1 cost nothing
    q = torch.linalg.qr(torch.randn(64, 64))[0][:, :8] * 8.0  # orthogonal columns, centred enough?
    q = q - q.mean(0)
    q = torch.linalg.qr(q)[0] * 8.0
    out = vcr_loss(q)
    assert float(out["var"]) == 0 and float(out["cov"]) < 1e-3


def test_rankme_closed_form():
    for k in (1, 3, 10):
        u = torch.linalg.qr(torch.randn(50, k))[0]
        v = torch.linalg.qr(torch.randn(20, k))[0]
        assert abs(rankme(u @ v.T * 3.0) - k) < 1e-3
    z = torch.randn(500, 16)
    assert 14 < rankme(z) <= 16
