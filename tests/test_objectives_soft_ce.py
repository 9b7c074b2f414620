"""The soft-label cross entropy shared by DINO, iBOT (AsymDSD) and Concerto's clustering loss."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyjepa.objectives import dino_loss, sinkhorn_knopp, soft_cross_entropy


def _logits(*shape, seed=0, scale=2.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _numpy_reference(s, t, c, ts, tt, sinkhorn_iterations=0):
    """Per (teacher view, student view) mean over rows of -sum_k P_t log P_s, by explicit loops in float64."""
    s, t = s.double().numpy(), t.double().numpy()
    out = np.zeros((len(t), len(s)))
    for i, tv in enumerate(t):
        if sinkhorn_iterations:                    # SwAV's Sinkhorn-Knopp: alternate prototype and sample sums
            q = np.exp((tv - tv.max()) / tt).T     # (K, n)
            q /= q.sum()
            for _ in range(sinkhorn_iterations):
                q /= q.sum(1, keepdims=True) * q.shape[0]
                q /= q.sum(0, keepdims=True) * q.shape[1]
            p_t = (q * q.shape[1]).T
        else:
            z = (tv - (0 if c is None else c.double().numpy())) / tt
            p_t = np.exp(z - z.max(-1, keepdims=True))
            p_t /= p_t.sum(-1, keepdims=True)
        for j, sv in enumerate(s):
            z = sv / ts
            log_p_s = z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
            out[i, j] = np.mean([-(p_t[r] * log_p_s[r]).sum() for r in range(len(sv))])
    return out


@pytest.mark.parametrize("ts, tt", [(0.1, 0.04), (0.1, 0.07), (0.5, 0.2), (1.0, 1.0)])
def test_centred_targets_equal_torch_cross_entropy_with_probabilities_and_loops(ts, tt):
    s, t, c = _logits(3, 6, 10, seed=1), _logits(2, 6, 10, seed=2), _logits(10, seed=3, scale=0.5)
    ce, entropy = soft_cross_entropy(s, t, student_temp=ts, teacher_temp=tt, center=c)
    assert ce.shape == (2, 3)
    for i in range(2):
        p_t = F.softmax((t[i] - c) / tt, dim=-1)
        for j in range(3):
            assert ce[i, j].item() == pytest.approx(F.cross_entropy(s[j] / ts, p_t).item(), rel=1e-5)
    assert np.allclose(ce.numpy(), _numpy_reference(s, t, c, ts, tt), rtol=1e-5)
    p = F.softmax((t - c) / tt, dim=-1)
    assert entropy.item() == pytest.approx(torch.special.entr(p).sum(-1).mean().item(), rel=1e-5)


def test_no_centre_is_a_zero_centre_and_the_centre_matters():
    s, t = _logits(2, 5, 8, seed=4), _logits(2, 5, 8, seed=5)
    kw = dict(student_temp=0.1, teacher_temp=0.05)
    plain = soft_cross_entropy(s, t, **kw)[0]
    assert torch.equal(plain, soft_cross_entropy(s, t, center=torch.zeros(8), **kw)[0])
    assert not torch.allclose(plain, soft_cross_entropy(s, t, center=torch.linspace(-1, 1, 8), **kw)[0])
    assert np.allclose(plain.numpy(), _numpy_reference(s, t, None, 0.1, 0.05), rtol=1e-5)


def test_sinkhorn_targets_equal_an_independent_computation():
    s, t = _logits(2, 12, 5, seed=6), _logits(3, 12, 5, seed=7)
    ce, entropy = soft_cross_entropy(s, t, student_temp=0.2, teacher_temp=0.3, centering="sinkhorn",
                                     sinkhorn_iterations=4)
    assert np.allclose(ce.numpy(), _numpy_reference(s, t, None, 0.2, 0.3, sinkhorn_iterations=4), rtol=1e-5)
    q = torch.stack([sinkhorn_knopp(v, temperature=0.3, iterations=4) for v in t])
    assert entropy.item() == pytest.approx(torch.special.entr(q).sum(-1).mean().item(), rel=1e-5)


def test_gradient_is_the_closed_form_and_the_teacher_gets_none():
    s = _logits(2, 4, 6, seed=8).requires_grad_()
    t = _logits(1, 4, 6, seed=9).requires_grad_()
    ce, _ = soft_cross_entropy(s, t, student_temp=0.5, teacher_temp=0.25)
    ce.sum().backward()
    # d/ds of mean_n CE(P_t, softmax(s / T)) is (softmax(s / T) - P_t) / (T n)
    want = (F.softmax(s.detach() / 0.5, -1) - F.softmax(t.detach() / 0.25, -1)) / (0.5 * 4)
    assert torch.allclose(s.grad, want, atol=1e-6)
    assert t.grad is None


def test_fp32_under_bf16_autocast():
    s, t = _logits(3, 32, 64, seed=10), _logits(2, 32, 64, seed=11)
    kw = dict(student_temp=0.1, teacher_temp=0.04, center=_logits(64, seed=12, scale=0.1))
    want = soft_cross_entropy(s, t, **kw)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = soft_cross_entropy(s.bfloat16(), t.bfloat16(), **kw)[0]
    assert got.dtype == torch.float32
    # the inputs are rounded to bf16 (~3 digits); a bf16 sum over the 32 x 64 products would be far coarser
    assert torch.allclose(got, soft_cross_entropy(s.bfloat16().float(), t.bfloat16().float(), **kw)[0], rtol=1e-6)
    assert torch.allclose(got, want, rtol=2e-2)


def test_dino_loss_is_the_mean_over_distinct_crop_pairs():
    s, t, c = _logits(4, 5, 7, seed=13), _logits(2, 5, 7, seed=14), _logits(7, seed=15, scale=0.3)
    ref = _numpy_reference(s, t, c, 0.1, 0.06)
    want = np.mean([ref[i, j] for i in range(2) for j in range(4) if i != j])
    assert dino_loss(s, t, c, student_temp=0.1, teacher_temp=0.06)["loss"].item() == pytest.approx(want, rel=1e-5)


def test_bad_shapes_and_centering():
    with pytest.raises(ValueError, match="Vs, n, K"):
        soft_cross_entropy(torch.zeros(4, 5), torch.zeros(4, 5), student_temp=0.1, teacher_temp=0.1)
    with pytest.raises(ValueError, match="Vs, n, K"):
        soft_cross_entropy(torch.zeros(1, 4, 5), torch.zeros(1, 3, 5), student_temp=0.1, teacher_temp=0.1)
    with pytest.raises(ValueError, match="centering"):
        soft_cross_entropy(torch.zeros(1, 4, 5), torch.zeros(1, 4, 5), student_temp=0.1, teacher_temp=0.1,
                           centering="mean")
