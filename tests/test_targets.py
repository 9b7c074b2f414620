import torch

from polyjepa.config import load_recipe
from polyjepa.build import build_augment, build_method
from polyjepa.data import MaskedBatches
from polyjepa.targets import EMATarget, ema_update, momentum_at


def test_ema_update_formula():
    t = [torch.randn(3, 4), torch.randn(5)]
    o = [torch.randn(3, 4), torch.randn(5)]
    expected = [0.9 * a + 0.1 * b for a, b in zip(t, o)]
    ema_update(t, o, 0.9)
    for a, e in zip(t, expected):
        assert torch.allclose(a, e, atol=1e-6)


def test_momentum_schedule_endpoints():
    assert momentum_at(0, 100, 0.996, 1.0) == 0.996
    assert momentum_at(100, 100, 0.996, 1.0) == 1.0
    assert abs(momentum_at(50, 100, 0.996, 1.0) - 0.998) < 1e-12
    assert abs(momentum_at(50, 100, 0.99, 1.0, kind="cosine") - 0.995) < 1e-12


def test_every_trainable_parameter_gets_a_finite_gradient_and_the_target_none(tiny_overrides):
    cfg = load_recipe("ijepa-digits", tiny_overrides + ["regularizer.name=vcr"])
    method = build_method(cfg, (1, 8, 8), seed=0)
    x = torch.randn(400, 1, 8, 8)
    batch = MaskedBatches(x, batch_size=16, masker=method.masker, augment=build_augment(cfg))[0]
    out = method(batch)
    out["loss"].backward()
    trainable = [(n, p) for n, p in method.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("target.") for n, _ in trainable)
    for name, p in trainable:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    for p in method.target.parameters():
        assert p.grad is None and not p.requires_grad


def test_target_update_moves_toward_online():
    online = torch.nn.Linear(4, 4)
    target = EMATarget(torch.nn.Sequential(), momentum=(0.5, 0.5))
    target.model = torch.nn.Linear(4, 4).requires_grad_(False)
    before = target.model.weight.clone()
    target.update(online, 0, 10)
    assert torch.allclose(target.model.weight, 0.5 * before + 0.5 * online.weight.detach())


def test_batch_standardized_targets_have_zero_mean_unit_variance_per_position():
    from polyjepa.targets.ema import batch_standardize

    h = torch.randn(32, 5, 7) * 3 + torch.arange(5.0).view(1, 5, 1)  # a position-only offset
    z = batch_standardize(h)
    assert torch.allclose(z.mean(0), torch.zeros(5, 7), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(5, 7), atol=1e-3)
    assert torch.allclose(z, (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5), atol=1e-5)


def test_regulariser_sees_pooled_or_token_embeddings(tiny_overrides):
    from polyjepa.models.transformer import gather_tokens

    for reg_on in ("pooled", "tokens"):
        cfg = load_recipe("ijepa-digits", tiny_overrides + ["regularizer.name=vcr", f"method.reg_on={reg_on}"])
        method = build_method(cfg, (1, 8, 8), seed=0)
        batch = MaskedBatches(torch.randn(64, 1, 8, 8), batch_size=16, masker=method.masker)[0]
        out = method(batch)
        z = method.backbone(batch["x"], keep_idx=batch["context_idx"])
        p = method.predictor(z, batch["context_idx"], batch["target_idx"])
        h = gather_tokens(method.target(batch["x"]), batch["target_idx"])
        e = z.mean(1) if reg_on == "pooled" else z.reshape(-1, z.shape[-1])
        expected = torch.nn.functional.smooth_l1_loss(p, h) + method.regularizer(e)["loss"]
        torch.testing.assert_close(out["loss"], expected)
