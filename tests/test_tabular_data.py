"""Table loader (CSV/TSV.gz/Parquet/DataFrame/bundled, official splits, fitted schema) and the tjepa recipe end to end."""
import json
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from polyjepa.errors import UserError  # noqa: E402
from polyjepa.tabular.loader import load_table  # noqa: E402

from .conftest import SHARED_DATA  # noqa: E402

TINY_TAB = ["encoder.dim=16", "encoder.depth=1", "train.batch_size=32",
            "train.max_steps=6", "train.log_every=2", "train.monitor_every=3", "train.checkpoint_every=3",
            "eval.monitor_samples=64", "train.threads=1"]


def table(n=120, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "color": rng.choice(["red", "green", "blue"], n),
                       "x2": rng.normal(size=n), "label": np.where(rng.random(n) > 0.5, "yes", "no")})
    df.loc[5, "x1"] = np.nan
    return df


def test_csv_tsv_gz_and_dataframe_load_the_same(tmp_path):
    df = table()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv.gz", sep="\t", index=False)
    a = load_table(str(tmp_path / "t.csv"), target="label")
    b = load_table(str(tmp_path / "t.tsv.gz"), target="label")
    c = load_table(df, target="label")
    assert a.x.shape == (120, 3) and a.meta["columns"] == ["x1", "color", "x2"]
    assert np.array_equal(a.x, b.x, equal_nan=True) and np.array_equal(a.x, c.x, equal_nan=True)
    assert set(a.y.tolist()) == {0, 1} and a.meta["classes"] == ["no", "yes"]
    json.dumps(a.meta)  # stored in run.json


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    df = table()
    df.to_parquet(tmp_path / "t.parquet")
    assert load_table(str(tmp_path / "t.parquet"), target="label").x.shape == (120, 3)


def test_official_split_and_fitted_schema():
    df = table()
    d = load_table(df, target="label", train_rows=100)
    assert len(d.x) == 100 and len(d.x_test) == 20 and len(d.y_test) == 20
    new = table(30, seed=1)
    new.loc[0, "color"] = "purple"  # unseen: the unknown slot
    again = load_table(new.drop(columns=["label"]), target="label", fitted=d.meta)
    assert again.y is None and again.x[0, 1] == 3 and again.meta["columns"] == d.meta["columns"]


def test_regression_target_gives_float_values_and_bundled_default():
    df = table()
    df["label"] = np.linspace(0, 1, len(df)) + 0.01
    d = load_table(df, target="label")
    assert d.y.dtype == np.float64 and np.allclose(d.y, df["label"]) and d.meta["task"] == "regression"
    # a run's task sticks: new rows whose target happens to be whole numbers are still regressed
    again = load_table(df.assign(label=np.arange(len(df)) % 3), target="label", fitted=d.meta)
    assert again.y.dtype == np.float64
    with pytest.raises(UserError, match="not numeric"):
        load_table(df.assign(label="x"), target="label", fitted=d.meta)
    bc = load_table("breast_cancer")
    assert bc.x.shape == (569, 30) and bc.y.shape == (569,)


def test_loader_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_table(str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match="target column 'y'"):
        load_table(table(), target="y")
    with pytest.raises(UserError, match="train_rows"):
        load_table(table(), target="label", train_rows=500)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match="use a .csv"):
        load_table(str(tmp_path / "x.json"))
    with pytest.raises(UserError, match="empty"):
        load_table(pd.DataFrame({"target": [1, 2]}))


def test_tjepa_recipe_end_to_end(tmp_path):
    from polyjepa.runner import embed_run, pretrain

    df = table(200)
    df.to_csv(tmp_path / "t.csv", index=False)
    run = tmp_path / "run"
    s = pretrain("tjepa", data=str(tmp_path / "t.csv"), out=str(run), overrides=TINY_TAB + ["data.target=label"],
                 progress=False, echo=lambda *a: None)
    assert s["steps"] == 6 and np.isfinite(s["final_loss"]) and "accuracy" in s["probe"]["linear"]
    assert s["embedding"]["dim"] == 2 * (1 + 3) * 16  # pool=tokens+input: 2 x (regularisation token + 3 columns)
    new = table(10, seed=2).drop(columns=["label"])
    new.loc[0, "color"] = "purple"
    new.to_csv(tmp_path / "new.csv", index=False)
    emb = embed_run(str(run), str(tmp_path / "new.csv"))
    assert emb.shape == (10, 128) and np.isfinite(emb).all()


