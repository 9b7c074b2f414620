"""The series training budget, early stopping, random-kernel features, and long / variable-length series."""
import math

import numpy as np
import pytest
import torch

from polyjepa.timeseries.budget import loss_plateaued, series_budget
from polyjepa.timeseries.embedder import TimeSeriesEmbedder, downsample
from polyjepa.timeseries.kernels import RandomKernelFeatures, dilations, kernel_weights


def test_budget_rule_is_deterministic_and_scales_with_the_data():
    assert series_budget(390, 176) == series_budget(390, 176)
    small, large = series_budget(20, 100), series_budget(2000, 100)
    assert small.steps == 20 and large.steps == 60                # clamped to [min_steps, max_steps]
    mid = series_budget(80, 100)
    assert mid.steps == math.ceil(10 * 80 / 16)                   # ten passes over the series
    assert [series_budget(n, 100).steps for n in (30, 60, 120, 240)] == sorted(
        series_budget(n, 100).steps for n in (30, 60, 120, 240))
    for length in (15, 80, 256, 257, 1092, 2844):
        b = series_budget(50, length)
        assert b.length <= 256 and b.stride * b.length >= length and (b.stride - 1) * b.length < length
        assert 2 ** (b.depth + 2) >= b.length or b.depth == 10     # the receptive field covers the series
        assert b.depth >= 3
    assert series_budget(5, 50).batch_size == 5                   # never a batch larger than the data
    with pytest.raises(ValueError):
        series_budget(0, 10)


def test_loss_plateaued_stops_on_flat_and_not_on_falling_losses():
    assert loss_plateaued([1.0] * 10, window=5)
    assert loss_plateaued([2.0, 1.0] + [1.0] * 8, window=4)       # the last two windows are flat
    falling = [10 * 0.9 ** i for i in range(10)]
    assert not loss_plateaued(falling, window=5)
    assert not loss_plateaued([1.0] * 9, window=5)                # fewer than two windows
    assert loss_plateaued([1.0, 1.0, 1.05, 1.05], window=2)       # a rising loss is no improvement


def test_fit_in_memory_stops_when_the_criterion_is_flat():
    from polyjepa import build_method, load_recipe
    from polyjepa.config import TrainConfig
    from polyjepa.train.inmemory import fit_in_memory

    x = np.random.default_rng(0).normal(size=(8, 1, 32)).astype(np.float32)
    cfg = load_recipe("tsvicreg", ["encoder.depth=1", "encoder.hidden=8", "encoder.dim=16", "projector.hidden=16",
                                   "projector.out_dim=16"])
    train = TrainConfig(batch_size=4, max_steps=8, monitor_every=0, checkpoint_every=100)
    seen = []

    def flat(losses):  # a criterion that reads every loss as flat: stop as soon as two windows exist
        seen.append(len(losses))
        return loss_plateaued([1.0] * len(losses), window=2)

    rec = fit_in_memory(build_method(cfg, (1, 32), seed=0), x, train, seed=0, stop=flat)
    assert rec["stopped_early"] and rec["steps"] == 4 == len(rec["losses"]) and seen == [1, 2, 3, 4]
    rec = fit_in_memory(build_method(cfg, (1, 32), seed=0), x, train, seed=0, stop=lambda losses: False)
    assert not rec["stopped_early"] and rec["steps"] == 8


def test_kernel_weights_and_dilations():
    w = kernel_weights()
    assert w.shape == (84, 9) and torch.all(w.sum(1) == 0) and len({tuple(r.tolist()) for r in w}) == 84
    ds, counts = dilations(1000, 119)
    assert sum(counts) == 119 and ds[0] == 1 and 8 * ds[-1] + 1 <= 1000 and ds == sorted(set(ds))
    assert dilations(5, 10) == ([1], [10])                        # shorter than one kernel: dilation 1 only


