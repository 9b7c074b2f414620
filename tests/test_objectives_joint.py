"""Joint-embedding objectives against independent computations and the method cards' closed forms."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyjepa.objectives import (DINOLoss, TiCoLoss, barlow_twins_loss, dino_loss, epps_pulley, intl_loss, iter_norm,
                                 koleo_loss, lejepa_loss, nt_xent_loss, sigreg_loss, sinkhorn_knopp,
                                 teacher_temperature, tico_loss, trace_loss, vicreg_loss)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- NT-Xent

def nt_xent_reference(a, b, tau):
    u = np.concatenate([a, b]).astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        denom = sum(math.exp(u[i] @ u[k] / tau) for k in range(2 * n) if k != i)
        total += -(u[i] @ u[p] / tau - math.log(denom))
    return total / (2 * n)


def test_nt_xent_matches_loop_reference():
    a, b = randn(6, 5, seed=1), randn(6, 5, seed=2)
    out = nt_xent_loss(a, b, temperature=0.3)
    assert out["loss"].item() == pytest.approx(nt_xent_reference(a.numpy(), b.numpy(), 0.3), rel=1e-5)


def test_nt_xent_closed_forms_and_invariances():
    n = 8
    collapsed = torch.ones(n, 4)
    assert nt_xent_loss(collapsed, collapsed, temperature=0.5)["loss"].item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)
    eye = torch.eye(n, 16)[:, :16]
    assert nt_xent_loss(eye, eye, temperature=0.5)["loss"].item() == pytest.approx(1.062879, abs=1e-6)
    assert 1.062879 == pytest.approx(math.log(1 + (2 * n - 2) * math.exp(-1 / 0.5)), abs=1e-6)
    a, b = randn(8, 5, seed=3), randn(8, 5, seed=4)
    base = nt_xent_loss(a, b)["loss"]
    q, _ = torch.linalg.qr(randn(5, 5, seed=5))
    scale = torch.rand(8, 1, generator=torch.Generator().manual_seed(6)) + 0.5
    assert nt_xent_loss(a * scale, b @ q @ q.T)["loss"].item() == pytest.approx(base.item(), rel=1e-5)
    assert nt_xent_loss(a @ q, b @ q)["loss"].item() == pytest.approx(base.item(), rel=1e-5)
    assert nt_xent_loss(b, a)["loss"].item() == pytest.approx(base.item(), rel=1e-6)
    with pytest.raises(ValueError):
        nt_xent_loss(a, b, temperature=0.0)


# ---------------------------------------------------------------- Barlow Twins

def test_barlow_twins_matches_batchnorm_reference_and_closed_forms():
    a, b = randn(32, 6, seed=1), randn(32, 6, seed=2)
    bn = torch.nn.BatchNorm1d(6, affine=False, eps=1e-5).double().train()
    c = bn(a.double()).T @ bn(b.double()) / 32
    expect = ((1 - c.diagonal()) ** 2).sum() + 0.01 * (c ** 2).sum() - 0.01 * (c.diagonal() ** 2).sum()
    assert barlow_twins_loss(a, b, lambd=0.01)["loss"].item() == pytest.approx(expect.item(), rel=1e-5)
    # Card: constant embeddings -> D; z_b = -z_a -> about 4D; identical iid views -> lambd D (D-1) / N.
    assert barlow_twins_loss(torch.ones(16, 32), torch.ones(16, 32))["loss"].item() == pytest.approx(32.0)
    z = randn(4096, 32, seed=3)
    assert barlow_twins_loss(z, -z)["on_diag"].item() == pytest.approx(128.0, rel=1e-3)
    assert barlow_twins_loss(z, z, lambd=5e-3)["loss"].item() == pytest.approx(5e-3 * 32 * 31 / 4096, rel=0.1)
    # Invariant to per-feature positive affine maps; symmetric in the views.
    scale, shift = torch.rand(6) + 0.5, randn(6, seed=4)
    base = barlow_twins_loss(a, b)["loss"].item()
    assert barlow_twins_loss(a * scale + shift, b)["loss"].item() == pytest.approx(base, rel=1e-4)
    assert barlow_twins_loss(b, a)["loss"].item() == pytest.approx(base, rel=1e-6)


# ---------------------------------------------------------------- VICReg

def vicreg_reference(a, b, lam=25.0, mu=25.0, nu=1.0):
    a, b = a.astype(np.float64), b.astype(np.float64)
    n, d = a.shape
    inv = ((a - b) ** 2).mean()

    def v(z):
        return np.mean(np.maximum(0, 1 - np.sqrt(z.var(0, ddof=1) + 1e-4)))

    def c(z):
        cov = np.cov(z, rowvar=False)
        return (np.sum(cov ** 2) - np.sum(np.diag(cov) ** 2)) / d

    return lam * inv + mu * (v(a) + v(b)) / 2 + nu * (c(a) + c(b))


def test_vicreg_matches_reference_and_closed_forms():
    a, b = randn(20, 7, seed=1) * 0.5, randn(20, 7, seed=2) * 1.5
    out = vicreg_loss(a, b)
    assert out["loss"].item() == pytest.approx(vicreg_reference(a.numpy(), b.numpy()), rel=1e-5)
    const = torch.full((16, 8), 3.0)
    assert vicreg_loss(const, const)["loss"].item() == pytest.approx(24.75, rel=1e-6)
    big = randn(64, 8, seed=3) * 5
    assert vicreg_loss(big, big)["invariance"].item() == 0.0
    assert vicreg_loss(big, big)["variance"].item() == 0.0
    assert vicreg_loss(b, a)["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-6)


# ---------------------------------------------------------------- TiCo

def test_tico_closed_form_memory_and_reference():
    eye = torch.eye(16)
    loss = TiCoLoss(16)
    assert loss(eye, eye)["loss"].item() == pytest.approx(0.05, rel=1e-6)
    assert loss(eye, eye)["loss"].item() == pytest.approx(0.095, rel=1e-6)
    loss.eval()
    before = loss.memory.clone()
    loss(eye, eye)
    assert torch.equal(loss.memory, before)  # no update outside training
    a, b, mem = randn(10, 4, seed=1), randn(10, 4, seed=2), torch.eye(4) * 0.1
    ua, ub = (a / a.norm(dim=1, keepdim=True)).double(), (b / b.norm(dim=1, keepdim=True)).double()
    c = 0.9 * mem.double() + 0.1 * ua.T @ ua / 10
    expect = 1 - (ua * ub).sum(1).mean() + 8 * np.mean([ua[i] @ c @ ua[i] for i in range(10)])
    out = tico_loss(a, b, mem)
    assert out["loss"].item() == pytest.approx(expect.item(), rel=1e-5)
    assert torch.allclose(out["memory"].double(), c, atol=1e-6)
    assert out["covariance"].item() >= 0


# ---------------------------------------------------------------- INTL

@pytest.mark.parametrize("axis", [0, 1])
def test_iter_norm_eigenvalues_follow_the_scalar_recursion(axis):
    z = randn(64, 12, seed=1) @ torch.diag(torch.linspace(0.2, 3.0, 12))
    z = z.double()
    w = iter_norm(z, iterations=4, axis=axis)
    if axis == 1:
        zc = z - z.mean(0)
        s = zc.T @ zc / 63
        out_cov = w.T @ w / 63
    else:
        zc = z - z.mean(1, keepdim=True)
        s = zc @ zc.T / 11
        out_cov = w @ w.T / 11
    lam = torch.linalg.eigvalsh(s / s.trace())
    p = torch.ones_like(lam)
    for _ in range(4):
        p = 1.5 * p - 0.5 * p ** 3 * lam
    expect = torch.sort(lam * p ** 2).values
    got = torch.linalg.eigvalsh(out_cov)
    assert torch.allclose(got, expect, atol=1e-5)
    assert (got < 1 + 1e-6).all()


def test_intl_loss_reference_and_symmetry():
    a, b = randn(16, 32, seed=1), randn(16, 32, seed=2)
    wa, wb = iter_norm(a, axis=0), iter_norm(b, axis=0)
    beta = 0.01 * (math.log2(16) - 3)
    expect = 2 - 2 * F.cosine_similarity(wa, wb).mean() + beta * (trace_loss(wa) + trace_loss(wb))
    ra = wa.var(1)
    assert trace_loss(wa).item() == pytest.approx(((ra - 1) ** 2).sum().item())
    assert intl_loss([a, b])["loss"].item() == pytest.approx(expect.item(), rel=1e-5)
    assert intl_loss([b, a])["loss"].item() == pytest.approx(expect.item(), rel=1e-5)
    three = intl_loss(torch.stack([a, b, a]), beta=0.1)["loss"].item()
    wa_tl = trace_loss(wa).item()
    pair = 2 - 2 * F.cosine_similarity(wb, wa).mean().item() + 0.1 * (trace_loss(wb).item() + wa_tl)
    same = 0 + 0.1 * 2 * wa_tl
    assert three == pytest.approx((pair + same) / 2, rel=1e-5)


# ---------------------------------------------------------------- SIGReg / LeJEPA

def epps_pulley_reference(x, knots=17, t_max=3.0):
    n = len(x)
    t = np.linspace(0, t_max, knots)
    dt = t_max / (knots - 1)
    w = np.full(knots, 2 * dt)
    w[[0, -1]] = dt
    w *= np.exp(-t ** 2 / 2)
    err = [(np.cos(tj * x).mean() - math.exp(-tj ** 2 / 2)) ** 2 + np.sin(tj * x).mean() ** 2 for tj in t]
    return n * float(np.dot(w, err))


def test_epps_pulley_matches_reference_and_card_values():
    x = randn(50, 3, seed=1).double() * 1.3 + 0.2
    got = epps_pulley(x)
    for k in range(3):
        assert got[k].item() == pytest.approx(epps_pulley_reference(x[:, k].numpy()), rel=1e-5)
    # Collapsed input: statistic / N = 0.4020 on the 17-knot grid.
    assert (epps_pulley(torch.zeros(100, 1)) / 100).item() == pytest.approx(0.4020, abs=1e-4)
    # Gaussian input: about sqrt(2 pi) - sqrt(2 pi / 3) = 1.0594 whatever N.
    for n in (64, 512):
        z = randn(200, n, 32, seed=n)
        val = sigreg_loss(z, num_slices=64, seed=0)["loss"].item()
        assert val == pytest.approx(1.06, abs=0.04)
    assert sigreg_loss(randn(256, 16, seed=9) * 2, seed=1)["loss"].item() > 20


def test_sigreg_directions_depend_on_seed_only():
    z = randn(64, 8, seed=1) * 1.5
    assert sigreg_loss(z, seed=3)["loss"].item() == sigreg_loss(z.clone(), seed=3)["loss"].item()
    assert sigreg_loss(z, seed=3)["loss"].item() != sigreg_loss(z, seed=4)["loss"].item()


def test_lejepa_loss_parts():
    v = randn(4, 32, 8, seed=1)
    out = lejepa_loss(v, n_global=2, lambd=0.05, seed=7)
    centre = v[:2].mean(0)
    inv = ((v - centre) ** 2).mean()
    sig = sigreg_loss(v, seed=7)["loss"]
    assert out["invariance"].item() == pytest.approx(inv.item(), rel=1e-6)
    assert out["sigreg"].item() == pytest.approx(sig.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.05 * sig.item() + 0.95 * inv.item(), rel=1e-6)
    swapped = lejepa_loss(v[[1, 0, 2, 3]], n_global=2, seed=7)["loss"].item()
    assert swapped == pytest.approx(out["loss"].item(), rel=1e-5)


# ---------------------------------------------------------------- DINO, Sinkhorn, KoLeo

def test_dino_closed_forms():
    k = 10
    t = randn(1, 6, k, seed=1)
    center = torch.zeros(k)
    p_t = F.softmax(t / 0.04, dim=-1)
    # Student equal to the teacher distribution (student_temp * log P_t as logits): loss = H(P_t).
    s = torch.cat([t, torch.log(p_t) * 0.1])
    out = dino_loss(s, t, center, student_temp=0.1, teacher_temp=0.04)
    h = -(p_t * p_t.log()).sum(-1).mean()
    assert out["loss"].item() == pytest.approx(h.item(), rel=1e-4)
    assert out["teacher_entropy"].item() == pytest.approx(h.item(), rel=1e-4)
    uniform = dino_loss(torch.zeros(2, 4, k), torch.zeros(2, 4, k), center)
    assert uniform["loss"].item() == pytest.approx(math.log(k), rel=1e-6)
    assert torch.allclose(dino_loss(torch.zeros(2, 4, k), t[:, :4] * 0 + 1.0, center)["center"], torch.full((k,), 0.1))


def test_dino_pairs_reference_and_module():
    s, t, c = randn(4, 5, 7, seed=1), randn(2, 5, 7, seed=2), randn(7, seed=3) * 0.1
    got = dino_loss(s, t, c, teacher_temp=0.05)["loss"].item()
    p_t = F.softmax((t - c) / 0.05, dim=-1)
    ls = F.log_softmax(s / 0.1, dim=-1)
    terms = [-(p_t[i] * ls[j]).sum(-1).mean() for i in range(2) for j in range(4) if i != j]
    assert got == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)
    mod = DINOLoss(7, centering="sinkhorn")
    out = mod(s, t, teacher_temp=0.05)
    assert torch.isfinite(out["loss"]) and torch.allclose(mod.center, 0.1 * t.mean((0, 1)))
    assert teacher_temperature(0.0) == 0.04 and teacher_temperature(0.15) == pytest.approx(0.055)
    assert teacher_temperature(0.9) == 0.07


def test_sinkhorn_marginals():
    scores = randn(256, 100, seed=1)
    q = sinkhorn_knopp(scores, temperature=0.5, iterations=3)
    assert torch.allclose(q.sum(1), torch.ones(256), atol=1e-5)
    q100 = sinkhorn_knopp(scores, temperature=0.5, iterations=100)
    assert torch.allclose(q100.sum(0), torch.full((100,), 2.56), atol=1e-3)
    assert torch.allclose(sinkhorn_knopp(torch.zeros(8, 5)), torch.full((8, 5), 0.2))
    perm_s, perm_k = torch.randperm(256), torch.randperm(100)
    assert torch.allclose(sinkhorn_knopp(scores[perm_s][:, perm_k], temperature=0.5), q[perm_s][:, perm_k], atol=1e-6)


def test_koleo_simplex_and_reference():
    n = 8
    simplex = torch.eye(n) - 1.0 / n
    assert koleo_loss(simplex)["loss"].item() == pytest.approx(-0.41334, abs=1e-5)
    z = randn(12, 5, seed=1)
    u = F.normalize(z, dim=1).double()
    d = torch.cdist(u, u) + torch.eye(12) * 10
    assert koleo_loss(z)["loss"].item() == pytest.approx(-(d.min(1).values + 1e-8).log().mean().item(), rel=1e-5)


# ---------------------------------------------------------------- all: symmetry and finite gradients

PAIRWISE = {
    "nt_xent": lambda a, b: nt_xent_loss(a, b),
    "barlow": lambda a, b: barlow_twins_loss(a, b),
    "vicreg": lambda a, b: vicreg_loss(a, b),
    "intl": lambda a, b: intl_loss([a, b]),
}


@pytest.mark.parametrize("name", sorted(PAIRWISE))
def test_symmetric_losses(name):
    a, b = randn(16, 8, seed=1), randn(16, 8, seed=2)
    assert PAIRWISE[name](a, b)["loss"].item() == pytest.approx(PAIRWISE[name](b, a)["loss"].item(), rel=1e-5)


ALL = {
    **PAIRWISE,
    "tico": lambda a, b: tico_loss(a, b, torch.eye(8) * 0.05),
    "sigreg": lambda a, b: sigreg_loss(torch.stack([a, b]), seed=1),
    "lejepa": lambda a, b: lejepa_loss(torch.stack([a, b, a * 0.5]), n_global=2, seed=1),
    "dino": lambda a, b: dino_loss(torch.stack([b, a]), torch.stack([b.detach()]), torch.zeros(8), centering="sinkhorn"),
    "koleo": lambda a, b: koleo_loss(torch.cat([a, b])),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_gradients_finite(name):
    a = randn(16, 8, seed=1).requires_grad_()
    b = randn(16, 8, seed=2).requires_grad_()
    ALL[name](a, b)["loss"].backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    # A collapsed batch still has finite gradients (eps inside the square roots).
    c = torch.ones(16, 8, requires_grad=True)
    d = (torch.ones(16, 8) + 1e-3 * randn(16, 8, seed=3)).requires_grad_()
    ALL[name](c, d)["loss"].backward()
    assert torch.isfinite(c.grad).all() and torch.isfinite(d.grad).all()
