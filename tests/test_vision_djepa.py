"""D-JEPA: the flow-matching loss at its ends against closed forms, the sampler, the method's batches and losses."""
import math

import pytest
import torch

from polyjepa.build import build_method
from polyjepa.config import load_recipe
from polyjepa.data import MaskedBatches
from polyjepa.errors import UserError
from polyjepa.vision.djepa import patchify, truncated_normal_ratio, unpatchify
from polyjepa.vision.flow_head import FlowHead, flow_matching_loss, sample_flow


def test_flow_loss_at_t0_and_t1_has_its_closed_form_for_any_head_input():
    """At t = 0 the head sees the noise alone, at t = 1 the data alone: a velocity that knows x (through z)
    scores exactly 0 at t = 0, and one that answers x at t = 1 scores exactly mean(noise^2)."""
    g = torch.Generator().manual_seed(0)
    n, P = 500, 16
    x, noise = torch.randn(n, P, generator=g) * 0.7 + 0.3, torch.randn(n, P, generator=g)
    knows_x = lambda x_t, t, z: z - x_t          # noqa: E731  (exact at t = 0: x - noise)
    zero, one = torch.zeros(n), torch.ones(n)
    assert flow_matching_loss(knows_x, x, x, zero, noise) == 0
    answers_x = lambda x_t, t, z: x_t            # noqa: E731  (at t = 1, x_t = x)
    torch.testing.assert_close(flow_matching_loss(answers_x, x, x, one, noise), noise.pow(2).mean())
    # a zero velocity: the loss is the mean of (x - noise)^2 whatever t
    zv = lambda x_t, t, z: torch.zeros_like(x_t)  # noqa: E731
    torch.testing.assert_close(flow_matching_loss(zv, x, x, torch.rand(n, generator=g), noise),
                               (x - noise).pow(2).mean())


def _gaussian_velocity(mu: float, sigma: float):
    """The exact marginal velocity E[x - eps | x_t] for x ~ N(mu, sigma^2) on the straight path."""
    def v(x_t, t, z):
        t = t[:, None]
        var = (1 - t) ** 2 + t ** 2 * sigma ** 2
        return mu + (t * sigma ** 2 - (1 - t)) / var * (x_t - t * mu)
    return v


def test_bayes_optimal_losses_at_the_ends_and_the_sampler_moments_for_gaussian_data():
    """For x ~ N(mu, sigma^2) and the exact velocity: least loss sigma^2 at t = 0 and 1 at t = 1; Euler
    integration from noise gives samples with mean mu and std sigma."""
    g = torch.Generator().manual_seed(1)
    mu, sigma, n = 1.5, 0.4, 200_000
    v = _gaussian_velocity(mu, sigma)
    x = mu + sigma * torch.randn(n, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 1, generator=g, dtype=torch.float64)
    z = torch.zeros(n, 1, dtype=torch.float64)
    l0 = flow_matching_loss(v, x, z, torch.zeros(n, dtype=torch.float64), noise)
    l1 = flow_matching_loss(v, x, z, torch.ones(n, dtype=torch.float64), noise)
    assert abs(l0 - sigma ** 2) < 0.01 and abs(l1 - 1.0) < 0.02
    s = sample_flow(v, torch.zeros(20_000, 1, dtype=torch.float64), 1, steps=200, generator=g)
    assert abs(s.mean() - mu) < 0.02 and abs(s.std() - sigma) < 0.02


def test_a_flow_head_learns_a_conditional_gaussian_towards_the_closed_form_losses():
    torch.manual_seed(0)
    head = FlowHead(size=2, cond_dim=1, width=64, depth=2)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        z = torch.randint(0, 2, (256, 1), generator=g).float()
        x = 2 * z - 1 + 0.1 * torch.randn(256, 2, generator=g)       # two well-separated modes, chosen by z
        loss = head.loss(x, z, g, repeats=2)
        opt.zero_grad(), loss.backward(), opt.step()
    z = torch.randint(0, 2, (2000, 1), generator=g).float()
    x = 2 * z - 1 + 0.1 * torch.randn(2000, 2, generator=g)
    noise = torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        l0 = flow_matching_loss(head, x, z, torch.zeros(2000), noise)
        l1 = flow_matching_loss(head, x, z, torch.ones(2000), noise)
        s = head.sample(z, steps=20, generator=g)
    assert l0 < 0.15 and abs(l1 - 1.0) < 0.15        # closed forms: 0.01 and 1
    assert ((s.mean(1) > 0) == (z[:, 0] > 0)).float().mean() > 0.95


