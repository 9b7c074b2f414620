"""Remote control over a noisy link: the quantiser's error bound and exact bit count, the bit-flip channel's
rate, the sensor JEPA's samples and gradients, the loop as the controller sees it, and the errors a user meets."""
import json

import numpy as np
import pytest
import torch

from polyjepa.cli import main
from polyjepa.control.channel import (BitFlipChannel, UniformQuantizer, bits_to_codes, check_ber, check_bits,
                                      codes_to_bits)
from polyjepa.control.remote import Link, WindowJEPA, history_index, window_dataset
from polyjepa.control.remote_run import ChannelSpec
from polyjepa.control.rollout import Episode
from polyjepa.errors import UserError


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polyjepa: error: ")
    return err[0]


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_quantiser_round_trip_is_within_half_a_step(bits):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(5000, 3)) * np.array([1.0, 10.0, 0.01]) + np.array([0.0, 5.0, -1.0])
    q = UniformQuantizer(bits, clip=0.0).fit(train)
    np.testing.assert_allclose(q.lo_, train.min(0))
    np.testing.assert_allclose(q.hi_, train.max(0))
    np.testing.assert_allclose(q.step, (train.max(0) - train.min(0)) / 2 ** bits)
    codes = q.encode(train)
    assert codes.dtype == np.int64 and codes.min() == 0 and codes.max() == 2 ** bits - 1
    err = np.abs(q.decode(codes) - train)
    assert np.all(err <= q.step / 2 + 1e-12)
    # the bound is tight: some values sit near a cell edge
    assert np.all(err.max(0) > 0.45 * q.step)
    # outside the range: clipped to the end cells
    far = np.array([[-1e6, -1e6, -1e6], [1e6, 1e6, 1e6]])
    np.testing.assert_array_equal(q.encode(far), [[0] * 3, [2 ** bits - 1] * 3])
    # the unit scale the controller reads: cell centres inside (-1, 1), symmetric
    u = q.unit(np.array([[0, 2 ** bits - 1, 0]]))
    np.testing.assert_allclose(u, [[-1 + 1 / 2 ** bits, 1 - 1 / 2 ** bits, -1 + 1 / 2 ** bits]])


def test_quantiser_clip_fits_the_quantile_range():
    x = np.linspace(0, 1, 1001)[:, None]
    q = UniformQuantizer(4, clip=0.1).fit(x)
    np.testing.assert_allclose([q.lo_[0], q.hi_[0]], [0.1, 0.9])


def test_bits_are_counted_exactly_and_round_trip():
    rng = np.random.default_rng(1)
    for bits, dims in [(1, 4), (5, 3), (12, 2)]:
        codes = rng.integers(0, 2 ** bits, size=(50, dims))
        stream = codes_to_bits(codes, bits)
        assert stream.shape == (50, dims * bits) and set(np.unique(stream)) <= {0, 1}
        np.testing.assert_array_equal(bits_to_codes(stream, bits), codes)
        # most significant bit first, as Python's binary formatting writes it
        first = "".join(str(b) for b in stream[0, :bits])
        assert int(first, 2) == codes[0, 0]
        q = UniformQuantizer(bits).fit(rng.normal(size=(10, dims)))
        assert q.message_bits() == dims * bits


