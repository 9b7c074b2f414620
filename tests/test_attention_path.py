"""The attention kernel choice: in bf16 on a CPU the scores are computed explicitly (the fused kernel's backward is
slow there); both paths compute the same attention, masked or not, values and gradients."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from polyjepa.models.transformer import attention


def _qkv(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 10, 8, generator=g).to(dtype).requires_grad_() for _ in range(3)]


def _direct(q, k, v, mask=None):   # the definition, in float64
    q, k, v = (t.double() for t in (q, k, v))
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def test_fp32_uses_the_fused_kernel_and_matches_the_definition():
    q, k, v = _qkv(torch.float32)
    out = attention(q, k, v)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v))
    assert torch.allclose(out.double(), _direct(q, k, v), atol=1e-5)


def test_bf16_explicit_path_matches_the_definition_with_and_without_a_mask():
    mask = torch.rand(10, 10, generator=torch.Generator().manual_seed(1)) > 0.4
    mask |= torch.eye(10, dtype=torch.bool)
    for m in (None, mask):
        q, k, v = _qkv(torch.bfloat16)
        out = attention(q, k, v, m)
        assert out.dtype == torch.bfloat16
        ref = _direct(q, k, v, m)
        assert (out.double() - ref).abs().max() < 0.03          # bf16 has 8 bits of mantissa
        out.float().pow(2).sum().backward()
        ref_q = q.detach().double().requires_grad_()
        _direct(ref_q, k.detach(), v.detach(), m).pow(2).sum().backward()
        assert torch.allclose(q.grad.double(), ref_q.grad, atol=0.1, rtol=0.05)


def test_masked_keys_get_no_weight_in_the_explicit_path():
    q, k, v = _qkv(torch.bfloat16)
    mask = torch.ones(10, 10, dtype=torch.bool)
    mask[:, 7:] = False
    out = attention(q, k, v, mask)
    v2 = v.detach().clone()
    v2[..., 7:, :] = 1e3                      # values of keys nobody may attend to
    assert torch.equal(out, attention(q, k, v2, mask))
