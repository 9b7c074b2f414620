"""The paired family end to end: data checks, towers, and a tiny recipe through 'polyjepa pretrain'."""
import importlib.util
import numpy as np
import pytest
import torch

from polyjepa.errors import UserError

needs_text = pytest.mark.skipif(importlib.util.find_spec("tokenizers") is None,
                                reason="the text tower needs the optional 'tokenizers' package (extra 'text')")
needs_graph = pytest.mark.skipif(importlib.util.find_spec("torch_geometric") is None,
                                 reason="the graph tower needs the optional 'torch-geometric' package (extra 'graph')")

TEXTS = [f"paper {i} about {w} and more {w}" for i, w in enumerate(["graphs", "images", "text", "sound"] * 5)]


@needs_text
def test_bad_pairs_get_one_clear_line():
    from polyjepa.paired.data import make_pairs

    a = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    with pytest.raises(UserError, match="side a has 19 items but side b has 20 texts"):
        make_pairs(a[:19], TEXTS, side_a="vector", name="t")
    texts = list(TEXTS)
    texts[3], texts[7] = None, "  "
    with pytest.raises(UserError, match=r"missing values in 2 row\(s\) \(3, 7\)"):
        make_pairs(a, texts, side_a="vector", name="t")
    with pytest.raises(UserError, match="edges pointing past its 20 nodes"):
        make_pairs(a, TEXTS, side_a="graph", name="t", edge_index=np.array([[0, 1], [5, 20]]))
    pairs = make_pairs(a, TEXTS, side_a="vector", name="t", max_len=8, min_frequency=1)
    assert pairs.b.shape == (20, 1, 8) and pairs.b.max() < pairs.meta["vocab_size"] and pairs.test.sum() == 4
    with pytest.raises(UserError, match="max_len"):
        make_pairs(a, TEXTS, side_a="vector", name="t", max_len=6, fitted=pairs.meta)


@needs_text
def test_tokenizer_is_trained_on_training_texts_only_and_reused():
    from polyjepa.paired.data import make_pairs
    from polyjepa.paired.text import encode_texts

    texts = list(TEXTS)
    texts[0] = "zyxwvut " * 3
    test = np.zeros(20, bool)
    test[0] = True
    pairs = make_pairs(np.zeros((20, 2)), texts, side_a="vector", name="t", test=test, min_frequency=1, max_len=8)
    assert "zyxwvut" not in pairs.meta["tokenizer"]        # the held-out text's word is not in the vocabulary
    again = encode_texts(texts, pairs.meta["tokenizer"], max_len=8)
    assert np.array_equal(again, pairs.b[:, 0])


@needs_text
def test_text_tower_ignores_padding_and_every_parameter_learns():
    from polyjepa.paired.text import TextTransformer

    torch.manual_seed(0)
    tower = TextTransformer(vocab_size=30, max_len=10, dim=16, depth=2, heads=2)
    ids = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 10, 11, 12, 13]])
    short = tower(ids[:, :3])
    longer = tower(ids)
    assert torch.allclose(short[0], longer[0], atol=1e-5)   # padding changes nothing
    longer.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in tower.parameters())
    with pytest.raises(UserError, match="another tokenizer"):
        tower(torch.tensor([[31, 2]]))


@needs_graph
def test_gcn_tower_reads_neighbourhoods():
    from polyjepa.paired.graph import GCNTower

    torch.manual_seed(0)
    tower = GCNTower(graph={"n_nodes": 5, "edge_index": np.array([[0, 1], [1, 2]])}, dim=8, layers=1)
    out = tower(torch.tensor([0, 3]))
    assert out.shape == (2, 8)
    (out * torch.randn(2, 8)).sum().backward()
    grad = tower.nodes.weight.grad
    assert grad[[0, 1, 3]].abs().sum(1).gt(0).all() and grad[[2, 4]].abs().sum() == 0   # 1 hop from 0 and 3 only


