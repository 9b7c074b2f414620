"""Image JEPA variants: the sparse CNN skips masked cells, N-JEPA's noise schedule, DSeq-JEPA's ordering."""
import math

import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.errors import UserError
from polyjepa.models.predictor import MaskTokenPredictor
from polyjepa.tokenizers.posembed import sincos_2d
from polyjepa.vision import (DepthwiseConvPredictor, NoiseSchedule, NoisyMaskTokenPredictor, SequentialPredictor,
                             SparseResNet, saliency_order, sequence_attention_mask, token_saliency)


def _net(**kw):
    torch.manual_seed(0)
    return SparseResNet(image_size=(16, 16), in_channels=2, widths=(8, 12, 16), blocks=2, **kw).eval()


def test_sparse_resnet_never_reads_a_masked_pixel():
    net = _net()
    assert net.grid == (4, 4) and net.dim == 16
    keep = torch.tensor([[0, 1, 5, 6, 10, 15]])                       # cells of the 4x4 grid
    x = torch.randn(1, 2, 16, 16)
    z = net(x, keep)
    assert z.shape == (1, 6, 16)
    # cell 2 (rows 0-3, cols 8-11) is masked; it touches kept cells 1 and 6
    for r, c in [(0, 8), (3, 8), (4, 9)]:
        y = x.clone()
        y[0, :, r if r < 4 else 3, c] += 10.0 * torch.randn(2)
        torch.testing.assert_close(net(y, keep), z, rtol=0, atol=0)
    # a kept pixel does move the features, and without keep_idx the masked pixel does too
    y = x.clone()
    y[0, :, 1, 5] += 10.0
    assert not torch.allclose(net(y, keep), z)
    y = x.clone()
    y[0, :, 0, 8] += 10.0
    assert not torch.allclose(net(y)[:, keep[0]], net(x)[:, keep[0]])


def test_sparse_resnet_with_a_strided_stem_never_reads_a_masked_pixel():
    torch.manual_seed(0)
    net = SparseResNet(image_size=(16, 16), in_channels=1, widths=(8, 16), stem_stride=2).eval()
    assert net.grid == (4, 4)
    keep = torch.tensor([[0, 1, 3, 4, 6]])
    x = torch.randn(1, 1, 16, 16)
    y = x.clone()
    y[0, 0, 3, 8] += 10.0                                              # cell 2, next to kept cells 1, 3, 6
    torch.testing.assert_close(net(y, keep), net(x, keep), rtol=0, atol=0)
    y[0, 0, 3, 7] += 10.0                                              # cell 1, kept
    assert not torch.allclose(net(y, keep), net(x, keep))


def test_sparse_resnet_kept_features_are_the_full_features_where_nothing_is_masked():
    net = _net()
    x = torch.randn(3, 2, 16, 16)
    every = torch.arange(16).expand(3, -1)
    torch.testing.assert_close(net(x, every), net(x))


def test_cnn_backbone_pools_and_every_jepa_part_gets_a_gradient():
    cfg = load_recipe("cnnjepa-mnist", ["data.source=x.npz", "encoder.widths=[8,16]"])
    m = build_method(cfg, (1, 28, 28))
    assert m.backbone.grid == (7, 7)
    x = torch.randn(8, 1, 28, 28)
    c, t = m.masker(8, torch.Generator().manual_seed(0))
    out = m.loss({"x": x, "context_idx": c, "target_idx": t})
    out["loss"].backward()
    for mod in m.trainable_modules():
        for name, p in mod.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in m.target.parameters())
    assert m.embed(x, pool="grid:4").shape == (8, 17 * 16)
    assert m.embed(x, pool="mean").shape == (8, 16)


def test_depthwise_predictor_reads_context_and_is_shaped_per_block():
    torch.manual_seed(0)
    pred = DepthwiseConvPredictor(in_dim=16, grid=(4, 4), dim=8, depth=2)
    z = torch.randn(2, 5, 16)
    c = torch.tensor([[0, 1, 2, 3, 4]] * 2)
    t = torch.tensor([[[10, 11], [14, 15]]] * 2)
    p = pred(z, c, t)
    assert p.shape == (2, 2, 2, 16)
    z2 = z.clone()
    z2[:, 4] += 1.0                                                 # cell 4 is within 2 convs of cell 10? no: of 9
    assert not torch.allclose(pred(z2, c, t)[:, 0], p[:, 0]) or not torch.allclose(pred(z2, c, t)[:, 1], p[:, 1])
    with pytest.raises(ValueError, match="odd"):
        DepthwiseConvPredictor(in_dim=16, grid=(4, 4), kernel=2)