@pytest.mark.parametrize("ber", [0.0, 0.01, 0.1, 0.5])
def test_channel_flips_bits_at_the_bit_error_rate(ber):
    n = 400_000
    sent = np.random.default_rng(2).integers(0, 2, size=(n // 8, 8)).astype(np.uint8)
    got = BitFlipChannel(ber, seed=3)(sent)
    rate = (got != sent).mean()
    sigma = np.sqrt(max(ber * (1 - ber), 1e-12) / n)
    assert abs(rate - ber) < 5 * sigma + 1e-12
    if ber == 0:
        np.testing.assert_array_equal(got, sent)
    # flips are independent of the bit's value and position
    if ber > 0:
        flipped = got != sent
        for col in range(8):
            assert abs(flipped[:, col].mean() - ber) < 6 * np.sqrt(ber * (1 - ber) / (n // 8))
        assert abs(flipped[sent == 1].mean() - flipped[sent == 0].mean()) < 6 * np.sqrt(ber / (n / 2))
    # seeded: the same seed gives the same flips, another seed others
    np.testing.assert_array_equal(BitFlipChannel(ber, seed=3)(sent), got)
    if ber > 0:
        assert (BitFlipChannel(ber, seed=4)(sent) != got).any()


def test_codes_through_a_perfect_link_come_back_unchanged_and_a_flip_moves_one_code():
    codes = np.array([[5, 0, 7]])
    np.testing.assert_array_equal(BitFlipChannel(0.0).send_codes(codes, 3), codes)
    got = BitFlipChannel(0.5, seed=0).send_codes(np.repeat(codes, 1000, 0), 3)
    assert got.min() >= 0 and got.max() <= 7 and (got != codes).any()


@pytest.mark.parametrize("bad", [0, -4, 2.5, "8", True])
def test_a_bad_bit_budget_is_one_clear_error(bad):
    with pytest.raises(UserError, match="whole number of bits >= 1"):
        check_bits(bad)
    with pytest.raises(UserError, match="channel.bits"):
        ChannelSpec(bits=(8, bad))


@pytest.mark.parametrize("bad", [-0.01, 0.51, 1.0, float("nan"), "x"])
def test_a_bit_error_rate_outside_0_to_half_is_one_clear_error(bad):
    with pytest.raises(UserError, match=r"bit-error rate in \[0, 0.5\]"):
        check_ber(bad)
    with pytest.raises(UserError, match=r"channel.ber"):
        ChannelSpec(ber=(0.0, bad))


def test_the_cli_refuses_a_bad_channel_in_one_line(capsys):
    pytest.importorskip("gymnasium", reason="the control extra (gymnasium) is not installed")
    for override, text in [("channel.bits=[8,0]", "channel.bits=0 must be a whole number of bits >= 1"),
                           ("channel.bits=[8,2.5]", "channel.bits"),
                           ("channel.ber=[0.7]", "channel.ber=0.7 must be a bit-error rate in [0, 0.5]")]:
        assert main(["pretrain", "tsjepa-remote-cartpole", "--out", "unused", override]) == 2
        assert text in _one_line(capsys)


def _episode(T=12, O=4, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(T + 1, O)).astype(np.float32)
    cmd = rng.uniform(-1, 1, size=(T, 1)).astype(np.float32)
    return Episode(obs, obs.astype(np.float64), cmd, np.ones(T, np.float32), seed, np.sign(cmd))


def test_window_dataset_aligns_windows_futures_and_commands():
    ep = _episode()
    W, H = 3, 2
    data = window_dataset([ep], window=W, horizon=H, mean=np.zeros(4), std=np.ones(4))
    T = len(ep.commands)
    assert data["window"].shape == (T, W, 4) and data["future"].shape == (T, H, W, 4)
    t = 5
    np.testing.assert_allclose(data["window"][t].numpy(), ep.obs[t - W + 1:t + 1])
    for h in range(1, H + 1):
        np.testing.assert_allclose(data["future"][t, h - 1].numpy(), ep.obs[t + h - W + 1:t + h + 1])
        np.testing.assert_allclose(data["commands"][t, h - 1].numpy(), ep.applied[t + h - 1])
    # the first window repeats the first observation; the last step's second future lies past the end
    np.testing.assert_allclose(data["window"][0].numpy(), np.repeat(ep.obs[:1], W, 0))
    assert data["mask"][T - 1].tolist() == [True, False]


def test_window_jepa_trains_its_encoder_and_predictor_but_not_the_target():
    torch.manual_seed(0)
    model = WindowJEPA(obs_dim=4, action_dim=1, window=3, dims=2, horizon=2, hidden=16)
    data = window_dataset([_episode(), _episode(seed=1)], window=3, horizon=2, mean=np.zeros(4), std=np.ones(4))
    out = model.loss({k: v[:16] for k, v in data.items()})
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith("target."):
            assert p.grad is None and not p.requires_grad
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert model.encode(data["window"]).shape == (len(data["window"]), 2)
    with pytest.raises(UserError, match=r"windows of shape \(B, 3, 4\)"):
        model.encode(torch.zeros(2, 4, 4))
    with pytest.raises(UserError, match="method.dims=0"):
        WindowJEPA(obs_dim=4, action_dim=1, dims=0)


def test_an_unconditioned_predictor_ignores_the_commands():
    torch.manual_seed(0)
    model = WindowJEPA(obs_dim=4, action_dim=1, window=3, dims=2, horizon=2, hidden=16, condition=False)
    data = window_dataset([_episode()], window=3, horizon=2, mean=np.zeros(4), std=np.ones(4))
    a = model.loss(data)["prediction"]
    data["commands"] = torch.randn_like(data["commands"])
    assert torch.equal(model.loss(data)["prediction"], a)


def test_history_index_stays_inside_each_episode():
    first = np.array([0, 0, 0, 3, 3])
    np.testing.assert_array_equal(history_index(first, 2), [[0, 0], [0, 1], [1, 2], [3, 3], [3, 4]])


def test_the_link_delivers_cell_centres_and_the_float_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3))
    q = UniformQuantizer(6).fit(x)
    got = Link(q, 0.0).receive(x)
    inside = np.all((x >= q.lo_) & (x <= q.hi_), 1)
    exact = q.unit_float(x)
    assert np.all(np.abs(got - exact)[inside] <= 1 / 2 ** 6 + 1e-12)   # half a step on the [-1, 1] scale
    np.testing.assert_allclose(Link(None, reference=q).receive(x), exact)
    assert Link(q, 0.0).bits == 18 and Link(None, reference=q).bits is None


def test_pretrain_runs_the_remote_recipe_end_to_end(tmp_path, capsys):
    pytest.importorskip("gymnasium", reason="the control extra (gymnasium) is not installed")
    assert main(["pretrain", "tsjepa-remote-cartpole", "--out", str(tmp_path / "r"), "train.max_steps=20",
                 "controller.steps=20", "rollouts.train_seeds=1", "rollouts.episodes=1", "demos.episodes=1",
                 "channel.bits=[2,8]", "channel.ber=[0.0,0.1]"]) == 0
    out = capsys.readouterr().out
    assert "| expert (LQR, reads the true state) |" in out and "| raw observation | 8 | 4 x 2 = 8 |" in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    rows = {(r["sensor"], r["budget"]): r for r in summary["rows"]}
    # 2 bits cannot carry a 3- or 4-wide message: skipped, not faked
    assert ("raw observation", 2) not in rows and ("TS-JEPA embedding", 2) not in rows
    assert rows[("TS-JEPA embedding", 8)]["layout"] == "3 x 2 = 6"
    assert rows[("raw observation", "unquantised")]["cells"][1] is None  # the float reference has no channel
    assert summary["ber"] == [0.0, 0.1] and (tmp_path / "r" / "sensor_seed0.safetensors").exists()


def test_pca_window_keeps_the_top_eigen_directions_of_the_window_covariance():
    from polyjepa.control.remote import PCAWindow

    rng = np.random.default_rng(0)
    w = rng.normal(size=(2000, 3, 2)) * np.array([3.0, 0.1])   # channel 0 varies most
    pca = PCAWindow(window=3, obs_dim=2, dims=2).fit(w)
    z = pca.encode(torch.from_numpy(w).float()).double().numpy()
    flat = w.reshape(len(w), -1)
    evals = np.linalg.eigvalsh(np.cov(flat.T, bias=True))[::-1]
    np.testing.assert_allclose(z.var(0), evals[:2], rtol=1e-4)
    C = pca.components.double().numpy()
    np.testing.assert_allclose(C.T @ C, np.eye(2), atol=1e-5)


def test_more_bits_per_value_than_the_codes_hold_is_one_clear_error():
    assert check_bits(32) == 32
    with pytest.raises(UserError, match="more than 32 bits for one value"):
        check_bits(64)
    with pytest.raises(UserError, match="more than 32 bits"):
        UniformQuantizer(bits=33)
