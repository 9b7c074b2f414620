"""MC-JEPA: warping, correlation and flow losses against direct computation, the generator's flow labels,
the end-point error, the method's gradients and bad input."""
import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.worldmodel.flow import (correlation, cycle_loss, endpoint_error, farneback_flow, smoothness_loss,
                                      upsample_flow, warp)

TINY = ["encoder.stem=4", "encoder.widths=[8,8]", "method.flow_hidden=8", "method.expander=[16,16]",
        "data.n_train=96", "data.n_test=32", "data.frame_size=16", "data.digit_size=8", "data.frames=3",
        "train.batch_size=16", "train.max_steps=3", "train.monitor_every=0"]


def build(extra=(), shape=(1, 4, 16, 16)):
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    return build_method(load_recipe("mcjepa-moving-digits", TINY + list(extra)), shape)


def constant_flow(B, H, W, dx, dy):
    f = torch.zeros(B, 2, H, W)
    f[:, 0], f[:, 1] = dx, dy
    return f


def test_a_constant_integer_flow_warps_to_an_integer_shift():
    x = torch.randn(2, 3, 9, 11)
    out = warp(x, constant_flow(2, 9, 11, 2, -1), padding_mode="zeros")
    a, o = x.numpy(), out.numpy()
    # out[y, x] = in[y - 1, x + 2] where that lies inside; 0 (zeros padding) elsewhere
    np.testing.assert_allclose(o[:, :, 1:, :9], a[:, :, :-1, 2:], atol=1e-5)
    assert np.abs(o[:, :, 0, :]).max() < 1e-6 and np.abs(o[:, :, :, 9:]).max() < 1e-6
    # border padding repeats the edge instead
    ob = warp(x, constant_flow(2, 9, 11, 2, -1)).numpy()
    np.testing.assert_allclose(ob[:, :, 1:, 9:], np.repeat(a[:, :, :-1, 10:], 2, axis=3), atol=1e-5)


def test_zero_flow_is_the_identity_and_a_half_pixel_flow_averages_neighbours():
    x = torch.randn(3, 2, 7, 8)
    assert torch.allclose(warp(x, torch.zeros(3, 2, 7, 8)), x, atol=1e-6)
    half = warp(x, constant_flow(3, 7, 8, 0.5, 0.0))
    assert torch.allclose(half[..., :-1], (x[..., :-1] + x[..., 1:]) / 2, atol=1e-5)


def test_correlation_equals_a_direct_sum():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 6, 7, generator=g), torch.randn(2, 5, 6, 7, generator=g)
    r = 2
    c = correlation(a, b, r)
    assert c.shape == (2, 25, 6, 7)
    for (n, y, x, dy, dx) in [(0, 0, 0, 0, 0), (1, 3, 4, -2, 1), (0, 5, 6, 1, -2), (1, 0, 6, -1, 1), (0, 2, 2, 2, 2)]:
        k = (dy + r) * (2 * r + 1) + (dx + r)
        yy, xx = y + dy, x + dx
        want = float((a[n, :, y, x] * b[n, :, yy, xx]).mean()) if 0 <= yy < 6 and 0 <= xx < 7 else 0.0
        assert abs(float(c[n, k, y, x]) - want) < 1e-5


def test_upsampling_scales_flow_vectors_and_consistent_flows_cycle_to_zero():
    f = constant_flow(1, 5, 5, 1.5, -0.5)
    up = upsample_flow(f, (9, 9))  # pixel size halves: (5 - 1) -> (9 - 1) spacing
    assert torch.allclose(up[:, 0], torch.full((1, 9, 9), 3.0)) and torch.allclose(up[:, 1], torch.full((1, 9, 9), -1.0))
    assert float(cycle_loss(f, -f)) < 1e-6 and abs(float(cycle_loss(f, f)) - (3.0 + 1.0) / 2) < 1e-5
    img = torch.randn(1, 1, 5, 5)
    assert float(smoothness_loss(f, img)) == 0.0  # a constant flow has no gradient
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 2, 5, 5)
    assert abs(float(smoothness_loss(ramp, torch.zeros(1, 1, 5, 5))) - 0.5) < 1e-6  # |d/dx| = 1, |d/dy| = 0


