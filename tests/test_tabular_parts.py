"""Tabular parts: schema and encoding, feature tokenizer, piecewise-linear encoding, feature-subset masker."""
import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")

from polyjepa.errors import UserError  # noqa: E402
from polyjepa.tabular.masker import FeatureSubsetMasker, subset_sizes  # noqa: E402
from polyjepa.tabular.schema import encode, fit_schema  # noqa: E402
from polyjepa.tabular.tokenizer import FeatureTokenizer, piecewise_linear  # noqa: E402


def mixed_frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "city": rng.choice(["a", "b", "c"], n),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
        "flag": rng.random(n) > 0.5,
        "code": rng.integers(0, 5, n),          # few distinct integers: categorical by default
        "count": rng.integers(0, 1000, n),      # many distinct integers: numeric
    })
    df.loc[3, "age"] = np.nan
    df.loc[4, "city"] = None
    return df


def test_schema_kinds_and_encoding():
    df = mixed_frame()
    s = fit_schema(df)
    assert s["kinds"] == ["num", "cat", "cat", "cat", "cat", "num"]
    assert s["categories"][1] == ["a", "b", "c"] and s["categories"][3] == ["False", "True"]
    x = encode(df, s)
    assert x.shape == (40, 6) and x.dtype == np.float32
    assert np.isnan(x[3, 0]) and np.isnan(x[4, 1]) and np.isnan(x).sum() == 2
    finite = x[~np.isnan(x[:, 0]), 0]
    assert abs(finite.mean()) < 1e-5 and abs(finite.std() - 1) < 1e-4  # standardised with train statistics
    assert (x[:, 1][~np.isnan(x[:, 1])] == df["city"].dropna().map({"a": 0, "b": 1, "c": 2}).to_numpy()).all()


def test_unseen_category_gets_unknown_code_and_columns_may_be_reordered():
    df = mixed_frame()
    s = fit_schema(df)
    new = df.iloc[:3].copy()
    new["city"] = ["zzz", "a", None]
    x = encode(new[list(reversed(df.columns))], s)
    assert x[0, 1] == 3 and x[1, 1] == 0 and np.isnan(x[2, 1])


def test_schema_errors_name_the_problem():
    with pytest.raises(UserError, match="empty"):
        fit_schema(pd.DataFrame())
    with pytest.raises(UserError, match="empty"):
        fit_schema(pd.DataFrame({"a": []}))
    with pytest.raises(UserError, match="cannot be encoded"):
        fit_schema(pd.DataFrame({"t": pd.date_range("2020", periods=3)}))
    with pytest.raises(UserError, match="unhashable"):
        fit_schema(pd.DataFrame({"l": [[1], [2], [3]]}))
    with pytest.raises(UserError, match="inf"):
        fit_schema(pd.DataFrame({"a": [1.0, np.inf]}))
    with pytest.raises(UserError, match="not listed as categorical"):
        fit_schema(pd.DataFrame({"a": ["x", "y"]}), categorical=[])
    s = fit_schema(mixed_frame())
    with pytest.raises(UserError, match="differ from those seen in fit"):
        encode(mixed_frame().drop(columns=["age"]), s)
    bad = mixed_frame()
    bad["age"] = "old"
    with pytest.raises(UserError, match="non-numeric"):
        encode(bad, s)


def test_piecewise_linear_matches_a_direct_computation():
    edges = torch.tensor([[0.0, 1.0, 3.0, 4.0], [-1.0, 1.0, 1.0, 1.0]])  # feature 1 has one used bin
    x = torch.tensor([[-0.5, -3.0], [2.0, 0.0], [5.0, 2.0], [0.5, 1.0]])
    got = piecewise_linear(x, edges)

    def ref(v, e):
        e = sorted(set(e))
        out = []
        for t in range(len(e) - 1):
            r = (v - e[t]) / (e[t + 1] - e[t])
            if t > 0:
                r = max(r, 0.0)
            if t < len(e) - 2:
                r = min(r, 1.0)
            out.append(r)
        return out + [0.0] * (3 - len(out))

    want = torch.tensor([[ref(float(x[b, f]), edges[f].tolist()) for f in range(2)] for b in range(4)])
    assert torch.allclose(got, want)


@pytest.mark.parametrize("numeric", ["linear", "ple"])
def test_tokenizer_tokens_and_gradients(numeric):
    df = mixed_frame()
    s = fit_schema(df)
    tok = FeatureTokenizer(meta=s, dim=8, n_reg_tokens=2, numeric=numeric)
    x = torch.from_numpy(encode(df, s))
    out = tok(x)
    assert out.shape == (40, 8, 8) and torch.isfinite(out).all() and tok.grid == (8,)
    assert torch.equal(out[:, :2], tok.reg_token.expand(40, -1, -1))
    # a missing value is its column's missing token; an unseen category is the column's unknown row
    assert torch.equal(out[3, 2 + 0], tok.missing_token[0]) and torch.equal(out[4, 2 + 1], tok.missing_token[1])
    unseen = x[:1].clone()
    unseen[0, 1] = 3.0
    unknown_row = tok.cat_embed[tok.cat_offset[0] + 3]
    assert torch.equal(tok(unseen)[0, 3], unknown_row)
    unseen[0, 1] = 99.0  # any code out of range reads as unknown
    assert torch.equal(tok(unseen)[0, 3], unknown_row)
    # numeric tokens depend on the value; identical rows give identical tokens
    assert not torch.equal(out[0, 2], out[1, 2]) and torch.equal(tok(x[:5]), out[:5])
    out.sum().backward()
    for name, p in tok.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert tok.position_embedding(16).shape == (8, 16)