@needs_text
def test_clip_digits_recipe_runs_and_beats_random_init(tmp_path, capsys):
    from polyjepa.cli import main

    code = main(["pretrain", "clip-digits", "--out", str(tmp_path / "run"), "train.max_steps=60", "train.threads=1",
                 "data.max_len=8"])
    assert code in (None, 0)
    text = capsys.readouterr().out
    assert "two towers (trained)" in text and "raw features + CCA" in text
    import json

    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    trained, rand = s["results"]["trained"], s["results"]["random_init"]
    assert trained["a2b_medr"] < rand["a2b_medr"] and trained["b2a_medr"] < rand["b2a_medr"]
    assert trained["probe_a"] > rand["probe_a"]
    assert trained["zero_shot"] > rand["zero_shot"] + 0.1     # label prompts "a handwritten seven", chance 0.1
    from polyjepa.paired.run import embed_side, load_paired_run

    method, pairs = load_paired_run(tmp_path / "run")
    za = embed_side(method, pairs.a[pairs.test][:5], "a")
    assert za.shape == (5, 64) and np.allclose(np.linalg.norm(za, axis=1), 1, atol=1e-5)


@needs_text
def test_paired_recipe_errors_are_one_line(tmp_path):
    from polyjepa.runner import pretrain

    with pytest.raises(UserError, match="needs paired data with a graph"):
        pretrain("clip-digits", out=str(tmp_path / "a"), overrides=["objective.name=congrat"], progress=False)
    from polyjepa.config import recipe_dir

    recipe = (recipe_dir() / "clip-digits.yaml").read_text().replace(
        "tower_b:\n  name: text_transformer\n  dim: 64\n  depth: 1\n  heads: 2", "tower_b:\n  name: mlp")
    (tmp_path / "r.yaml").write_text(recipe)
    with pytest.raises(UserError, match="tower_b.name=text_transformer"):
        pretrain(str(tmp_path / "r.yaml"), out=str(tmp_path / "b"), progress=False)
    with pytest.raises(UserError, match="not 'digits' or an existing .npz"):
        pretrain("clip-digits", data="nowhere.csv", out=str(tmp_path / "c"), progress=False)


@needs_text
def test_loader_reads_image_caption_and_graph_npz(tmp_path):
    from polyjepa.paired.data import load_pairs

    rng = np.random.default_rng(0)
    words = ["red", "blue", "green", "small", "large", "dog", "cat", "ball"]
    captions = np.array([[" ".join(rng.choice(words, 4)) for _ in range(3)] for _ in range(12)])
    split = np.array(["train"] * 8 + ["dev"] + ["test"] * 3)
    np.savez(tmp_path / "ic.npz", images=rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8), captions=captions,
             split=split)
    p = load_pairs(str(tmp_path / "ic.npz"), max_len=6, min_frequency=1)
    assert p.side_a == "image" and p.a.shape == (11, 3, 8, 8) and p.b.shape == (11, 3, 6)
    assert p.test.sum() == 3 and p.n_train == 8 and p.y is None            # the dev row is left out
    np.savez(tmp_path / "g.npz", text=captions[:, 0], edge_index=np.array([[0, 1, 2], [1, 2, 3]]),
             labels=np.arange(12) % 2)
    g = load_pairs(str(tmp_path / "g.npz"), max_len=6, min_frequency=1, test_size=4)
    assert g.side_a == "graph" and np.array_equal(g.a, np.arange(12)) and g.graph["n_nodes"] == 12
    assert g.test.sum() == 4 and np.bincount(g.y[g.test]).tolist() == [2, 2]   # stratified
    np.savez(tmp_path / "bad.npz", text=captions[:, 0], edge_index=np.array([[0, 1], [1, 12]]))
    with pytest.raises(UserError, match="past its 12 nodes"):
        load_pairs(str(tmp_path / "bad.npz"))