@pytest.mark.parametrize("shape, match", [((1, 30, 30), "does not tile"), ((1, 28, 26), "does not tile"),
                                          ((1, 100), "takes images")])
def test_cnn_jepa_refuses_images_that_do_not_tile(shape, match):
    cfg = load_recipe("cnnjepa-mnist", ["data.source=x.npz"])
    with pytest.raises(UserError, match=match) as e:
        build_method(cfg, shape)
    assert "\n" not in str(e.value)


def test_cnn_jepa_refuses_images_of_other_channels_in_one_line():
    m = build_method(load_recipe("cnnjepa-mnist", ["data.source=x.npz"]), (1, 28, 28))
    shapes = r"takes images of shape \(1, 28, 28\).*got a batch of shape \(2, 3, 28, 28\)"
    with pytest.raises(UserError, match=shapes) as e:
        m.embed(torch.randn(2, 3, 28, 28))
    assert "\n" not in str(e.value)


def test_cnn_jepa_refuses_a_tokenizer_or_another_encoder():
    with pytest.raises(UserError, match="has no tokenizer"):
        build_method(load_recipe("cnnjepa-mnist", ["data.source=x.npz", "tokenizer.name=patch2d"]), (1, 28, 28))
    cfg = load_recipe("cnnjepa-mnist", ["data.source=x.npz"])
    cfg.encoder = {"name": "vit", "size": "micro"}
    with pytest.raises(UserError, match="sparse_resnet"):
        build_method(cfg, (1, 28, 28))


# N-JEPA

def test_noise_schedule_alpha_bar_is_the_product_of_one_minus_beta():
    s = NoiseSchedule(beta=(1e-4, 0.02), steps=50)
    prod, expect = 1.0, []
    for i in range(50):
        prod *= 1 - (1e-4 + (0.02 - 1e-4) * i / 49)
        expect.append(prod)
    torch.testing.assert_close(s.alpha_bar, torch.tensor(expect), rtol=1e-6, atol=0)
    assert (s.alpha_bar.diff() < 0).all()


@pytest.mark.parametrize("step", [0, 20, 49])
def test_noised_values_have_the_closed_form_mean_and_variance(step):
    s = NoiseSchedule(beta=(1e-3, 0.1), steps=50)
    ab = float(s.alpha_bar[step])
    torch.manual_seed(0)
    x0 = torch.linspace(-2, 2, 7)
    n = 200_000
    xt = s.add_noise(x0.expand(n, -1), torch.full((n,), step))
    mean, var = xt.mean(0), xt.var(0)
    # standard errors: sqrt((1-ab)/n) for the mean, (1-ab) sqrt(2/n) for the variance; 5 of each
    torch.testing.assert_close(mean, math.sqrt(ab) * x0, rtol=0, atol=5 * math.sqrt((1 - ab) / n) + 1e-7)
    torch.testing.assert_close(var, torch.full((7,), 1 - ab), rtol=0, atol=5 * (1 - ab) * math.sqrt(2 / n) + 1e-7)


def test_noise_schedule_rejects_bad_settings():
    with pytest.raises(ValueError, match="beta"):
        NoiseSchedule(beta=(0.0, 0.02))
    with pytest.raises(ValueError, match="steps"):
        NoiseSchedule(steps=0)


def _predictors(**kw):
    pos = sincos_2d(16, (4, 4))
    torch.manual_seed(0)
    plain = MaskTokenPredictor(in_dim=8, dim=16, depth=2, heads=2, pos_embed=pos)
    torch.manual_seed(0)
    noisy = NoisyMaskTokenPredictor(in_dim=8, dim=16, depth=2, heads=2, pos_embed=pos, **kw)
    noisy.load_state_dict(plain.state_dict(), strict=False)
    return plain, noisy


def test_noisy_predictor_without_noise_is_the_i_jepa_predictor():
    plain, noisy = _predictors(noise=False)
    z, c, t = torch.randn(3, 6, 8), torch.arange(6).expand(3, -1), torch.arange(8, 16).view(1, 2, 4).expand(3, -1, -1)
    torch.testing.assert_close(noisy(z, c, t), plain(z, c, t))