def test_patchify_round_trips_and_the_mask_ratio_stays_in_its_range():
    x = torch.randn(2, 3, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 48) and torch.equal(p[0, 1], x[0, :, 0:4, 4:8].reshape(-1))
    assert torch.equal(unpatchify(p, 4, 3, (2, 3)), x)
    g = torch.Generator().manual_seed(0)
    r = torch.tensor([truncated_normal_ratio(g) for _ in range(4000)])
    assert r.min() >= 0.7 and r.max() <= 1.0
    # mean of N(1, 0.25^2) truncated to [0.7, 1]: 1 - 0.25 (phi(0) - phi(-1.2)) / (Phi(0) - Phi(-1.2))
    phi = lambda a: math.exp(-a * a / 2) / math.sqrt(2 * math.pi)   # noqa: E731
    Phi = lambda a: 0.5 * (1 + math.erf(a / math.sqrt(2)))          # noqa: E731
    assert abs(r.mean() - (1 - 0.25 * (phi(0) - phi(-1.2)) / (Phi(0) - Phi(-1.2)))) < 0.005


SMALL = ["encoder.depth=1", "method.decoder_dim=32", "method.decoder_depth=1", "method.head_width=32",
         "method.head_depth=1"]


@pytest.mark.parametrize("over", [[], ["method.head=pixel"], ["method.jepa_weight=0"]])
def test_djepa_trains_every_part_and_samples_images(over):
    cfg = load_recipe("djepa-mnist", SMALL + over + ["method.mask_ratio=[0.7,0.1,0.5,0.9]"])
    m = build_method(cfg, (1, 28, 28), seed=0)
    batch = MaskedBatches(torch.randn(64, 1, 28, 28), batch_size=16, make_batch=m.make_batch)[0]
    assert batch["visible_idx"].shape[1] + batch["masked_idx"].shape[1] == 49
    both = torch.cat([batch["visible_idx"], batch["masked_idx"]], 1).sort(1).values
    assert torch.equal(both, torch.arange(49).expand(16, -1))
    out = m(batch)
    assert torch.isfinite(out["loss"]) and (("jepa" in out) == (m.target is not None))
    out["loss"].backward()
    trainable = {id(p) for mod in m.trainable_modules() for p in mod.parameters()}
    for name, p in m.named_parameters():
        if name.startswith("target."):
            assert p.grad is None and id(p) not in trainable
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and id(p) in trainable, name
    s = m.sample(3, rounds=4, flow_steps=3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 28, 28) and torch.isfinite(s).all()


def test_djepa_refuses_bad_input_in_one_line():
    with pytest.raises(UserError, match="not a multiple of patch size 4") as e:
        build_method(load_recipe("djepa-mnist", SMALL), (1, 30, 28), seed=0)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="method.head='vae'"):
        build_method(load_recipe("djepa-mnist", SMALL + ["method.head=vae"]), (1, 28, 28), seed=0)
    with pytest.raises(UserError, match="generates images"):
        build_method(load_recipe("djepa-mnist", SMALL), (1, 28), seed=0)


def test_a_djepa_run_puts_its_samples_into_the_report(image_npz, tmp_path):
    import polyjepa as pj

    out = tmp_path / "run"
    pj.pretrain("djepa-mnist", data=str(image_npz), out=str(out), progress=False, echo=lambda *a, **k: None,
                overrides=SMALL + ["train.max_steps=2", "train.batch_size=16", "data.test_size=0.3",
                                   "eval.pool=mean", "train.monitor_every=0"])
    assert "plots/samples.png" in (out / "report.md").read_text()
    from PIL import Image

    with Image.open(out / "plots" / "samples.png") as im:   # 10 x 10 samples of 16 px with 2-px gaps
        assert im.size == (10 * 18, 10 * 18)
