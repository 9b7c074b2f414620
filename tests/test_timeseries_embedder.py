"""TimeSeriesEmbedder: scikit-learn conformance, Pipeline use, padding, bad input."""
import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from polyjepa import TimeSeriesEmbedder
from polyjepa.errors import UserError
from polyjepa.timeseries import pad_series

SMALL = ("encoder.depth=1", "predictor.depth=1", "predictor.dim=32", "predictor.heads=2")
SMALL_CONV = ("encoder.depth=1", "encoder.hidden=8", "encoder.dim=16", "projector.hidden=32", "projector.out_dim=32")


def small(**kw):
    return TimeSeriesEmbedder("tsjepa", max_steps=kw.pop("max_steps", 2), overrides=SMALL, **kw)


@parametrize_with_checks([small(), TimeSeriesEmbedder("tsvicreg", max_steps=2, overrides=SMALL_CONV)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def waves(n=40, length=48, channels=2, seed=0):
    """Two classes: a slow and a fast sine, random phase and noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.linspace(0, 1, length)
    freq = np.where(y == 0, 2.0, 6.0)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, channels, 1))
    x = np.sin(2 * np.pi * freq * t + phase) + 0.1 * rng.normal(size=(n, channels, length))
    return x.astype(np.float32), y


def test_in_a_pipeline_and_deterministic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, y = waves()
    pipe = make_pipeline(small(max_steps=5, patch_size=8), LogisticRegression(max_iter=500)).fit(x, y)
    assert pipe.score(x, y) >= 0.8  # rows stay aligned with labels (a shuffled or constant embedding scores ~0.5)
    e1, e2 = small(max_steps=3).fit(x), small(max_steps=3).fit(x)
    assert np.allclose(e1.transform(x), e2.transform(x), atol=1e-5)  # random_state fixes everything
    assert e1.transform(x).shape == (40, e1.encoder_.dim * 2) and e1.n_features_in_ == 2 * 48


def test_padded_series_embed_as_their_real_part():
    x, _ = waves(n=8, length=40)
    short = [s[:, :n] for s, n in zip(x, [40, 33, 20, 40, 25, 40, 31, 40])]
    padded = pad_series(short)
    emb = small(max_steps=2, pool="mean").fit(padded)
    full = emb.transform(padded)
    alone = emb.transform(pad_series([short[2]], length=40))
    assert np.allclose(full[2], alone[0], atol=1e-5)  # one series' embedding ignores its batch and padding
    assert np.isfinite(full).all()


@pytest.mark.parametrize("bad, needle", [
    ([np.zeros(30), np.zeros(20)], "ragged list"),
    (np.zeros((4, 2, 3, 30)), "must be (n, length)"),
    (np.where(np.arange(30) == 5, np.nan, 1.0)[None].repeat(4, 0), "NaN inside"),
    (np.ones((4, 3)), "two patches"),  # shorter than two patches (patch_size=2)
])
def test_bad_fit_input_gives_one_user_error(bad, needle):
    with pytest.raises(UserError) as e:
        small(patch_size=2).fit(bad)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_transform_checks_channels_and_length():
    x, _ = waves(n=8)
    emb = small().fit(x)
    with pytest.raises(UserError, match="channels"):
        emb.transform(x[:, :1])
    with pytest.raises(UserError, match="pad_series"):
        emb.transform(x[:, :, :30])


def test_fit_in_memory_equals_the_core_training_loop(tmp_path):
    import torch

    from polyjepa import build_method, load_recipe, train_method
    from polyjepa.config import TrainConfig
    from polyjepa.train.inmemory import fit_in_memory

    x, _ = waves(n=24, length=32)
    cfg = load_recipe("tsjepa", list(SMALL))
    train = TrainConfig(batch_size=8, max_steps=5, warmup=0.4, monitor_every=0, checkpoint_every=100)
    a, b = build_method(cfg, (2, 32), seed=1), build_method(cfg, (2, 32), seed=1)
    train_method(a, x, train=train, run_dir=tmp_path, seed=3, progress=False)
    fit_in_memory(b, x, train, seed=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    assert not torch.allclose(a.backbone.tokenizer.proj.weight, build_method(cfg, (2, 32), seed=1).backbone.tokenizer.proj.weight)
