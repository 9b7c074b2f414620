"""Two-tower recommendation: ranking metrics, the leave-one-out split, correlated feature masking, the two losses,
ALS, the MovieLens reader and a tiny end-to-end run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyjepa.errors import UserError
from polyjepa.recommend.baselines import _als_half, als_objective, implicit_als, interaction_matrix
from polyjepa.recommend.data import Interactions, citation_interactions, leave_one_out, read_ratings
from polyjepa.recommend.masking import (binary_mutual_information, correlated_masks, group_by_mutual_information,
                                        group_mutual_information, random_masks)
from polyjepa.recommend.metrics import heldout_ranks, hit_rate, ndcg
from polyjepa.recommend.objectives import in_batch_softmax, ssl_infonce


# ---------------------------------------------------------------- metrics

def test_ranks_hit_rate_and_ndcg_on_a_hand_made_ranking():
    scores = np.array([[0.9, 0.1, 0.5, 0.3, 0.2],      # target 0 is first: rank 0
                       [0.9, 0.8, 0.5, 0.3, 0.2],      # target 2, item 0 excluded: 1 above -> rank 1
                       [0.5, 0.5, 0.5, 0.9, 0.1]])     # target 1 ties with 0 and 2, 3 above: rank 3
    ranks = heldout_ranks(scores, np.array([0, 2, 1]), [np.array([], int), np.array([0]), np.array([], int)])
    assert ranks.tolist() == [0, 1, 3]
    assert hit_rate(ranks, 2) == pytest.approx(2 / 3)
    assert hit_rate(ranks, 10) == 1.0
    # NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top k
    assert ndcg(ranks, 10) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5)) / 3)
    assert ndcg(ranks, 2) == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert ndcg(np.array([10, 50]), 10) == 0.0


def test_an_excluded_target_is_an_error():
    with pytest.raises(ValueError):
        heldout_ranks(np.zeros((1, 3)), np.array([1]), [np.array([1])])


# ---------------------------------------------------------------- split

def _graph(n=60, topics=3, seed=0, per=4):
    rng = np.random.default_rng(seed)
    topic = np.arange(n) % topics
    words = [[f"w{t}x{k}" for k in range(12)] for t in range(topics)]
    texts = [" ".join(rng.choice(words[t], 8)) + " common paper" for t in topic]
    src, dst = [], []
    for i in range(n):
        same = np.flatnonzero((topic == topic[i]) & (np.arange(n) != i))
        for j in rng.choice(same, rng.integers(1, per + 1), replace=False):
            src.append(i)
            dst.append(j)
    edges = np.array([src + [0, 5], dst + [0, 5]])           # two self-citations, dropped by the reader
    return np.array(texts), edges, topic


def test_leave_one_out_never_leaks_the_held_out_item():
    texts, edges, _ = _graph()
    edges = np.concatenate([edges, edges[::-1]], 1)         # every citation also reversed: the leak to avoid
    inter = citation_interactions(texts, edges)
    assert (inter.queries != inter.items).all()
    split = leave_one_out(inter, seed=3)
    n = inter.n_items
    train = set((inter.queries[split.train] * n + inter.items[split.train]).tolist())
    for q, i in zip(split.test_queries, split.test_items):
        assert q * n + i not in train and i * n + q not in train
    counts = np.bincount(inter.queries, minlength=n)
    assert sorted(split.test_queries.tolist()) == np.flatnonzero(counts >= 2).tolist()  # one per eligible query
    assert (~split.train).sum() >= len(split.test_queries)
    # every test query keeps at least one training item
    assert np.isin(split.test_queries, inter.queries[split.train]).all()


def test_leave_one_out_holds_out_the_latest_item_when_there_are_times():
    inter = Interactions(queries=np.array([0, 0, 0, 1, 1, 2]), items=np.array([1, 2, 3, 0, 2, 1]), n_queries=3,
                         n_items=4, name="t", times=np.array([5.0, 9.0, 1.0, 3.0, 2.0, 7.0]))
    split = leave_one_out(inter)
    assert dict(zip(split.test_queries.tolist(), split.test_items.tolist())) == {0: 2, 1: 0}
    assert split.train.tolist() == [True, False, True, False, True, True]


# ---------------------------------------------------------------- masking

def test_binary_mutual_information_matches_a_direct_computation():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(0)
    x = (rng.random((200, 5)) < [0.1, 0.3, 0.5, 0.5, 0.8]).astype(float)
    x[:, 3] = np.where(rng.random(200) < 0.8, x[:, 2], x[:, 3])   # column 3 follows column 2 mostly
    mi = binary_mutual_information(x)
    for i in range(5):
        for j in range(5):
            assert mi[i, j] == pytest.approx(mutual_info_score(x[:, i], x[:, j]), abs=1e-10)
    assert mi[2, 3] > 5 * mi[0, 1]


def _paired_columns(n=400, pairs=8, seed=0):
    """Binary features whose columns 2k and 2k+1 are identical and independent of the other pairs."""
    rng = np.random.default_rng(seed)
    base = (rng.random((n, pairs)) < rng.uniform(0.2, 0.6, pairs)).astype(float)
    return np.repeat(base, 2, axis=1)[:, rng.permutation(2 * pairs)]


def test_groups_cover_every_feature_exactly_once_and_keep_correlated_features_together():
    x = _paired_columns()
    mi = binary_mutual_information(x)
    for g in (1, 3, 5, 8, 16):
        group = group_by_mutual_information(mi, g)
        assert group.shape == (16,) and group.min() == 0 and group.max() == g - 1
        sizes = np.bincount(group, minlength=g)
        assert sizes.sum() == 16 and sizes.max() - sizes.min() <= 1   # each feature once, near-equal groups
    group = group_by_mutual_information(mi, 8)
    twin = [int(np.flatnonzero((x[:, f:f + 1] == x).all(0) & (np.arange(16) != f))[0]) for f in range(16)]
    assert all(group[f] == group[twin[f]] for f in range(16))


def test_correlated_masks_keep_the_seed_and_split_the_groups_in_half():
    rng = np.random.default_rng(1)
    gmi = rng.random((8, 8))
    gmi = torch.as_tensor(gmi + gmi.T)
    seeds = torch.arange(8).repeat(3)
    m = correlated_masks(gmi, seeds)
    assert m.shape == (24, 8) and (m.sum(1) == 4).all()
    assert m[torch.arange(24), seeds].all()                                    # the seed is always in view 1
    for r, s in enumerate(seeds.tolist()):                                     # and its 3 most informative peers
        others = [g for g in range(8) if g != s]
        top = sorted(others, key=lambda g: -float(gmi[s, g]))[:3]
        assert set(torch.nonzero(m[r]).ravel().tolist()) == {s, *top}
    r = random_masks(1000, 8, torch.Generator().manual_seed(0))
    assert (r.sum(1) == 4).all() and r.float().mean(0).sub(0.5).abs().max() < 0.07


def test_correlated_masking_keeps_correlated_pairs_in_one_view_random_masking_splits_them():
    x = _paired_columns(pairs=8)
    mi = binary_mutual_information(x)
    group = np.arange(16)                                      # every feature its own field
    gmi = torch.as_tensor(group_mutual_information(mi, group))
    twin = np.array([int(np.flatnonzero((x[:, f:f + 1] == x).all(0) & (np.arange(16) != f))[0]) for f in range(16)])
    seeds = torch.arange(16).repeat(20)
    cfm = correlated_masks(gmi, seeds).numpy()
    rfm = random_masks(len(seeds), 16, torch.Generator().manual_seed(0)).numpy()
    split = {name: np.mean(m[:, np.arange(16)] != m[:, twin]) for name, m in (("cfm", cfm), ("rfm", rfm))}
    # CFM puts the seed's twin into its view; RFM splits a pair about half the time (8/15)
    seed_twin_together = cfm[np.arange(len(seeds)), twin[seeds.numpy()]].all()
    assert seed_twin_together
    assert split["rfm"] > 0.4 and split["cfm"] < split["rfm"]


# ---------------------------------------------------------------- losses

def test_in_batch_softmax_matches_a_direct_log_softmax_and_masks_repeated_items():
    g = torch.Generator().manual_seed(0)
    q, i = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    ids = torch.tensor([3, 1, 3, 7, 1, 2])
    got = in_batch_softmax(q, i, ids, temperature=0.2)
    qn, inn = q / q.norm(dim=1, keepdim=True), i / i.norm(dim=1, keepdim=True)
    total = 0.0
    for k in range(6):
        cand = [j for j in range(6) if j == k or int(ids[j]) != int(ids[k])]
        logits = torch.stack([qn[k] @ inn[j] / 0.2 for j in cand])
        total += -(logits[cand.index(k)] - torch.logsumexp(logits, 0))
    assert float(got) == pytest.approx(float(total / 6), rel=1e-5)
    plain = in_batch_softmax(q, i, temperature=0.2)
    assert float(plain) == pytest.approx(float(F.cross_entropy(qn @ inn.T / 0.2, torch.arange(6))), rel=1e-5)


def test_ssl_infonce_closed_form_with_identical_views_of_orthogonal_items():
    for n, tau in ((4, 0.1), (10, 0.5), (32, 1.0)):
        z = torch.eye(n, 40)[:, torch.randperm(40)] * 3.0
        assert float(ssl_infonce(z, z, temperature=tau)) == pytest.approx(math.log(1 + (n - 1) * math.exp(-1 / tau)),
                                                                           rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- ALS

def test_als_half_step_is_the_exact_minimiser_and_the_loss_never_rises():
    rng = np.random.default_rng(0)
    r = interaction_matrix(rng.integers(0, 12, 60), rng.integers(0, 9, 60), 12, 9)
    reg, alpha = 0.3, 5.0
    y = rng.normal(size=(9, 4))
    x = _als_half(r, y, reg, alpha)
    dense = np.asarray(r.todense())
    c, p = 1 + alpha * dense, (dense > 0).astype(float)
    grad = -2 * (c * (p - x @ y.T)) @ y + 2 * reg * x              # d loss / d X
    assert np.abs(grad[np.asarray(r.sum(1)).ravel() > 0]).max() < 1e-8
    losses = [als_objective(r, *implicit_als(r, factors=4, reg=reg, alpha=alpha, iterations=k), reg=reg, alpha=alpha)
              for k in (1, 2, 4, 8)]
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:]))


# ---------------------------------------------------------------- MovieLens files

def test_reads_movielens_dat_and_csv_ratings(tmp_path):
    lines = ["10::100::5::300", "10::200::3::100", "10::300::1::200", "20::100::4::50", "20::300::5::60",
             "30::200::2::10"]
    dat = tmp_path / "ml" / "ratings.dat"
    dat.parent.mkdir()
    dat.write_text("\n".join(lines) + "\n")
    (dat.parent / "movies.dat").write_text("100::Toy Story (1995)::Animation|Comedy\n200::Heat (1995)::Action\n"
                                           "300::Casino (1995)::Crime|Drama\n")
    inter = read_ratings(dat)
    assert (inter.n_queries, inter.n_items, len(inter.queries)) == (3, 3, 6)
    assert inter.item_texts.tolist() == ["Toy Story (1995) Animation Comedy", "Heat (1995) Action",
                                         "Casino (1995) Crime Drama"]
    split = leave_one_out(inter)
    assert dict(zip(split.test_queries.tolist(), split.test_items.tolist())) == {0: 0, 1: 2}  # each latest
    high = read_ratings(dat, min_rating=4)
    assert len(high.queries) == 3 and high.n_queries == 2

    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n" + "\n".join(l.replace("::", ",") for l in lines) + "\n")
    c = read_ratings(csv)
    assert (c.n_queries, c.n_items) == (3, 3) and c.item_texts is None
    assert c.queries.tolist() == inter.queries.tolist() and c.items.tolist() == inter.items.tolist()


@pytest.mark.parametrize("form", ["dat", "csv"])
def test_ratings_read_in_small_chunks_equal_a_direct_reading(tmp_path, form):
    """Any chunk size gives the interactions of a direct reading: ids numbered in their sorted order as strings
    ('10' before '9'), repeated pairs kept once (the earliest), ratings under the bound left out."""
    rng = np.random.default_rng(0)
    rows = [(str(rng.integers(1, 30)), str(rng.integers(1, 12)), int(rng.integers(1, 6)), int(rng.integers(0, 1000)))
            for _ in range(200)]
    rows += [rows[3][:2] + (5, 5000), (" 9", "7 ", 4, 7)]                   # a repeated pair; spaces around ids
    path = tmp_path / f"ratings.{form}"
    if form == "dat":
        path.write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in rows))
    else:
        path.write_text("userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in rows))
    kept = [(u.strip(), m.strip(), float(t)) for u, m, r, t in rows if r >= 3]
    users, movies = sorted({u for u, _, _ in kept}), sorted({m for _, m, _ in kept})
    earliest = {}
    for n, (u, m, t) in enumerate(kept):
        key = (users.index(u), movies.index(m))
        if key not in earliest or (t, n) < earliest[key]:
            earliest[key] = (t, n)
    want = sorted(earliest.items(), key=lambda kv: kv[1][1])               # in file order
    for chunk in (1, 7, 10_000):
        got = read_ratings(path, min_rating=3, chunk_rows=chunk)
        assert (got.n_queries, got.n_items) == (len(users), len(movies)), chunk
        assert list(zip(got.queries.tolist(), got.items.tolist())) == [k for k, _ in want], chunk
        assert got.times.tolist() == [t for _, (t, _) in want], chunk


def test_a_file_that_is_not_ratings_is_one_clear_error(tmp_path):
    bad = tmp_path / "ratings.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="MovieLens"):
        read_ratings(bad)
    with pytest.raises(UserError, match="does not exist"):
        read_ratings(tmp_path / "none.csv")
    with pytest.raises(UserError, match="is a folder"):
        read_ratings(tmp_path)
    from polyjepa.recommend.run import prepare_interactions

    for key, value in (("groups", 0), ("vocab_size", 0)):
        with pytest.raises(UserError, match=f"data.{key}=0"):
            prepare_interactions(str(bad), **{key: value})


# ---------------------------------------------------------------- model and run

def test_every_parameter_gets_a_gradient_and_a_tiny_run_beats_popularity_on_topics(tmp_path):
    from polyjepa.runner import pretrain

    texts, edges, _ = _graph(n=90, per=5)
    path = tmp_path / "cites.npz"
    np.savez(path, text=texts, edge_index=edges)
    from polyjepa.recommend.run import build_model, prepare_interactions

    data = prepare_interactions(str(path), vocab_size=50, groups=4)
    model = build_model(data, 0, dim=16, field_dim=8, hidden=32)
    out = model.loss(torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7]), torch.arange(8),
                     torch.Generator().manual_seed(0))
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    s = pretrain("twotower-citeseer", data=str(path), out=str(tmp_path / "run"), progress=False,
                 overrides=["train.max_epochs=10", "train.batch_size=32", "data.vocab_size=50", "data.groups=4",
                            "method.dim=16", "method.hidden=32", "method.ablation=false"], echo=lambda *a, **k: None)
    res = s["results"]
    assert set(res) == {"two_tower_ssl", "popularity", "als", "tfidf"}
    # papers cite within their topic, which the text gives away: the towers must beat popularity clearly
    assert res["two_tower_ssl"]["hr"] > res["popularity"]["hr"] + 0.1
    assert (tmp_path / "run" / "summary.json").exists()


def test_blockwise_scoring_ranks_as_the_whole_matrix_and_never_holds_more_than_a_block(tmp_path):
    """The test queries are scored and ranked a block at a time: the model's and every baseline's metrics equal
    those of the whole (Q, n_items) matrix ranked at once, and no block asks for more rows than its bytes allow."""
    from polyjepa.recommend.run import (baseline_scores, blocked_ranks, build_model, evaluate_scores, exclusions,
                                        model_scores, prepare_interactions)

    texts, edges, _ = _graph(n=90, per=5)
    path = tmp_path / "cites.npz"
    np.savez(path, text=texts, edge_index=edges)
    data = prepare_interactions(str(path), vocab_size=50, groups=4)
    excluded = exclusions(data)
    n_items, target = data.inter.n_items, data.split.test_items
    sources = {"model": model_scores(build_model(data, 0, dim=16, field_dim=8, hidden=32).eval(), data),
               **baseline_scores(data, seed=0)}
    assert set(sources) == {"model", "popularity", "als", "tfidf"}
    for name, scores in sources.items():
        whole = np.asarray(scores(0, len(target)))
        assert whole.shape == (len(target), n_items), name
        asked = []

        def counted(a, b, scores=scores):
            asked.append(b - a)
            return scores(a, b)

        block_bytes = 8 * n_items * 7                   # 7 queries a block
        ranks = blocked_ranks(counted, target, excluded, n_items, block_bytes)
        assert np.array_equal(ranks, heldout_ranks(whole, target, excluded)), name
        assert max(asked) == 7 and sum(asked) == len(target), name
        assert evaluate_scores(scores, data, excluded, block_bytes=block_bytes) == \
            evaluate_scores(whole, data, excluded), name


def test_a_movielens_file_runs_end_to_end_and_needs_texts_for_the_ssl_term(tmp_path):
    from polyjepa.runner import pretrain

    rng = np.random.default_rng(0)
    genres = ["Action", "Comedy", "Drama"]
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "movies.dat").write_text("".join(
        f"{m}::Movie {m} ({1990 + m % 9})::{genres[m % 3]}|{genres[(m + 1) % 3]}\n" for m in range(30)))
    lines = [f"{u}::{m}::{rng.integers(1, 6)}::{t}" for u in range(40) for t, m in
             enumerate(rng.choice(np.arange(u % 3, 30, 3), 6, replace=False))]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    tiny = ["train.max_epochs=3", "train.batch_size=32", "data.vocab_size=40", "data.groups=4", "data.min_count=2",
            "method.dim=8", "method.hidden=16", "method.field_dim=4"]
    s = pretrain("twotower-citeseer", data=str(folder / "ratings.dat"), out=str(tmp_path / "run"), progress=False,
                 overrides=tiny, echo=lambda *a, **k: None)
    assert s["n_queries"] == 40 and s["n_items"] == 30 and s["n_test"] == 40
    assert set(s["results"]) == {"two_tower_ssl", "two_tower", "popularity", "als"}
    (folder / "movies.dat").unlink()
    with pytest.raises(UserError, match="needs item features"):
        pretrain("twotower-citeseer", data=str(folder / "ratings.dat"), out=str(tmp_path / "run2"), progress=False,
                 overrides=tiny, echo=lambda *a, **k: None)
    s = pretrain("twotower-citeseer", data=str(folder / "ratings.dat"), out=str(tmp_path / "run3"), progress=False,
                 overrides=[*tiny, "method.ssl_weight=0"], echo=lambda *a, **k: None)
    assert set(s["results"]) == {"two_tower", "popularity", "als"}