def reference_conv(series: np.ndarray, weights: np.ndarray, dilation: int) -> np.ndarray:
    """Independent loop: zero-padded dilated correlation at each step of the series."""
    padded = np.concatenate([np.zeros(4 * dilation), series, np.zeros(4 * dilation)])
    return np.asarray([sum(weights[j] * padded[t + j * dilation] for j in range(9)) for t in range(len(series))])


def reference_ppv(series: np.ndarray, weights: np.ndarray, dilation: int, bias: float) -> float:
    """Fraction of the steps where the convolution exceeds the bias."""
    return float(np.mean(reference_conv(series, weights, dilation) > bias))


def test_random_kernel_features_equal_a_direct_computation_and_ignore_padding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 1, 60)).astype(np.float32)
    rkf = RandomKernelFeatures(n_features=84 * 6, seed=3).fit(torch.from_numpy(x))
    f = rkf.transform(torch.from_numpy(x)).numpy()
    assert f.shape == (5, rkf.dim) and rkf.dim == 84 * 6
    col = 0
    w = kernel_weights().numpy()
    for d, bias in zip(rkf.dilations_, rkf.biases_):
        k = bias.shape[1]
        for kern in (0, 41, 83):
            for b in range(k):
                want = reference_ppv(x[2, 0].astype(np.float64), w[kern], d, float(bias[kern, b]))
                assert f[2, col + kern * k + b] == pytest.approx(want, abs=1e-6)
        col += 84 * k
    short = np.concatenate([x[:1, :, :40], np.full((1, 1, 20), np.nan, np.float32)], axis=2)
    cut = x[:1, :, :40]
    assert np.allclose(rkf.transform(torch.from_numpy(short)).numpy(), rkf.transform(torch.from_numpy(cut)).numpy())
    again = RandomKernelFeatures(n_features=84 * 6, seed=3).fit(torch.from_numpy(x)).transform(torch.from_numpy(x))
    assert np.array_equal(again.numpy(), f)                       # the seed fixes the transform


def test_kernel_extremes_are_the_max_and_min_of_the_series_and_its_difference():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 1, 50)).astype(np.float32)
    plain = RandomKernelFeatures(n_features=84 * 3, seed=1).fit(torch.from_numpy(x))
    rkf = RandomKernelFeatures(n_features=84 * 3, seed=1, extremes=True).fit(torch.from_numpy(x))
    f = rkf.transform(torch.from_numpy(x)).numpy()
    n_dil = len(rkf.dilations_)
    assert rkf.dim == 84 * 3 + 4 * 84 * n_dil == f.shape[1]
    assert np.array_equal(f[:, :84 * 3], plain.transform(torch.from_numpy(x)).numpy())   # PPV part unchanged
    w = kernel_weights().numpy()
    series = x[1, 0].astype(np.float64)
    for i, d in enumerate(rkf.dilations_):
        block = f[1, 84 * 3 + 4 * 84 * i: 84 * 3 + 4 * 84 * (i + 1)].reshape(4, 84)
        for kern in (0, 50, 83):
            conv, dconv = reference_conv(series, w[kern], d), reference_conv(np.diff(series), w[kern], d)
            assert block[:, kern] == pytest.approx([conv.max(), conv.min(), dconv.max(), dconv.min()], abs=1e-4)
    # padding: a NaN-padded series gives the features of the series cut at its end, extremes included
    short = np.concatenate([x[:2, :, :35], np.full((2, 1, 15), np.nan, np.float32)], axis=2)
    assert np.allclose(rkf.transform(torch.from_numpy(short)).numpy(),
                       rkf.transform(torch.from_numpy(np.ascontiguousarray(x[:2, :, :35]))).numpy(), atol=1e-5)


