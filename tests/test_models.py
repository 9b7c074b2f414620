import torch

from polyjepa.models import Backbone, MaskTokenPredictor, TransformerEncoder, gather_tokens, vit_encoder
import pytest

from polyjepa.tokenizers import ConvStem2D, PatchEmbed2D, sincos_1d, sincos_2d


def small_backbone(dim=32):
    tok = PatchEmbed2D(image_size=(8, 8), patch_size=2, in_channels=1, dim=dim)
    return Backbone(tok, TransformerEncoder(dim=dim, depth=2, heads=4))


def test_sincos_matches_formula():
    pos = torch.arange(5.0)
    e = sincos_1d(8, pos)
    i = torch.arange(4)
    expected = torch.cat([torch.sin(pos[:, None] / 10000 ** (i / 4)), torch.cos(pos[:, None] / 10000 ** (i / 4))], 1)
    assert torch.allclose(e, expected, atol=1e-6)
    g = sincos_2d(16, (3, 4))
    assert g.shape == (12, 16)
    assert torch.allclose(g[5, :8], sincos_1d(8, torch.tensor([1.0]))[0])  # row 1
    assert torch.allclose(g[5, 8:], sincos_1d(8, torch.tensor([1.0]))[0])  # col 1


def test_patch_embed_shapes_and_grid():
    tok = PatchEmbed2D(image_size=(8, 12), patch_size=4, in_channels=3, dim=16)
    assert tok.grid == (2, 3) and tok.num_tokens == 6
    assert tok(torch.randn(5, 3, 8, 12)).shape == (5, 6, 16)


def test_conv_stem_grid_and_receptive_field():
    torch.manual_seed(0)
    tok = ConvStem2D(image_size=(16, 24), patch_size=4, in_channels=2, dim=32)
    assert tok.grid == (4, 6) and [m.out_channels for m in tok.proj if hasattr(m, "out_channels")] == [8, 16, 32]
    x = torch.randn(1, 2, 16, 24)
    base = tok(x)
    assert base.shape == (1, 24, 32)
    # two stride-2 3x3 convolutions (padding 1): token row i sees pixel rows 4i-3 .. 4i+3 (likewise columns),
    # so a change at pixel (r, c) reaches exactly the tokens whose windows hold it
    for r, c in ((0, 0), (5, 9), (15, 23), (8, 12)):
        y = x.clone()
        y[0, 1, r, c] += 1.0
        changed = ((tok(y) - base).abs().amax(-1) > 0)[0].view(4, 6)
        want = torch.tensor([[4 * i - 3 <= r <= 4 * i + 3 and 4 * j - 3 <= c <= 4 * j + 3 for j in range(6)]
                             for i in range(4)])
        assert torch.equal(changed, want), (r, c)
    with pytest.raises(ValueError, match="power of 2"):
        ConvStem2D(image_size=(12, 12), patch_size=3, in_channels=1, dim=16)
    with pytest.raises(ValueError, match="2 positive widths"):
        ConvStem2D(image_size=(8, 8), patch_size=4, in_channels=1, dim=16, channels=[8])


def test_conv_stem_context_tokens_see_nothing_of_dropped_patches():
    torch.manual_seed(0)
    keep = torch.tensor([[0, 1, 5, 6, 10], [3, 4, 8, 9, 15]])  # 4 x 4 grid of 4-pixel patches
    x = torch.randn(2, 1, 16, 16)
    y = x.clone()
    dropped = torch.ones(2, 16, dtype=torch.bool).scatter_(1, keep, False)
    pixels = dropped.view(2, 1, 4, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    y[pixels] = torch.randn(int(pixels.sum()))  # change every pixel of every dropped patch
    for mask_input, same in ((True, True), (False, False)):
        bb = Backbone(ConvStem2D(image_size=(16, 16), patch_size=4, in_channels=1, dim=32, mask_input=mask_input),
                      TransformerEncoder(dim=32, depth=2, heads=4))
        assert torch.allclose(bb(x, keep_idx=keep), bb(y, keep_idx=keep), atol=1e-6) == same
        assert not torch.allclose(bb(x), bb(y), atol=1e-3)  # the full view sees them


def test_encoder_on_kept_tokens_equals_encoder_on_gathered_tokens():
    bb = small_backbone()
    x = torch.randn(3, 1, 8, 8)
    keep = torch.tensor([[0, 3, 5], [1, 2, 15], [4, 8, 9]])
    tokens = bb.tokenizer(x)
    assert torch.allclose(bb(x, keep_idx=keep), bb.encoder(gather_tokens(tokens, keep)), atol=1e-6)
    assert bb(x, keep_idx=keep).shape == (3, 3, 32)
    assert bb.embed(x).shape == (3, 32) and bb.embed(x, pool="tokens").shape == (3, 16 * 32)


def test_predictor_one_pass_equals_one_pass_per_block():
    """With isolated targets, predicting M blocks together equals M separate predictor passes."""
    torch.manual_seed(0)
    bb = small_backbone()
    pred = MaskTokenPredictor(in_dim=32, dim=16, depth=2, heads=2, pos_embed=bb.tokenizer.position_embedding(16))
    x = torch.randn(2, 1, 8, 8)
    ctx = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    tgt = torch.tensor([[[10, 11], [12, 13], [14, 15]], [[0, 1], [2, 3], [10, 11]]])
    z = bb(x, keep_idx=ctx)
    together = pred(z, ctx, tgt)
    assert together.shape == (2, 3, 2, 32)
    for m in range(3):
        alone = pred(z, ctx, tgt[:, m:m + 1])
        assert torch.allclose(together[:, m], alone[:, 0], atol=1e-5)


def test_sizes():
    e = vit_encoder("tiny")
    assert (e.dim, e.depth, e.heads) == (192, 12, 3)
    assert vit_encoder("small", depth=2).depth == 2


def test_grid_pooling_equals_regional_means():
    bb = small_backbone()  # 8x8 image, patch 2 -> 4x4 grid
    x = torch.randn(2, 1, 8, 8)
    h = bb(x)  # (2, 16, 32)
    g = h.view(2, 4, 4, 32)
    regions = [g[:, r:r + 2, c:c + 2].mean((1, 2)) for r in (0, 2) for c in (0, 2)]
    expected = torch.cat([h.mean(1)] + regions, dim=1)
    assert torch.allclose(bb.embed(x, pool="grid:2"), expected, atol=1e-6)
    import pytest

    with pytest.raises(ValueError, match="unknown pool"):
        bb.embed(x, pool="max")


def test_tokens_plus_input_pooling_is_the_tokens_then_the_tokenizer_output():
    bb = small_backbone().eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        got = bb.embed(x, pool="tokens+input")
        expected = torch.cat([bb(x).flatten(1), bb.tokenizer(x).flatten(1)], dim=1)
    assert got.shape == (2, 2 * 16 * 32)
    assert torch.equal(got, expected)
    assert torch.equal(got[:, :16 * 32], bb.embed(x, pool="tokens"))


def test_embed_array_of_no_samples_has_the_embedding_width():
    from polyjepa.eval import embed_array

    bb = small_backbone()
    x = torch.randn(3, 1, 8, 8).numpy()
    full = embed_array(bb, x, pool="grid:2")
    empty = embed_array(bb, x[:0], pool="grid:2")
    assert empty.shape == (0, full.shape[1]) and empty.dtype == full.dtype