@needs_text
@needs_graph
def test_congrat_recipe_trains_on_a_small_text_graph(tmp_path):
    from polyjepa.runner import pretrain

    rng = np.random.default_rng(0)
    topics = [["graph", "node", "edge", "walk"], ["image", "pixel", "camera", "photo"]]
    labels = np.arange(48) % 2
    text = np.array([" ".join(rng.choice(topics[c], 6)) + f" item{i}" for i, c in enumerate(labels)])
    src = rng.integers(0, 48, 120)
    dst = np.where(rng.random(120) < 0.9, (src + 2 * rng.integers(1, 5, 120)) % 48, rng.integers(0, 48, 120))
    np.savez(tmp_path / "tag.npz", text=text, edge_index=np.stack([src, dst]), labels=labels,
             class_names=np.array(["graphs", "images"]))
    s = pretrain("congrat-citeseer", data=str(tmp_path / "tag.npz"), out=str(tmp_path / "run"), progress=False,
                 overrides=["train.max_steps=6", "train.batch_size=16", "train.threads=1", "data.max_len=8",
                            "data.vocab_size=100", "tower_a.dim=16", "tower_b.dim=16", "tower_b.heads=2",
                            "method.proj_dim=8", "eval.baselines=false"], echo=lambda *a, **k: None)
    assert s["side_a"] == "graph" and s["steps"] == 6 and s["n_test"] == 10
    for row in s["results"].values():  # 10 test items: every one is within the top 10 of any ranking
        assert row["a2b_r10"] == 1.0 and row["b2a_r10"] == 1.0 and 1 <= row["a2b_medr"] <= 10
    assert "zero_shot" in s["results"]["trained"]


@needs_text
def test_cca_baseline_aligns_sides_that_share_a_latent():
    from polyjepa.paired.baselines import cca_embeddings, raw_features
    from polyjepa.paired.data import make_pairs
    from polyjepa.paired.retrieval import cosine_similarity, retrieval_metrics

    rng = np.random.default_rng(0)
    c, j = rng.integers(0, 8, 200), rng.integers(0, 8, 200)
    a = np.concatenate([np.eye(8)[c], np.eye(8)[j], rng.normal(size=(200, 8))], 1) + 0.1 * rng.normal(size=(200, 24))
    texts = [f"alpha{x} beta{y}" for x, y in zip(c, j)]
    pairs = make_pairs(a, texts, side_a="vector", name="t", test_size=40, min_frequency=1, max_len=4)
    a_c, b_c = cca_embeddings(raw_features(pairs, dim=16), components=16)
    m = retrieval_metrics(cosine_similarity(a_c, b_c[:, 0]))
    # 40 test pairs over 64 (c, j) combinations: an aligned space finds most texts in the top 5 (measured 0.65; chance 0.125)
    assert m["a2b_r5"] > 0.5 and m["b2a_r5"] > 0.5
    shuffled = make_pairs(a, list(rng.permutation(texts)), side_a="vector", name="t", test_size=40, min_frequency=1,
                          max_len=4)
    a_s, b_s = cca_embeddings(raw_features(shuffled, dim=16), components=16)
    assert retrieval_metrics(cosine_similarity(a_s, b_s[:, 0]))["a2b_r5"] < 0.4   # no shared latent: near chance


@needs_text
def test_a_paired_run_cut_back_to_a_checkpoint_resumes_to_the_same_weights(tmp_path, capsys):
    """``polyjepa pretrain --resume`` continues a two-tower run from its newest checkpoint: the same data order,
    optimizer state and schedule, so steps 5-6 and the final weights are those of the run that never stopped."""
    import csv
    import shutil

    from polyjepa.cli import main
    from polyjepa.train.checkpoint import load_latest_checkpoint

    whole = tmp_path / "whole"
    assert main(["pretrain", "clip-digits", "--out", str(whole), "train.max_steps=6", "train.checkpoint_every=4",
                 "train.log_every=1", "train.threads=1", "data.max_len=8", "eval.baselines=false",
                 "--no-progress"]) in (None, 0)
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoints" / "step-0000006")
    (cut / "checkpoints" / "latest.json").unlink()
    (cut / "summary.json").unlink()
    step4 = (cut / "checkpoints" / "step-0000004" / "state.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(cut), "--no-progress"]) in (None, 0)
    assert "starting it over" not in capsys.readouterr().out
    assert (cut / "checkpoints" / "step-0000004" / "state.json").stat().st_mtime_ns == step4   # not retrained
    assert (cut / "summary.json").exists()

    def losses(run):
        with open(run / "metrics.csv", newline="") as f:
            return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]

    a, b = losses(whole), losses(cut)
    assert len(a) == len(b) == 6 and all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(a, b)), (a, b)
    w, c = load_latest_checkpoint(whole / "checkpoints")[1], load_latest_checkpoint(cut / "checkpoints")[1]
    assert w.keys() == c.keys()
    for k in w:
        assert torch.allclose(w[k], c[k], atol=1e-6), k