def test_noisy_predictor_corrupts_positions_by_step_in_training_only():
    plain, noisy = _predictors(noise=True)
    z, c, t = torch.randn(3, 6, 8), torch.arange(6).expand(3, -1), torch.arange(8, 16).view(1, 2, 4).expand(3, -1, -1)
    steps0 = torch.zeros(3, dtype=torch.long)
    torch.manual_seed(1)
    a = noisy(z, c, t, steps0)
    torch.manual_seed(2)
    b = noisy(z, c, t, torch.full((3,), 999))
    assert not torch.allclose(a, b)
    noisy.eval()
    torch.testing.assert_close(noisy(z, c, t), plain(z, c, t))       # evaluation: clean positions


# DSeq-JEPA

def test_saliency_order_is_a_seeded_permutation_most_salient_first():
    scores = torch.rand(64, 5, generator=torch.Generator().manual_seed(0))
    scores[:, 3] = scores[:, 1]                                        # ties
    a = saliency_order(scores, torch.Generator().manual_seed(7))
    b = saliency_order(scores, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(a.sort(1).values, torch.arange(5).expand(64, -1))
    assert (scores.gather(1, a).diff(dim=1) <= 0).all()
    others = [saliency_order(scores, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(not torch.equal(o, a) for o in others)                 # ties really go by the seed


def test_token_saliency_needs_no_labels_and_rejects_unknown_kinds():
    h = torch.randn(2, 9, 4)
    s = token_saliency(h, "attention")
    torch.testing.assert_close(s.sum(1), torch.ones(2))
    torch.testing.assert_close(token_saliency(h, "norm"), h.norm(dim=-1))
    with pytest.raises(ValueError, match="saliency"):
        token_saliency(h, "labels")


def test_sequence_mask_reveals_only_earlier_blocks_and_never_a_blocks_own_positions():
    t = torch.tensor([[[4, 5], [5, 6], [7, 8]]])                      # blocks 1 and 2 share position 5
    m = sequence_attention_mask(3, t)[0, 0]                            # L = 3 + 2*2 + 3*2 = 13
    q = lambda k: slice(7 + 2 * k, 9 + 2 * k)                          # noqa: E731  queries of block k
    r = lambda j: slice(3 + 2 * j, 5 + 2 * j)                          # noqa: E731  revealed block j
    assert m[q(0), r(0)].sum() == 0 and m[q(0), r(1)].sum() == 0
    assert m[q(1), r(0)].tolist() == [[True, False], [True, False]]    # position 5 is in block 2: hidden from it
    assert m[q(2), r(0)].all() and m[q(2), r(1)].all()
    assert m[q(1), q(0)].sum() == 0 and m[:3, 3:].sum() == 0


def test_sequential_predictor_predicts_block_k_from_blocks_before_it():
    torch.manual_seed(0)
    pred = SequentialPredictor(in_dim=8, dim=16, depth=2, heads=2, pos_embed=sincos_2d(16, (4, 4)))
    z, c = torch.randn(2, 5, 8), torch.arange(5).expand(2, -1)
    t = torch.tensor([[[6, 7], [9, 10], [12, 13]]] * 2)
    h = torch.randn(2, 3, 2, 8)
    p = pred(z, c, t, revealed=h)
    h2 = h.clone()
    h2[:, 1] += 1.0                                                    # change what block 2 reveals
    p2 = pred(z, c, t, revealed=h2)
    torch.testing.assert_close(p2[:, :2], p[:, :2])                    # blocks 1 and 2 do not see it
    assert not torch.allclose(p2[:, 2], p[:, 2])                       # block 3 does
    h3 = h.clone()
    h3[:, 2] += 1.0                                                    # the last block is never revealed
    torch.testing.assert_close(pred(z, c, t, revealed=h3), p)


def test_dseq_method_orders_targets_by_teacher_saliency():
    m = build_method(load_recipe("dseqjepa-mnist", ["data.source=x.npz"]), (1, 28, 28))
    x = torch.randn(4, 1, 28, 28)
    c, t = m.masker(4, torch.Generator().manual_seed(0))
    _, sal = m.teacher(x)
    ordered = m.ordered_targets(t, sal)
    assert torch.equal(ordered.sort(1).values.flatten(1).sort(1).values, t.flatten(1).sort(1).values)
    block = sal.gather(1, ordered.flatten(1)).view(*ordered.shape).mean(-1)
    assert (block.diff(dim=1) <= 1e-7).all()
    out = m.loss({"x": x, "context_idx": c, "target_idx": t})
    out["loss"].backward()
    assert all(p.grad is not None for mod in m.trainable_modules() for p in mod.parameters())


def test_dseq_method_needs_the_sequential_predictor_and_takes_no_invariance():
    with pytest.raises(UserError, match="predictor.name=sequential"):
        build_method(load_recipe("dseqjepa-mnist", ["data.source=x.npz", "predictor.name=mask_token"]), (1, 28, 28))
    with pytest.raises(UserError, match="invariance"):
        build_method(load_recipe("dseqjepa-mnist", ["data.source=x.npz", "invariance.name=vicreg"]), (1, 28, 28))


def test_noisy_conv_predictor_is_clean_without_noise_and_noisier_at_later_steps():
    from polyjepa.vision import NoisyDepthwiseConvPredictor

    torch.manual_seed(0)
    noisy = NoisyDepthwiseConvPredictor(in_dim=8, grid=(4, 4), dim=8, depth=2, noise=True)
    torch.manual_seed(0)
    clean = NoisyDepthwiseConvPredictor(in_dim=8, grid=(4, 4), dim=8, depth=2, noise=False)
    clean.load_state_dict(noisy.state_dict(), strict=False)
    noisy.eval(), clean.eval()
    z, c, t = torch.randn(2, 6, 8), torch.arange(6).expand(2, -1), torch.arange(10, 14).view(1, 1, 4).expand(2, -1, -1)
    torch.testing.assert_close(noisy(z, c, t), clean(z, c, t))          # evaluation: no noise
    noisy.train(), clean.train()
    noisy.layers.eval(), clean.layers.eval()                           # batch norm in running-stats mode
    torch.manual_seed(3)
    a = noisy(z, c, t, torch.zeros(2, dtype=torch.long))                # abar_0 ~ 1: almost clean
    torch.manual_seed(3)
    b = noisy(z, c, t, torch.full((2,), 999))
    ref = clean(z, c, t)
    assert 0 < (a - ref).abs().max() < 0.1 * (b - ref).abs().max()      # the noise grows with the step


@pytest.mark.parametrize("recipe, predictor", [("dseqjepa-mnist", {"name": "sequential", "dim": 32, "depth": 2,
                                                                   "heads": 2}),
                                               ("njepa-mnist", {"name": "noisy_mask_token", "dim": 32, "depth": 2,
                                                                "heads": 2})])
def test_the_variants_also_run_on_a_vit(recipe, predictor):
    cfg = load_recipe(recipe, ["data.source=x.npz"])
    cfg.method = {"name": "dseq_jepa" if recipe.startswith("dseq") else "jepa", "reg_on": "tokens"}
    cfg.tokenizer, cfg.encoder = {"name": "patch2d", "patch_size": 4}, {"name": "vit", "size": "micro"}
    cfg.predictor = predictor
    m = build_method(cfg, (1, 28, 28))
    x = torch.randn(4, 1, 28, 28)
    c, t = m.masker(4, torch.Generator().manual_seed(0))
    m.loss({"x": x, "context_idx": c, "target_idx": t})["loss"].backward()
    assert all(p.grad is not None for mod in m.trainable_modules() for p in mod.parameters())


@pytest.mark.slow
def test_cnnjepa_digits_recipe_trains_and_is_probed_against_its_baselines(tmp_path):
    from polyjepa.runner import pretrain

    s = pretrain("cnnjepa-digits", out=str(tmp_path / "run"), overrides=["train.max_steps=4", "train.threads=1"],
                 progress=False, echo=lambda *a, **k: None)
    assert s["steps"] == 4 and math.isfinite(s["final_loss"])
    assert {"raw", "random_init"} <= set(s["baselines"]) and 0 < s["probe"]["linear"]["accuracy"] <= 1


def test_the_command_line_refuses_images_that_do_not_tile_in_one_line(tmp_path, capsys):
    import numpy as np

    from polyjepa.cli import main

    path = tmp_path / "images.npz"
    np.savez(path, images=np.random.default_rng(0).random((20, 30, 30), dtype=np.float32), labels=np.arange(20) % 2)
    code = main(["pretrain", "cnnjepa-mnist", "--data", str(path), "--out", str(tmp_path / "run"),
                 "data.test_size=4", "train.batch_size=8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("polyjepa: error: ")
    assert "image size 30x30 does not tile into cells of 4x4 pixels" in err