def test_endpoint_error_on_hand_made_flows():
    truth = np.zeros((2, 2, 3, 4), np.float32)
    flow = truth.copy()
    flow[:, 0], flow[:, 1] = 3.0, 4.0
    assert endpoint_error(flow, truth) == pytest.approx(5.0)
    valid = np.zeros((2, 3, 4), bool)
    valid[0, 0, 0] = valid[1, 2, 3] = True
    flow[1, :, 2, 3] = 0.0                              # one valid pixel exact, one off by 5
    assert endpoint_error(flow, truth, valid) == pytest.approx(2.5)
    assert endpoint_error(torch.from_numpy(flow), torch.from_numpy(truth)) == pytest.approx((5 * 23) / 24)
    with pytest.raises(UserError, match="two .B, 2, H, W. flows of one shape"):
        endpoint_error(flow[:, :, :2], truth)
    with pytest.raises(UserError, match="selects no pixel"):
        endpoint_error(flow, truth, np.zeros((2, 3, 4), bool))


def _generator_clips(digits: int, n: int = 6):
    from polyjepa.video.moving_digits import moving_digits

    rng = np.random.default_rng(0)
    images = (rng.random((20, 8, 8)) * 255 * (rng.random((20, 8, 8)) > 0.4)).astype(np.uint8)
    return moving_digits(images, np.arange(20) % 10, n, frames=5, frame_size=24, digit_size=8, digits=digits,
                         speed=(1.0, 3.0), seed=3)


def test_the_generators_flow_warps_frame_t_onto_frame_t_plus_1():
    md = _generator_clips(digits=1)
    idx = np.repeat(np.arange(6), 4)
    t = np.tile(np.arange(4), 6)
    flow, valid = md.flow(idx, t)
    a, b = md.clips[idx, :, t], md.clips[idx, :, t + 1]                     # (m, 1, S, S)
    back = warp(torch.from_numpy(b), torch.from_numpy(flow), padding_mode="zeros").numpy()
    err = np.abs(back - a)[:, 0]
    assert valid.sum() > 200 and err[valid].max() < 1e-5                 # exact where the digit is
    zero = np.abs(b - a)[:, 0]
    assert zero[valid].mean() > 0.05                                       # the frames do differ: a real test
    top = np.rint(md.position).astype(int)
    d = top[idx, t + 1, 0] - top[idx, t, 0]                                # (dy, dx) per pair
    for j in range(len(idx)):
        assert set(np.unique(flow[j, 0][valid[j]])) == {d[j, 1]} and set(np.unique(flow[j, 1][valid[j]])) == {d[j, 0]}
    assert (flow[:, :, ~valid.any(0)] == 0).all()


def test_with_two_digits_the_flow_holds_except_where_they_occlude():
    md = _generator_clips(digits=2, n=20)
    idx, t = np.arange(20), np.arange(20) % 4
    flow, valid = md.flow(idx, t)
    back = warp(torch.from_numpy(md.clips[idx, :, t + 1]), torch.from_numpy(flow), padding_mode="zeros").numpy()
    ok = np.abs(back - md.clips[idx, :, t])[:, 0] < 1e-5
    assert ok[valid].mean() > 0.95
    with pytest.raises(ValueError, match="frame indices"):
        md.flow(0, 4)                                                      # no frame after the last


def test_the_generators_clips_are_unchanged_by_the_flow_labels():
    md = _generator_clips(digits=1)
    top = np.rint(md.position).astype(int)
    i, t = 2, 3
    y, x = top[i, t, 0]
    np.testing.assert_array_equal(md.clips[i, 0, t, y:y + 8, x:x + 8], md.sprites[i, 0])
    assert md.clips[i, 0, t].sum() == pytest.approx(md.sprites[i, 0].sum(), rel=1e-5)


def test_bad_frames_or_flow_raise_one_clear_line():
    m = build()
    with pytest.raises(UserError, match="one shape") as e:
        m.estimate_flow(torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 16, 12))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"must be \(B, 2, H, W\)") as e:
        warp(torch.zeros(2, 1, 8, 8), torch.zeros(2, 2, 4, 4))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="clips"):
        build(shape=(1, 16, 16))


