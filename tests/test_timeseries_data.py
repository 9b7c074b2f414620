"""Series loaders (aeon UCR/UEA sets, .npy/.npz/.csv), boundary checks, and the tsjepa recipe end to end."""
import json

import numpy as np
import pytest

from polyjepa.cli import main
from polyjepa.errors import UserError
from polyjepa.timeseries import check_series, pad_series
from polyjepa.timeseries.data import load_series

TINY_TS = ["encoder.depth=1", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2", "train.max_steps=4",
           "train.monitor_every=2", "train.log_every=2", "train.checkpoint_every=4", "eval.monitor_samples=32"]


def test_aeon_sets_keep_the_official_split():
    pytest.importorskip("aeon")
    gp = load_series("GunPoint")
    assert gp.x.shape == (50, 1, 150) and gp.x_test.shape == (150, 1, 150)
    assert set(np.unique(gp.y)) == {0, 1} and gp.y_test.shape == (150,) and gp.meta == {"length": 150}
    jv = load_series("JapaneseVowels")  # unequal lengths, 12 channels: NaN-padded to the longest
    assert jv.x.shape[:2] == (270, 12) and jv.x_test.shape[:2] == (370, 12) and jv.x.shape[2] == jv.x_test.shape[2]
    real = np.isfinite(np.concatenate([jv.x, jv.x_test])).all(1).sum(1)
    assert real.min() < real.max() == jv.x.shape[2]  # padded to the longest series of train and test
    assert len(np.unique(jv.y)) == 9


def test_bundled_regression_sets_load_with_float_targets():
    pytest.importorskip("aeon")
    from polyjepa.timeseries.data import aeon_datasets

    if "Covid3Month" not in aeon_datasets():
        pytest.skip("this aeon does not bundle Covid3Month")
    d = load_series("Covid3Month")   # listed as bundled; aeon's load_classification refuses regression sets
    assert d.x.shape == (140, 1, 84) and d.x_test.shape == (61, 1, 84)
    assert d.y.dtype == np.float64 and d.y_test.dtype == np.float64 and len(np.unique(d.y)) > 100


def test_column_labels_are_one_label_per_series(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 20)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x, y=np.array(list("abcabc"))[:, None])
    d = load_series(str(tmp_path / "c.npz"))
    assert d.y.tolist() == [0, 1, 2, 0, 1, 2]


def test_unknown_name_lists_the_bundled_sets():
    with pytest.raises(UserError, match="neither a file nor a bundled data set"):
        load_series("NoSuchSet")


def test_npy_npz_csv(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 2, 10)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    assert np.array_equal(load_series(str(tmp_path / "a.npy")).x, x)
    np.savez(tmp_path / "b.npz", x=x[:, 0], labels=np.array(list("ababab")))
    b = load_series(str(tmp_path / "b.npz"))
    assert b.x.shape == (6, 1, 10) and b.y.tolist() == [0, 1, 0, 1, 0, 1]
    (tmp_path / "c.csv").write_text("t0,t1,t2,label\n1,2,3,x\n4,5,,y\n7,8,9,x\n")
    c = load_series(str(tmp_path / "c.csv"))
    assert c.x.shape == (3, 1, 3) and np.isnan(c.x[1, 0, 2]) and c.x[2, 0, 1] == 8 and c.y.tolist() == [0, 1, 0]
    padded = load_series(str(tmp_path / "c.csv"), fitted={"length": 5})  # a run's length
    assert padded.x.shape == (3, 1, 5) and np.isnan(padded.x[:, :, 3:]).all()
    with pytest.raises(UserError, match="at most 2"):
        load_series(str(tmp_path / "c.csv"), length=2)
    (tmp_path / "d.csv").write_text("1,2,3\n4,oops,6\n")
    with pytest.raises(UserError, match="row 2"):
        load_series(str(tmp_path / "d.csv"))


def test_ucr_2018_tsv_pair_gives_the_official_split(tmp_path):
    # UCR 2018 archive layout: NAME_TRAIN.tsv / NAME_TEST.tsv, label first, no header, NaN-padded tails
    (tmp_path / "Toy_TRAIN.tsv").write_text("1\t0.5\t0.25\t1.0\n-1\t2\t3\tNaN\n1\t4\t5\t6\n")
    (tmp_path / "Toy_TEST.tsv").write_text("-1\t1\t2\t3\t4\n1\t5\t6\t7\t8\n")
    d = load_series(str(tmp_path / "Toy_TRAIN.tsv"))
    assert d.x.shape == (3, 1, 4) and d.x_test.shape == (2, 1, 4)   # both padded to the longer test series
    assert d.x[0, 0, :3].tolist() == [0.5, 0.25, 1.0] and np.isnan(d.x[1, 0, 2:]).all()
    assert d.y.tolist() == [1, 0, 1] and d.y_test.tolist() == [0, 1]  # codes shared by both parts: -1 -> 0, 1 -> 1
    alone = load_series(str(tmp_path / "Toy_TEST.tsv"))               # the test file alone: still label first
    assert alone.x.shape == (2, 1, 4) and alone.x_test is None and alone.y.tolist() == [0, 1]
    (tmp_path / "Toy_TEST.tsv").unlink()                              # a training file without its test file
    lone = load_series(str(tmp_path / "Toy_TRAIN.tsv"))
    assert lone.x.shape == (3, 1, 3) and lone.x_test is None and lone.y.tolist() == [1, 0, 1]


