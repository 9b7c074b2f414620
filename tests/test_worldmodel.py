"""Image world models: transforms whose parameters round-trip, the retrieval metric, the IWM method and recipe."""
import math

import numpy as np
import pytest
import torch

from polyjepa.data.augment import RandomAffine, affine_theta, warp
from polyjepa.errors import UserError
from polyjepa.worldmodel import ImageActions, mean_reciprocal_rank, rank_of_true
from polyjepa.worldmodel.retrieval import chance_mrr


def coordinate_image(h=33, w=33):
    """(1, 2, H, W): channel 0 holds each pixel's x, channel 1 its y, in [-1, 1] pixel-centre coordinates."""
    ys = (torch.arange(h) * 2 + 1) / h - 1
    xs = (torch.arange(w) * 2 + 1) / w - 1
    return torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)])[None], xs, ys


def test_affine_parameters_round_trip_through_the_images():
    """Warp an image of its own coordinates with known parameters, fit the affine map the output shows
    (bilinear sampling of a linear ramp is exact), and read the parameters back."""
    img, xs, ys = coordinate_image()
    params = {"angle": torch.tensor([math.radians(25.0), -0.3]), "zoom": torch.tensor([1.15, 0.9]),
              "tx": torch.tensor([0.1, -0.05]), "ty": torch.tensor([-0.08, 0.12])}
    out = warp(img.expand(2, -1, -1, -1), affine_theta(**params))
    inner = slice(8, 25)  # away from the border, where sampling stays inside the image
    P = torch.stack([xs.expand(33, 33), ys[:, None].expand(33, 33), torch.ones(33, 33)], -1)[inner, inner]
    P = P.reshape(-1, 3).double()
    for b in range(2):
        Q = out[b, :, inner, inner].permute(1, 2, 0).reshape(-1, 2).double()  # where each output pixel sampled
        A = torch.linalg.lstsq(P, Q).solution.T                              # (2, 3): Q = A [p; 1]
        zoom = 1 / torch.linalg.det(A[:, :2]).sqrt()
        angle = torch.atan2(A[1, 0], A[0, 0])
        assert float(zoom) == pytest.approx(float(params["zoom"][b]), abs=1e-4)
        assert float(angle) == pytest.approx(float(params["angle"][b]), abs=1e-4)
        assert float(A[0, 2]) == pytest.approx(float(params["tx"][b]), abs=1e-4)
        assert float(A[1, 2]) == pytest.approx(float(params["ty"][b]), abs=1e-4)


def test_a_positive_angle_turns_content_counter_clockwise_on_screen():
    """A bright dot to the right of the centre, turned by +90 degrees with zoom 1.5, lands above the
    centre (y down), 1.5 times as far; a shift tx moves it left by zoom * tx."""
    img = torch.zeros(1, 1, 41, 41)
    img[0, 0, 20, 30] = 1.0  # x = +10 pixels from the centre
    def centroid(a):
        w = a[0, 0].clamp_min(0)
        yy, xx = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
        return float((w * xx).sum() / w.sum()) - 20, float((w * yy).sum() / w.sum()) - 20
    one = torch.ones(1)
    cx, cy = centroid(warp(img, affine_theta(torch.tensor([math.pi / 2]), 1.5 * one, 0 * one, 0 * one)))
    assert cx == pytest.approx(0.0, abs=0.3) and cy == pytest.approx(-15.0, abs=0.3)
    cx, cy = centroid(warp(img, affine_theta(0 * one, one, 0.2 * one, 0 * one)))  # 0.2 of the half-side: 4.1 px
    assert cx == pytest.approx(10 - 0.2 * 20.5, abs=0.3) and cy == pytest.approx(0.0, abs=0.3)


def test_random_affine_draws_and_parameters_agree():
    aug = RandomAffine(rotate=20.0, scale=0.1, translate=0.3)
    x = torch.randn(5, 1, 12, 12)
    p = aug.sample(5, torch.Generator().manual_seed(3))
    assert torch.equal(aug(x, torch.Generator().manual_seed(3)), warp(x, affine_theta(**p)))
    assert (p["angle"].abs() <= math.radians(20) + 1e-6).all() and (p["zoom"] - 1).abs().max() <= 0.1 + 1e-6