def test_every_trainable_parameter_gets_a_finite_gradient_and_ablations_drop_their_heads():
    m = build()
    x = torch.randn(16, 1, 4, 16, 16)
    b = m.make_batch(x, torch.Generator().manual_seed(0))
    assert b["a"].shape == b["b"].shape == b["view1"].shape == (16, 1, 16, 16)
    assert any(torch.equal(b["a"][0], x[0, :, t]) and torch.equal(b["b"][0], x[0, :, t + 1]) for t in range(3))
    m.flow.estimators[0][-1].weight.data.normal_(0, 0.1)  # leave the zero start, so flow gradients reach the encoder
    out = m.loss(b)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"feature", "photo", "smooth", "cycle", "vc", "content_loss"} <= set(out)
    for mod in m.trainable_modules():
        for n, p in mod.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
    content_only = build(["method.motion_weight=0"])
    assert content_only.flow not in content_only.trainable_modules()
    assert "feature" not in content_only.loss(b)
    motion_only = build(["method.content_weight=0"])
    assert motion_only.expander not in motion_only.trainable_modules() and "content_loss" not in motion_only.loss(b)
    emb = m.embed(x)
    assert emb.shape == (16, 8) and torch.allclose(emb, m.encoder().embed(x[:, :, 0:4]))
    assert m.embed(x, pool="pyramid").shape == (16, 16) and m.embed(x[:, :, 0], pool="grid:2").shape == (16, 40)


def test_one_backbone_pass_over_all_four_batches_equals_one_pass_per_batch():
    m = build()
    m.flow.estimators[0][-1].weight.data.normal_(0, 0.1)
    b = m.make_batch(torch.randn(16, 1, 4, 16, 16), torch.Generator().manual_seed(1))
    joint = m.loss(b)
    joint["loss"].backward()
    g_joint = [p.grad.clone() for p in m.backbone.parameters()]
    m.zero_grad()
    # The same terms from separate passes: motion and content each call the backbone on their own.
    sep = m.motion_weight * m.motion_loss(b["a"], b["b"])["loss"] + m.content_weight * m.content_loss(
        b["view1"], b["view2"])["loss"]
    sep.backward()
    assert torch.allclose(joint["loss"], sep, rtol=1e-5, atol=1e-6)
    for g, p in zip(g_joint, m.backbone.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-4 * float(g.abs().max()))   # float sums differ in order
    pyr = m._pyramids(b["a"], b["b"][:, :, :8, :8])              # different sizes: one pass each, still right
    assert pyr[1][0].shape[-1] == 4 and torch.allclose(pyr[0][-1], m.backbone(b["a"])[-1], atol=1e-6)


def test_farneback_recovers_a_shift_better_than_zero_flow():
    pytest.importorskip("cv2", reason="the Farneback baseline needs opencv-python-headless (pip install 'polyjepa[flow]')")
    yy, xx = np.mgrid[:32, :32].astype(np.float32)
    a = np.exp(-((yy - 14) ** 2 + (xx - 13) ** 2) / 18)[None]
    b = np.exp(-((yy - 15) ** 2 + (xx - 15) ** 2) / 18)[None]           # moved by (dx, dy) = (2, 1)
    flow = farneback_flow(a, b)
    truth = np.zeros_like(flow)
    truth[:, 0], truth[:, 1] = 2.0, 1.0
    valid = (a > 0.2)
    assert endpoint_error(flow, truth, valid) < 0.5 * endpoint_error(np.zeros_like(flow), truth, valid)


@pytest.mark.slow
def test_the_recipe_pretrains_and_prints_its_table(tmp_path):
    from polyjepa.runner import pretrain

    lines = []
    s = pretrain("mcjepa-moving-digits", out=str(tmp_path / "run"), overrides=TINY, progress=False,
                 echo=lines.append)
    assert s["steps"] == 3 and np.isfinite(s["final_loss"]) and "random-init encoder" in lines[-1]