def test_numeric_labels_that_are_not_whole_are_regression_targets(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    np.savez(tmp_path / "r.npz", x=x, y=np.array([0.5, 1.25, -3.0, 2.0]))
    r = load_series(str(tmp_path / "r.npz"))
    assert r.y.dtype == np.float64 and r.y.tolist() == [0.5, 1.25, -3.0, 2.0]
    np.savez(tmp_path / "w.npz", x=x, y=np.array([3.0, 1.0, 3.0, 2.0]))   # whole-number floats stay classes
    assert load_series(str(tmp_path / "w.npz")).y.tolist() == [2, 0, 2, 1]
    (tmp_path / "r.csv").write_text("a,b,target\n1,2,0.5\n3,4,1.5\n5,6,7\n")
    assert load_series(str(tmp_path / "r.csv")).y.tolist() == [0.5, 1.5, 7.0]
    np.savez(tmp_path / "n.npz", x=x, y=np.array([0.5, np.nan, 1.0, 2.0]))
    with pytest.raises(UserError, match="1 of 4 labels are NaN"):
        load_series(str(tmp_path / "n.npz"))


@pytest.mark.parametrize("bad, needle", [
    ([np.zeros(5), np.zeros(7)], "ragged list"),
    (np.zeros((2, 3, 4, 5)), "must be (n, length) or (n, channels, length)"),
    (np.zeros(5), "must be (n, length)"),
    (np.array([[1.0, np.nan, 2.0, 3.0]]), "NaN inside"),
    (np.array([[[1.0, 2.0, np.nan], [1.0, 2.0, 3.0]]]), "NaN inside"),  # padding must end every channel
    (np.array([[1.0, np.inf, 2.0]]), "inf"),
    (np.array([[1.0, np.nan, np.nan]]), "shorter than 2 steps"),
    (np.array([["a", "b"]]), "dtype"),
    (np.zeros((0, 4)), "at least one series"),
])
def test_bad_series_give_one_clear_error(bad, needle):
    with pytest.raises(UserError) as e:
        check_series(bad)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_pad_series_and_valid_padding():
    x = pad_series([np.ones((2, 3)), np.ones((2, 5))])
    assert x.shape == (2, 2, 5) and np.isnan(x[0, :, 3:]).all() and not np.isnan(x[1]).any()
    assert check_series(x).shape == (2, 2, 5)
    with pytest.raises(UserError, match="channel counts"):
        pad_series([np.ones((2, 3)), np.ones((1, 3))])


def test_tsvicreg_recipe_end_to_end(tmp_path):
    pytest.importorskip("aeon")
    out = tmp_path / "run"
    tiny = ["encoder.depth=2", "encoder.hidden=8", "encoder.dim=16", "projector.hidden=32", "projector.out_dim=32",
            "train.max_steps=4", "train.monitor_every=2", "train.log_every=2", "train.checkpoint_every=4",
            "eval.monitor_samples=32"]
    assert main(["pretrain", "tsvicreg", "--data", "BasicMotions", "--out", str(out), *tiny]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_train"] == 40 and s["n_test"] == 40 and s["steps"] == 4
    assert s["embedding"]["dim"] == 16  # max over time of the CNN's 16 channels
    for rep in (s["probe"], s["baselines"]["raw"], s["baselines"]["random_init"]):
        assert 0 <= rep["linear"]["accuracy"] <= 1


def test_tsjepa_recipe_end_to_end(tmp_path, capsys):
    pytest.importorskip("aeon")
    out = tmp_path / "run"
    assert main(["pretrain", "tsjepa", "--data", "BasicMotions", "--out", str(out), *TINY_TS]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_train"] == 40 and s["n_test"] == 40 and s["steps"] == 4
    assert s["embedding"]["dim"] == 64 * 2  # mean+max readout
    for rep in (s["probe"], s["baselines"]["raw"], s["baselines"]["random_init"]):
        assert 0 <= rep["linear"]["accuracy"] <= 1
    emb_path = tmp_path / "e.npy"
    assert main(["embed", str(out), "--data", "BasicMotions", "--out", str(emb_path)]) == 0
    assert np.load(emb_path).shape == (80, 128)