def test_tjepa_regression_target_is_probed_by_r2(tmp_path):
    """A continuous target: ridge and kNN-mean probes report R^2 and RMSE, for the baselines too."""
    from polyjepa.runner import format_table, pretrain

    df = table(200)
    df["label"] = 2.0 * df["x2"] + 0.1 * np.random.default_rng(1).normal(size=len(df))  # x2 predicts it
    s = pretrain("tjepa", data=df, out=str(tmp_path / "run"), overrides=TINY_TAB + ["data.target=label"],
                 progress=False, echo=lambda *a: None)
    assert s["n_test"] == 40 and set(s["probe"]["linear"]) == {"r2", "rmse", "alpha"}
    assert s["baselines"]["raw"]["linear"]["r2"] > 0.95  # x2 is a raw column (NaN-free)
    assert np.isfinite(s["probe"]["knn"]["r2"]) and "R^2" in format_table(s)


def test_tjepa_on_a_dataframe_saves_it_for_probe_and_resume(tmp_path):
    from polyjepa.runner import pretrain, probe_run

    df = table(200)
    df["color"] = df["color"].astype("category")
    run = tmp_path / "run"
    s = pretrain("tjepa", data=df, out=str(run), overrides=TINY_TAB + ["data.target=label"],
                 progress=False, echo=lambda *a: None)
    saved = Path(s["data"])
    assert saved.parent == run and saved.name.startswith("data.") and "accuracy" in s["probe"]["linear"]
    assert pd.read_parquet(saved).equals(df) if saved.suffix == ".parquet" else len(pd.read_csv(saved)) == 200
    p = probe_run(str(run), echo=lambda *a: None)
    assert p["probe"]["linear"]["accuracy"] == s["probe"]["linear"]["accuracy"]
    with pytest.raises(UserError, match="pandas DataFrame"):
        pretrain("tjepa", data=[1, 2], out=str(tmp_path / "bad"), progress=False, echo=lambda *a: None)


def test_tjepa_small_or_single_class_tables_fail_clearly(tmp_path, capsys):
    from polyjepa.cli import main

    (tmp_path / "tiny.csv").write_text("a,b,target\n1,x,yes\n2,y,no\n3,x,yes\n4,z,no\n5,y,yes\n6,x,no\n")
    (tmp_path / "one.csv").write_text("a,b,target\n1,x,yes\n2,y,yes\n3,x,yes\n4,z,yes\n5,y,yes\n6,x,yes\n")
    for name, needle in (("tiny.csv", "fewer than one batch of 32: lower train.batch_size"),
                         ("one.csv", "single class")):
        code = main(["pretrain", "tjepa", "--data", str(tmp_path / name), "--out", str(tmp_path / name[:-4]),
                     "--no-progress", *TINY_TAB])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
        assert not (tmp_path / name[:-4]).exists()  # nothing written: the same command can be re-run
    # a batch that fits trains, and the probes cope with 4 training rows (no validation split for C)
    assert main(["pretrain", "tjepa", "--data", str(tmp_path / "tiny.csv"), "--out", str(tmp_path / "ok"),
                 "--no-progress", *TINY_TAB, "train.batch_size=2"]) == 0


def test_tjepa_default_recipe_builds_on_bundled_table():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    d = load_table("wine")
    m = build_method(load_recipe("tjepa"), d.x.shape[1:], 0, d.meta)
    assert m.backbone.tokenizer.grid == (1 + 13,)


@pytest.mark.skipif(not (SHARED_DATA / "pmlb_adult.tsv.gz").exists(), reason="needs ../shared/data/pmlb_adult.tsv.gz")
def test_adult_official_split():
    d = load_table(str(SHARED_DATA / "pmlb_adult.tsv.gz"), target="target", train_rows=32561)
    assert d.x.shape == (32561, 14) and d.x_test.shape == (16281, 14)
    assert d.meta["kinds"].count("cat") == 8  # the label-encoded categoricals