def test_kernel_mpv_is_the_mean_excess_over_each_bias_and_leaves_ppv_alone():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 1, 40)).astype(np.float32)
    plain = RandomKernelFeatures(n_features=84 * 2, seed=2, extremes=True).fit(torch.from_numpy(x))
    rkf = RandomKernelFeatures(n_features=84 * 2, seed=2, extremes=True, mpv=True).fit(torch.from_numpy(x))
    f, g = rkf.transform(torch.from_numpy(x)).numpy(), plain.transform(torch.from_numpy(x)).numpy()
    n_ppv = 84 * sum(rkf.counts_)
    assert rkf.dim == f.shape[1] == g.shape[1] + n_ppv
    assert np.array_equal(f[:, :n_ppv], g[:, :n_ppv]) and np.array_equal(f[:, 2 * n_ppv:], g[:, n_ppv:])
    w = kernel_weights().numpy()
    series, col = x[2, 0].astype(np.float64), 0
    for d, k, bias in zip(rkf.dilations_, rkf.counts_, rkf.biases_):
        for kern in (0, 41, 83):
            conv = reference_conv(series, w[kern], d)
            for j in range(k):
                b = float(bias[kern, j])
                over = conv[conv > b] - b
                want = over.mean() if len(over) else 0.0
                assert f[2, n_ppv + col + kern * k + j] == pytest.approx(want, abs=1e-4)
                assert f[2, col + kern * k + j] == pytest.approx(len(over) / len(series), abs=1e-6)
        col += 84 * k


def test_downsample_is_a_nan_aware_window_mean():
    x = np.arange(10, dtype=np.float32).reshape(1, 1, 10)
    x[0, 0, 7:] = np.nan
    d = downsample(x, 3)
    assert d.shape == (1, 1, 4)
    assert np.allclose(d[0, 0, :3], [1.0, 4.0, 6.0]) and np.isnan(d[0, 0, 3])
    assert downsample(x, 1) is x


def test_long_and_variable_length_series_embed():
    rng = np.random.default_rng(1)
    lengths = [3000, 2100, 2600, 3000, 2400, 2900]
    x = np.full((6, 1, 3000), np.nan, np.float32)
    for i, n in enumerate(lengths):
        x[i, 0, :n] = np.sin(np.linspace(0, 40 + 10 * i, n)) + 0.1 * rng.normal(size=n)
    emb = TimeSeriesEmbedder(max_steps=1, kernels=168, overrides=("encoder.hidden=8",), random_state=0).fit(x)
    assert emb.stride_ == 12 and emb.encoder_.dim == 128      # downsampled to 250 steps, the budget's width
    z = emb.transform(x)
    extremes = 4 * 84 * len(emb.kernels_.dilations_)                # max and min of series and difference
    assert z.shape == (6, 128 + 2 * 168 + extremes)   # learned, PPV, MPV, extremes
    assert np.isfinite(z).all() and z.dtype == np.float32
    one = emb.transform(x[1:2])
    assert np.allclose(one, z[1:2], atol=1e-5)                  # a series' row ignores the batch around it
    assert emb.train_record_["budget"]["length"] == 250


@pytest.mark.parametrize("kw, needle", [({"kernels": 50}, "kernels"), ({"kernels": -1}, "kernels"),
                                        ({"budget": "fast"}, "budget"), ({"learned": False, "kernels": 0}, "no features")])
def test_bad_embedder_arguments_give_one_user_error(kw, needle):
    from polyjepa.errors import UserError

    x = np.random.default_rng(0).normal(size=(6, 40)).astype(np.float32)
    with pytest.raises(UserError, match=needle):
        TimeSeriesEmbedder(max_steps=1, **kw).fit(x)


def test_kernel_features_alone_need_no_training():
    x = np.random.default_rng(0).normal(size=(6, 40)).astype(np.float32)
    emb = TimeSeriesEmbedder(learned=False, kernels=168, extremes=False, mpv=False).fit(x)
    assert emb.encoder_ is None and emb.train_record_["steps"] == 0 and emb.transform(x).shape == (6, 168)
    both = TimeSeriesEmbedder(learned=False, kernels=168).fit(x)
    assert both.transform(x).shape == (6, 2 * 168 + 4 * 84 * len(both.kernels_.dilations_))   # PPV, MPV, extremes
