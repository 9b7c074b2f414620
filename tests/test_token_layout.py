"""The residual stream is token-major in memory: a channel-major stream (the transposed output of a
convolution) makes every layer norm and linear layer copy it first."""
from __future__ import annotations

import torch

from polyjepa.models.encoder import TransformerEncoder
from polyjepa.models.transformer import Attention
from polyjepa.tokenizers.patch2d import PatchEmbed2D


def test_image_patches_come_out_token_major_with_the_same_values():
    torch.manual_seed(0)
    tok = PatchEmbed2D(image_size=(16, 16), patch_size=4, in_channels=3, dim=24)
    x = torch.randn(2, 3, 16, 16)
    out = tok(x)
    assert out.is_contiguous()
    channel_major = tok.proj(x).flatten(2).transpose(1, 2)
    assert not channel_major.is_contiguous()
    assert torch.equal(out, channel_major + tok.pos_embed)


def test_spectrogram_and_tubelet_patches_come_out_token_major_with_the_same_values():
    from polyjepa.audio.tokenizer import SpectrogramPatchEmbed
    from polyjepa.video.tubelet import TubeletEmbed

    torch.manual_seed(0)
    for tok, x in ((SpectrogramPatchEmbed(image_size=(16, 8), in_channels=1, dim=12, patch_size=(8, 4)),
                    torch.randn(2, 1, 16, 8)),
                   (TubeletEmbed(input_shape=(3, 4, 8, 8), patch_size=4, tubelet_size=2, dim=12),
                    torch.randn(2, 3, 4, 8, 8))):
        out = tok(x)
        assert out.is_contiguous(), type(tok).__name__
        assert torch.equal(out, tok.proj(x).flatten(2).transpose(1, 2) + tok.pos_embed), type(tok).__name__


def test_the_encoder_hands_its_blocks_a_token_major_stream():
    torch.manual_seed(0)
    enc = TransformerEncoder(dim=24, depth=2, heads=2).eval()
    seen = []
    enc.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    tokens = torch.randn(2, 24, 9).transpose(1, 2)   # (B, N, D), channel-major
    with torch.no_grad():
        strided = enc(tokens)
        packed = enc(tokens.contiguous())
    assert seen == [True, True]
    assert torch.allclose(strided, packed, atol=1e-6)


def test_attention_gradients_match_separate_projections():
    """The fused projection split into q, k, v by unbind: output and gradients as three separate linear maps."""
    torch.manual_seed(0)
    att = Attention(dim=12, heads=3).double()
    x = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    out = att(x)
    w, b = att.qkv.weight, att.qkv.bias
    q, k, v = (torch.nn.functional.linear(x, w[i * 12:(i + 1) * 12], b[i * 12:(i + 1) * 12])
               .view(2, 5, 3, 4).transpose(1, 2) for i in range(3))
    ref = att.proj(torch.softmax(q @ k.transpose(-2, -1) / 2.0, -1).matmul(v).transpose(1, 2).reshape(2, 5, 12))
    assert torch.allclose(out, ref, atol=1e-12)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, w), g)
    want = torch.autograd.grad(ref, (x, w), g)
    for a, c in zip(got, want):
        assert torch.allclose(a, c, atol=1e-10)
