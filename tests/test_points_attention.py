"""The point predictors' cross-attention blocks against the attention formula, in fp32 and under bf16 autocast."""
import pytest
import torch

from polyjepa.points.asymdsd import CrossBlock
from polyjepa.points.predictor import InjectBlock


def _reference(block, q, ctx, attn_mask, keys_include_queries):
    """The block written out in float64: q + proj(softmax(Q K^T / sqrt(hs)) V), then q + mlp(norm(q))."""
    block = block.double()
    q, ctx = q.double(), ctx.double()
    B, Lq, D = q.shape
    h, hs = block.heads, D // block.heads
    qn = block.norm_q(q)
    kv_in = torch.cat([block.norm_ctx(ctx), qn], 1) if keys_include_queries else block.norm_ctx(ctx)
    k, v = block.kv(kv_in).split(D, dim=-1)
    heads = []
    for i in range(h):
        sl = slice(i * hs, (i + 1) * hs)
        scores = block.q(qn)[..., sl] @ k[..., sl].transpose(1, 2) / hs ** 0.5     # (B, Lq, Lk)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        heads.append(scores.softmax(-1) @ v[..., sl])
    out = q + block.proj(torch.cat(heads, -1))
    return (out + block.mlp(block.norm2(out))).float()


def _inputs(seed=0, B=2, Lq=6, Lc=5, D=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, Lq, D, generator=g), torch.randn(B, Lc, D, generator=g)


@pytest.mark.parametrize("masked", [False, True])
def test_inject_block_equals_the_definition(masked):
    torch.manual_seed(0)
    block = InjectBlock(16, 4).eval()
    q, ctx = _inputs()
    mask = None
    if masked:                                            # two query blocks of 3: each sees the context and itself
        mask = torch.ones(6, 11, dtype=torch.bool)
        mask[:3, 8:] = False
        mask[3:, 5:8] = False
    got = block(q, ctx, mask)
    assert torch.allclose(got, _reference(block, q, ctx, mask, True), atol=1e-5)


def test_cross_block_equals_the_definition():
    torch.manual_seed(1)
    block = CrossBlock(16, 2).eval()
    q, ctx = _inputs(1)
    assert torch.allclose(block(q, ctx), _reference(block, q, ctx, None, False), atol=1e-5)


@pytest.mark.parametrize("cls", [InjectBlock, CrossBlock])
def test_bf16_autocast_follows_fp32_and_trains(cls):
    torch.manual_seed(2)
    block = cls(32, 4)
    q, ctx = _inputs(2, Lq=24, Lc=16, D=32)
    want = block(q, ctx)
    q.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = block(q, ctx)
    assert (got.float() - want).abs().max() < 0.05 * want.abs().max()     # bf16 keeps ~3 digits
    got.float().sum().backward()
    assert torch.isfinite(q.grad).all() and all(torch.isfinite(p.grad).all() for p in block.parameters())