def test_photometric_parameters_round_trip():
    acts = ImageActions(rotate=0.0, scale=0.0, translate=0.0, brightness=0.5, contrast=0.4)
    x = torch.randn(4, 1, 10, 10)
    u = acts.draw(4, torch.Generator().manual_seed(0))
    y = acts.apply(x, u)
    p = acts.params(u)
    for b in range(4):  # fit y = c x + b per image
        X = torch.stack([x[b].flatten(), torch.ones(100)], 1).double()
        c, bright = torch.linalg.lstsq(X, y[b].flatten().double()[:, None]).solution.flatten().tolist()
        assert c == pytest.approx(float(p["contrast"][b]), abs=1e-5)
        assert bright == pytest.approx(float(p["brightness"][b]), abs=1e-5)
    assert torch.allclose(acts.apply(x, torch.zeros(4, 6)), x, atol=1e-5)  # the zero action is the identity
    with pytest.raises(ValueError):
        ImageActions(contrast=1.5)


def test_rank_and_mrr_on_a_hand_made_case():
    dist = torch.tensor([[0.1, 0.5, 0.9],    # true candidate closest: rank 1
                         [0.6, 0.2, 0.9],    # one closer: rank 2
                         [0.9, 0.2, 0.3],    # two closer: rank 3
                         [0.5, 0.5, 0.9]])   # a tie counts against: rank 2
    assert rank_of_true(dist).tolist() == [1, 2, 3, 2]
    assert mean_reciprocal_rank(dist) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert rank_of_true(dist, true_index=2).tolist() == [3, 3, 2, 3]
    assert mean_reciprocal_rank(torch.zeros(5, 4)) == pytest.approx(1 / 4)  # no information: the worst rank
    assert chance_mrr(3) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    g = torch.Generator().manual_seed(0)
    assert mean_reciprocal_rank(torch.rand(20000, 16, generator=g)) == pytest.approx(chance_mrr(16), abs=0.01)


TINY = ["encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "predictor.dim=16", "predictor.depth=1",
        "predictor.heads=2", "train.batch_size=32", "train.max_steps=6", "train.monitor_every=0",
        "data.max_samples=300", "eval.pool=mean"]


def test_iwm_method_uses_and_withholds_the_action():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    m = build_method(load_recipe("iwm-digits", TINY), (1, 8, 8))
    x = torch.randn(6, 1, 8, 8)
    batch = m.make_batch(x, torch.Generator().manual_seed(0))
    assert batch["action"].shape == (6, 6)
    assert torch.allclose(batch["target_x"], m.actions.apply(x, batch["action"]))
    out = m.loss(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for p in m.predictor.parameters())
    assert all(p.grad is None for p in m.target.parameters())
    ci, ti = batch["context_idx"], batch["target_idx"]
    p1 = m.predict(x, batch["action"], ci, ti)
    assert not torch.allclose(p1, m.predict(x, -batch["action"], ci, ti), atol=1e-5)
    m.withhold_action = True
    assert torch.equal(m.predict(x, batch["action"], ci, ti), m.predict(x, -batch["action"], ci, ti))
    ranks = m.action_ranks(x, torch.Generator().manual_seed(1), candidates=5)
    assert ranks.shape == (6,) and ((ranks >= 1) & (ranks <= 5)).all()


def test_iwm_recipe_errors():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    with pytest.raises(UserError, match="cond_dim=6"):
        build_method(load_recipe("iwm-digits", TINY + ["predictor.cond_dim=4"]), (1, 8, 8))
    cfg = load_recipe("iwm-digits", TINY)
    cfg.predictor = {"name": "mask_token", "dim": 16, "depth": 1, "heads": 2}
    with pytest.raises(UserError, match="predictor.name=conditioned"):
        build_method(cfg, (1, 8, 8))


def test_iwm_recipe_pretrains_and_evaluates(tmp_path):
    from polyjepa.runner import load_run_method, pretrain

    s = pretrain("iwm-digits", out=str(tmp_path / "run"), overrides=TINY + ["eval.baselines=false"], progress=False, echo=lambda *a: None)
    assert s["steps"] == 6 and np.isfinite(s["final_loss"]) and 0 <= s["probe"]["linear"]["accuracy"] <= 1
    method, _, _ = load_run_method(tmp_path / "run")
    assert type(method).__name__ == "IWM" and method.predictor.cond_dim == 6
