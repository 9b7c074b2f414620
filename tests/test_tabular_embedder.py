"""TabularEmbedder: scikit-learn conformance, Pipelines and ColumnTransformer, DataFrames with NaN and categories, errors."""
import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from polyjepa import TabularEmbedder  # noqa: E402
from polyjepa.errors import UserError  # noqa: E402

SMALL = dict(dim=8, depth=1, heads=2, n_bins=4, max_epochs=2, min_steps=0, batch_size=32, threads=1)

# Checks that do not apply, and why (none at present: every applicable check passes).
EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks([TabularEmbedder(**SMALL)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    size = rng.choice(["S", "M", "L"], n)
    a = rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": 2 * a + rng.normal(scale=0.3, size=n), "c": rng.normal(size=n),
                       "size": pd.Categorical(size), "d": (size == "L") + rng.normal(scale=0.3, size=n)})
    df.loc[rng.random(n) < 0.1, "a"] = np.nan
    df.loc[rng.random(n) < 0.1, "size"] = np.nan
    y = ((np.nan_to_num(df["a"].to_numpy()) > 0) ^ (size == "L")).astype(int)
    return df, y


def test_default_embedder_in_a_pipeline_with_nan_and_categories():
    # defaults except the length of training (100 steps instead of 500) and one thread
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    df, y = frame()
    pipe = make_pipeline(TabularEmbedder(max_steps=100, threads=1), LogisticRegression(max_iter=500)).fit(df, y)
    emb = pipe[0].transform(df)
    assert emb.shape == (300, 2 * (1 + 5) * 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert emb.std(0).mean() > 1e-3  # not collapsed to a constant
    assert pipe.score(df, y) > 0.5
    assert list(pipe[0].get_feature_names_out()) == [f"tabularembedder{i}" for i in range(384)]


def test_column_transformer_and_unseen_categories():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    df, y = frame()
    ct = ColumnTransformer([("emb", TabularEmbedder(**SMALL, pool="mean"), ["a", "size", "d"]),
                            ("num", StandardScaler(), ["c"])])
    out = ct.fit_transform(df)
    assert out.shape == (300, 9)
    new = df.iloc[:5].copy()
    new["size"] = pd.Categorical(["XL", "S", None, "M", "XXL"])
    assert np.isfinite(ct.transform(new)).all()


def test_same_seed_same_embedding_and_pool_widths():
    df, _ = frame(100)
    a = TabularEmbedder(**SMALL).fit(df).transform(df)
    b = TabularEmbedder(**SMALL).fit(df).transform(df)
    assert np.array_equal(a, b)
    assert TabularEmbedder(**SMALL, pool="mean").fit(df).transform(df).shape == (100, 8)
    vcr = TabularEmbedder(**SMALL, var_weight=1.0).fit(df)
    assert vcr.method_.regularizer is not None and TabularEmbedder(**SMALL).fit(df).method_.regularizer is None
    assert np.isfinite(vcr.loss_curve_).all()
    assert TabularEmbedder(**SMALL, max_steps=0).fit(df).loss_curve_ == []  # random-init baseline
    assert TabularEmbedder(**SMALL, pool="mean+std", n_reg_tokens=0, numeric="linear").fit_transform(df).shape == (100, 16)
    both = TabularEmbedder(**SMALL, pool="tokens+input").fit(df)
    e = both.transform(df)
    assert e.shape == (100, 2 * 6 * 8) and len(both.get_feature_names_out()) == e.shape[1]
    assert np.allclose(e[:, :48], TabularEmbedder(**SMALL, pool="tokens").fit(df).transform(df), atol=1e-6)  # same seed


def test_categorical_given_by_name_or_index():
    df, _ = frame(100)
    e = TabularEmbedder(**SMALL, categorical=["size"]).fit(df)
    assert e.schema_["kinds"] == ["num", "num", "num", "cat", "num"]
    arr = np.column_stack([np.arange(100) % 3, np.random.default_rng(0).normal(size=100)])
    assert TabularEmbedder(**SMALL, categorical=[0]).fit(arr).schema_["kinds"] == ["cat", "num"]


def test_errors_are_clear():
    df, _ = frame(100)
    with pytest.raises(UserError, match="empty"):
        TabularEmbedder(**SMALL).fit(df.iloc[:0])
    bad = df.copy()
    bad["when"] = pd.date_range("2020", periods=100)
    with pytest.raises(UserError, match="'when'.*cannot be encoded"):
        TabularEmbedder(**SMALL).fit(bad)
    e = TabularEmbedder(**SMALL).fit(df)
    with pytest.raises(UserError, match="feature names should match"):
        e.transform(df.rename(columns={"c": "zz"}))
    with pytest.raises(UserError, match="feature names should match"):
        e.transform(df.drop(columns=["c"]))
    text = df.copy()
    text["c"] = "x"
    with pytest.raises(UserError, match="'c' was numeric in fit"):
        e.transform(text)
    with pytest.raises(UserError, match="pool"):
        TabularEmbedder(**SMALL, pool="max").fit(df)


def test_table_invariance_term_is_vicreg_between_corrupted_whole_rows():
    import torch

    from polyjepa.build import build_method
    from polyjepa.config import load_recipe
    from polyjepa.data import MaskedBatches
    from polyjepa.errors import UserError
    from polyjepa.objectives.vicreg import vicreg_loss
    from polyjepa.tabular.loader import load_table

    d = load_table("wine")
    cfg = load_recipe("tjepa", ["invariance.name=table_vicreg", "invariance.weight=0.5", "invariance.rate=0.3"])
    method = build_method(cfg, d.x.shape[1:], seed=0, meta=d.meta)
    batch = MaskedBatches(torch.from_numpy(d.x), batch_size=32, make_batch=method.make_batch)[0]
    assert batch["x2"].shape == batch["x"].shape == (32, d.x.shape[1])
    assert not torch.equal(batch["x"], batch["x2"])                   # two different corruptions of the rows
    out = method(batch)
    inv, method.invariance = method.invariance, None
    base = method(batch)
    p = [inv.projector(method.backbone(v).mean(1)) for v in (batch["x"], batch["x2"])]  # whole rows on both sides
    assert torch.allclose(out["loss"], base["loss"] + 0.5 * vicreg_loss(*p)["loss"], rtol=1e-5)
    with pytest.raises(UserError, match="table_vicreg"):             # image views on a table: named fix
        build_method(load_recipe("tjepa", ["invariance.name=vicreg"]), d.x.shape[1:], meta=d.meta)


def test_embedder_with_an_invariance_term_fits_and_differs_from_without():
    df, _ = frame()
    plain = TabularEmbedder(max_steps=30, min_steps=30, threads=1).fit(df)
    inv = TabularEmbedder(max_steps=30, min_steps=30, threads=1, invariance_weight=1.0, corruption=0.3).fit(df)
    assert inv.method_.invariance is not None and plain.method_.invariance is None
    a, b = plain.transform(df), inv.transform(df)
    assert a.shape == b.shape and np.isfinite(b).all() and not np.allclose(a, b)