def test_tokenizer_needs_a_schema():
    with pytest.raises(ValueError, match="table schema"):
        FeatureTokenizer(meta={}, dim=8)


def test_subset_sizes_follow_the_reference_rule():
    g = torch.Generator().manual_seed(0)
    F = 14
    seen = set()
    for _ in range(500):
        nc, nt = subset_sizes(F, (0.136, 0.368), (0.156, 0.622), g)
        assert round(F * 0.136) <= nc <= round(F * 0.368) and round(F * 0.156) <= nt <= round(F * 0.622)
        assert nc + nt <= F
        seen.add((nc, nt))
    assert len(seen) > 10  # sizes vary between batches


@pytest.mark.parametrize("F,R", [(14, 1), (5, 0), (30, 2), (2, 1)])
def test_masker_invariants(F, R):
    m = FeatureSubsetMasker(grid=(F + R,), n_reg_tokens=R, n_targets=4)
    for seed in range(20):
        ctx, tgt = m(16, torch.Generator().manual_seed(seed))
        B, M, Nt = tgt.shape
        assert B == 16 and M == 4 and ctx.shape[0] == 16
        assert (ctx[:, :R] == torch.arange(R)).all()                        # reg tokens: always context
        assert (ctx[:, R:] >= R).all() and (ctx < F + R).all()
        assert (tgt >= R).all() and (tgt < F + R).all()                     # ... and never targets
        nc = ctx.shape[1] - R
        assert 1 <= nc and 1 <= Nt and nc + Nt <= F
        for b in range(B):
            c = set(ctx[b].tolist())
            assert len(c) == ctx.shape[1]                                    # no repeats
            for t in tgt[b]:
                assert len(set(t.tolist())) == Nt and not (set(t.tolist()) & c)  # disjoint from context
    a = m(8, torch.Generator().manual_seed(3))
    b = m(8, torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))                     # determined by the generator


def test_masker_covers_every_column():
    m = FeatureSubsetMasker(grid=(11,), n_reg_tokens=1)
    ctx, tgt = m(256, torch.Generator().manual_seed(0))
    assert set(ctx[:, 1:].unique().tolist()) == set(range(1, 11)) == set(tgt.unique().tolist())


def test_masker_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        FeatureSubsetMasker(grid=(2,), n_reg_tokens=1)
    with pytest.raises(ValueError, match="context_ratio"):
        FeatureSubsetMasker(grid=(10,), context_ratio=(0.5, 0.2))


def test_quantile_edges_are_quantiles_and_refill_bins_lost_to_repeated_values():
    from polyjepa.tabular.schema import quantile_edges

    rng = np.random.default_rng(0)
    z = rng.normal(size=1001)
    np.testing.assert_allclose(quantile_edges(z, 8), np.quantile(z, np.linspace(0, 1, 9)))  # no ties: plain quantiles
    # 92 % zeros, as Adult's capital-gain: plain quantiles leave [0, q, max]; the rest of the range gets its bins back
    gains = np.concatenate([np.zeros(920), rng.exponential(5.0, 80)])
    assert len(np.unique(np.quantile(gains, np.linspace(0, 1, 17)))) <= 4
    edges = quantile_edges(gains, 16)
    assert len(edges) == 17 and np.all(np.diff(edges) > 0)
    assert edges[0] == 0 and edges[-1] == gains.max()
    positive = gains[gains > 0]
    inner = np.quantile(positive, np.linspace(0, 1, 17 - len(np.unique(np.quantile(gains, np.linspace(0, 1, 17)))) + 2)[1:-1])
    assert np.isin(inner, edges).all()                                      # the refilled edges: quantiles of the rest
    assert len(quantile_edges(np.ones(50), 16)) == 1                        # a constant column: one edge, no crash
    assert len(quantile_edges(np.array([0.0] * 30 + [1.0] * 20), 16)) == 2  # two values: one bin


def test_feature_corruption_keeps_each_column_marginal_and_the_rate():
    from polyjepa.tabular.augment import FeatureCorruption

    B, F = 400, 6
    x = torch.arange(B * F, dtype=torch.float32).reshape(B, F)              # every entry unique: traceable
    x[::7, 2] = float("nan")
    out = FeatureCorruption(rate=0.4)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for j in range(F):                                                      # values come from the same column
        col = x[:, j]
        assert torch.isin(out[:, j][~out[:, j].isnan()], col[~col.isnan()]).all()
    changed = ~((out == x) | (out.isnan() & x.isnan()))
    assert 0.3 < changed.float().mean() < 0.42                              # rate minus the rows that drew themselves
    same = FeatureCorruption(rate=0.4)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out.nan_to_num(-1), same.nan_to_num(-1))             # seeded
    assert torch.equal(FeatureCorruption(rate=0.0)(x, torch.Generator()).nan_to_num(-1), x.nan_to_num(-1))
    with pytest.raises(ValueError, match="rate"):
        FeatureCorruption(rate=1.5)
    with pytest.raises(ValueError, match="batch, features"):
        FeatureCorruption()(x[None], torch.Generator())
