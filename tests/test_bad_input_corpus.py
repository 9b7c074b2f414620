"""A corpus of bad inputs, as a hostile user would try them: every one ends in one clear line.

Command-line cases run in-process through ``polyjepa.cli.main`` and must exit with code 2 and print a
single ``polyjepa: error: ...`` line naming the problem; Python API cases must raise a ``ValueError``
subclass (``UserError``) whose message names it. Cases that need a trained run share one tiny run,
copied per case.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from polyjepa.cli import main
from polyjepa.errors import UserError

TINY_CLI = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
            "train.batch_size=32", "train.max_steps=4", "train.monitor_every=0", "train.checkpoint_every=2",
            "eval.monitor_samples=64", "data.max_samples=300", "train.threads=1"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished tiny run (8x8 digits) shared by the cases that need one; cases copy it before changing it."""
    run = tmp_path_factory.mktemp("corpus") / "run"
    assert main(["pretrain", "ijepa-digits", "--out", str(run), "--no-progress", *TINY_CLI]) == 0
    return run


def _copy(run, tmp):
    dst = tmp / "run"
    shutil.copytree(run, dst)
    return dst


def _npz(tmp, name, **arrays):
    path = tmp / name
    np.savez(path, **arrays)
    return str(path)


def _images(n=40, scale=1.0, dtype=np.float32):
    rng = np.random.default_rng(0)
    return (rng.random((n, 8, 8)) * scale).astype(dtype)


def _csv(tmp, name, text):
    path = tmp / name
    path.write_text(text)
    return str(path)


def _table(tmp, name="t.csv", n=60, extra=None):
    rng = np.random.default_rng(0)
    lines = ["a,b,c,label"]
    for i in range(n):
        lines.append(f"{rng.normal():.4f},{rng.normal():.4f},{['x', 'y', 'z'][i % 3]},{i % 2}")
    if extra:
        lines = extra(lines)
    return _csv(tmp, name, "\n".join(lines) + "\n")


def _unwritable_dir(tmp):
    """A folder path nothing can be written under, also for root: its parent is a regular file."""
    blocker = tmp / "blocker"
    blocker.write_text("a file, not a folder")
    return blocker / "locked"


def _wfdb_short(tmp):
    """A format-212 record whose .dat holds fewer samples than its header promises."""
    (tmp / "rec.hea").write_text("rec 2 360 1000\nrec.dat 212 200 11 1024 0 0 0 MLII\nrec.dat 212 200 11 1024 0 0 0 V5\n")
    (tmp / "rec.dat").write_bytes(bytes(3 * 100))   # 100 frames of 2 signals, not 1000
    (tmp / "rec.atr").write_bytes(b"\x00\x00")
    return str(tmp / "rec")



def _corrupt_config(run, tmp):
    r = _copy(run, tmp)
    (r / "config.yaml").write_text("encoder: {size: micro\n  depth: [\n")
    return r


def _list_config(run, tmp):
    r = _copy(run, tmp)
    (r / "config.yaml").write_text("- a\n- b\n")
    return r


def _corrupt_run_json(run, tmp):
    r = _copy(run, tmp)
    (r / "run.json").write_text("{not json")
    return r


def _all_checkpoints_corrupt(run, tmp):
    r = _copy(run, tmp)
    for ckpt in (r / "checkpoints").glob("step-*"):
        (ckpt / "model.safetensors").write_bytes(b"\x00" * 100)
    return r


# (id, argv(tmp, run) -> list[str], needles that the one error line must contain, needs a trained run)
CLI = [
    # recipes and overrides
    ("unknown-recipe", lambda t, r: ["pretrain", "no-such-recipe"], ["unknown recipe", "ijepa-digits"]),
    ("recipe-is-a-list", lambda t, r: ["pretrain", _csv(t, "l.yaml", "- a\n- b\n")], ["l.yaml", "mapping"]),
    ("recipe-is-empty", lambda t, r: ["pretrain", _csv(t, "e.yaml", "")], ["e.yaml", "empty"]),
    ("recipe-is-a-scalar", lambda t, r: ["pretrain", _csv(t, "s.yaml", "just words\n")], ["s.yaml", "mapping"]),
    ("recipe-bad-yaml", lambda t, r: ["pretrain", _csv(t, "b.yaml", "method: {name: jepa\n")], ["cannot read recipe"]),
    ("recipe-unknown-section", lambda t, r: ["pretrain", _csv(t, "u.yaml", "nonsense: {a: 1}\n")],
     ["unknown config section 'nonsense'"]),
    ("override-no-equals", lambda t, r: ["pretrain", "ijepa-digits", "train.lr"], ["cannot read override", "key=value"]),
    ("override-unknown-key", lambda t, r: ["pretrain", "ijepa-digits", "train.lrr=1"], ["train.lrr"]),
    ("override-unknown-section", lambda t, r: ["pretrain", "ijepa-digits", "trian.lr=1"], ["trian"]),
    ("override-lr-text", lambda t, r: ["pretrain", "ijepa-digits", "train.lr=fast"], ["train.lr", "number"]),
    ("override-lr-negative", lambda t, r: ["pretrain", "ijepa-digits", "train.lr=-1"], ["train.lr", "> 0"]),
    ("override-warmup", lambda t, r: ["pretrain", "ijepa-digits", "train.warmup=2"], ["train.warmup", "0 to 1"]),
    ("override-batch-zero", lambda t, r: ["pretrain", "ijepa-digits", "train.batch_size=0"], ["train.batch_size"]),
    ("override-depth-text", lambda t, r: ["pretrain", "ijepa-digits", "encoder.depth=x"], ["encoder.depth", "number"]),
    ("override-unclosed-list", lambda t, r: ["pretrain", "ijepa-digits", "data.size=[8"], ["data.size"]),
    ("override-normalize", lambda t, r: ["pretrain", "ijepa-digits", "data.normalize=zscore"], ["data.normalize"]),
    ("flag-max-epochs", lambda t, r: ["pretrain", "ijepa-digits", "--max-epochs", "0"], ["--max-epochs"]),
    ("flag-max-minutes", lambda t, r: ["pretrain", "ijepa-digits", "--max-minutes", "-1"], ["--max-minutes"]),
    ("flag-seed", lambda t, r: ["pretrain", "ijepa-digits", "--seed", "-5"], ["--seed"]),
    # data files
    ("data-missing", lambda t, r: ["pretrain", "ijepa-digits", "--data", str(t / "nope.npz")], ["does not exist"]),
    ("data-not-zip", lambda t, r: ["pretrain", "ijepa-digits", "--data", _csv(t, "x.npz", "text")], ["NumPy"]),
    ("data-empty-file", lambda t, r: ["pretrain", "ijepa-digits", "--data", _csv(t, "e.npz", "")], ["e.npz"]),
    ("data-nan", lambda t, r: ["pretrain", "ijepa-digits", "--data",
                               _npz(t, "n.npz", images=np.where(_images() > 0.99, np.nan, _images()))], ["NaN"]),
    ("data-inf", lambda t, r: ["pretrain", "ijepa-digits", "--data",
                               _npz(t, "i.npz", images=np.where(_images() > 0.99, np.inf, _images()))], ["inf"]),
    ("data-strings", lambda t, r: ["pretrain", "ijepa-digits", "--data",
                                   _npz(t, "s.npz", images=np.array([["a", "b"]] * 4))], ["dtype"]),
    ("data-complex", lambda t, r: ["pretrain", "ijepa-digits", "--data",
                                   _npz(t, "c.npz", images=_images().astype(np.complex64) * 1j), "train.batch_size=8"],
     ["complex"]),
    ("data-flat", lambda t, r: ["pretrain", "ijepa-digits", "--data", _npz(t, "f.npz", images=np.zeros((10, 64)))],
     ["shape (10, 64)"]),
    ("data-no-samples", lambda t, r: ["pretrain", "ijepa-digits", "--data", _npz(t, "z.npz", images=np.zeros((0, 8, 8)))],
     ["z.npz"]),
    ("data-labels-mismatch", lambda t, r: ["pretrain", "ijepa-digits", "--data",
                                           _npz(t, "m.npz", images=_images(), labels=np.arange(7))], ["label"]),
    ("data-too-big-for-float32", lambda t, r: ["pretrain", "ijepa-digits", "--data",
                                               _npz(t, "h.npz", images=_images(dtype=np.float64) * 1e300)],
     ["float32"]),
    # tables
    ("table-inf", lambda t, r: ["pretrain", "tjepa", "--data", _table(t, extra=lambda ls: ls[:5] + ["inf,1,x,0"] + ls[5:]),
                                "data.target=label"], ["column 'a'", "inf"]),
    ("table-no-target", lambda t, r: ["pretrain", "tjepa", "--data", _table(t), "data.target=nope"], ["nope"]),
    ("table-target-missing", lambda t, r: ["pretrain", "tjepa", "--data",
                                           _table(t, extra=lambda ls: ls + ["1,2,x,"]), "data.target=label"],
     ["missing values"]),
    ("table-all-nan-column", lambda t, r: ["pretrain", "tjepa", "--data",
                                           _csv(t, "an.csv", "a,b,label\n" + "".join(f"{i},,{i % 2}\n" for i in range(40))),
                                           "data.target=label", "train.batch_size=8"], ["column 'b'", "no values"]),
    ("table-bad-extension", lambda t, r: ["pretrain", "tjepa", "--data", _csv(t, "t.xlsx", "a,b\n1,2\n")], [".csv"]),
    # series and records
    ("series-shorter-than-two-patches", lambda t, r: ["pretrain", "tsjepa", "--data",
                                                      _csv(t, "s.csv", "".join(f"{i},{i + 1},{i}\n" for i in range(20))),
                                                      "tokenizer.patch_size=2", "train.batch_size=8", "train.max_steps=2"],
     ["3 steps", "two patches of 2 steps"]),
    ("series-nan-inside", lambda t, r: ["pretrain", "tsjepa", "--data",
                                        _npz(t, "sn.npz", series=np.where(np.arange(64) == 10, np.nan,
                                                                         np.ones((10, 64))))], ["NaN inside"]),
    ("series-complex", lambda t, r: ["pretrain", "tsjepa", "--data",
                                     _npz(t, "sc.npz", series=np.ones((10, 64), np.complex64))], ["omplex"]),
    ("wfdb-short-dat", lambda t, r: ["pretrain", "ecgjepa", "--data", _wfdb_short(t)], ["rec.dat", "header"]),
    # run directories
    ("out-is-a-file", lambda t, r: ["pretrain", "ijepa-digits", "--out", _csv(t, "f", "x")], ["is a file"]),
    ("out-non-empty-not-a-run", lambda t, r: ["pretrain", "ijepa-digits", "--out", os.path.dirname(_csv(t, "keep.txt", "x")),
                                                   "--no-progress", *TINY_CLI],
     ["not empty", "--out"]),
    ("out-already-a-run", lambda t, r: ["pretrain", "ijepa-digits", "--out", str(_copy(r, t))], ["already holds a run"]),
    ("resume-not-a-run", lambda t, r: ["pretrain", "--resume", str(t)], ["not a polyjepa run directory"]),
    ("resume-with-data", lambda t, r: ["pretrain", "--resume", str(_copy(r, t)), "--data", "digits"], ["--data"]),
    ("resume-with-out", lambda t, r: ["pretrain", "--resume", str(_copy(r, t)), "--out", str(t / "x")], ["--out"]),
    ("resume-unsafe-override", lambda t, r: ["pretrain", "--resume", str(_copy(r, t)), "encoder.depth=3"],
     ["encoder.depth", "train.lr"]),
    ("resume-bad-safe-override", lambda t, r: ["pretrain", "--resume", str(_copy(r, t)), "train.lr=-3"], ["train.lr"]),
    ("resume-other-seed", lambda t, r: ["pretrain", "--resume", str(_copy(r, t)), "--seed", "9"], ["seed"]),
    ("resume-other-recipe", lambda t, r: ["pretrain", "tjepa", "--resume", str(_copy(r, t))], ["tjepa"]),
    ("resume-corrupt-config", lambda t, r: ["pretrain", "--resume", str(_corrupt_config(r, t))], ["config.yaml"]),
    ("resume-finished-no-more-steps", lambda t, r: ["pretrain", "--resume", str(_copy(r, t)), "train.max_steps=2"],
     ["train.max_steps", "already"]),
    ("probe-not-a-run", lambda t, r: ["probe", str(t)], ["not a polyjepa run directory"]),
    ("probe-corrupt-config", lambda t, r: ["probe", str(_corrupt_config(r, t))], ["config.yaml"]),
    ("probe-config-is-a-list", lambda t, r: ["probe", str(_list_config(r, t))], ["config.yaml"]),
    ("probe-corrupt-run-json", lambda t, r: ["probe", str(_corrupt_run_json(r, t))], ["run.json"]),
    ("probe-all-checkpoints-corrupt", lambda t, r: ["probe", str(_all_checkpoints_corrupt(r, t))], ["corrupt"]),
    ("probe-wrong-shape-data", lambda t, r: ["probe", str(r), "--data", _npz(t, "w.npz", images=_images().reshape(40, 4, 16),
                                                                           labels=np.arange(40) % 2)], ["shape"]),
    ("embed-out-not-npy", lambda t, r: ["embed", str(r), "--data", "digits", "--out", str(t / "e.txt")], [".npy"]),
    ("embed-out-unwritable", lambda t, r: ["embed", str(r), "--data", "digits", "--out",
                                           str(_unwritable_dir(t) / "sub" / "e.npy")], ["cannot write", "e.npy"]),
    ("embed-wrong-shape", lambda t, r: ["embed", str(r), "--data", _npz(t, "w.npz", images=np.zeros((5, 16, 16))),
                                        "--out", str(t / "e.npy")], ["trained on (1, 8, 8)"]),
    ("select-json-unwritable", lambda t, r: ["select", str(r), "--json", str(_unwritable_dir(t) / "sub" / "s.json")],
     ["cannot write", "s.json"]),
    ("select-not-a-run", lambda t, r: ["select", str(t)], ["not a run directory"]),
]


@pytest.mark.parametrize("case", CLI, ids=[c[0] for c in CLI])
def test_cli_bad_input_is_one_line_exit_2(case, tmp_path, capsys, request):
    name, argv, needles = case
    run = request.getfixturevalue("trained_run") if any(
        s in name for s in ("resume-", "probe-", "embed-", "select-json", "out-already")) else None
    code = main(argv(tmp_path, run))
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("polyjepa: warning:")]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("polyjepa: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------------------------
# The Python API


def _ts(**kw):
    from polyjepa.timeseries import TimeSeriesEmbedder

    return TimeSeriesEmbedder(**{"max_steps": 2, "batch_size": 4, "overrides": ("encoder.depth=1",), **kw})


def _tab(**kw):
    from polyjepa.tabular.embedder import TabularEmbedder

    return TabularEmbedder(**{"max_steps": 2, "min_steps": 0, "dim": 8, "depth": 1, "batch_size": 8, **kw})


def _fitted_ts():
    return _ts().fit(np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32))


def _frame():
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "c": list("xyz") * 10})


def _fitted_tab():
    return _tab().fit(_frame())


def _load_recipe(*overrides, recipe="ijepa-digits"):
    from polyjepa.config import load_recipe

    return load_recipe(recipe, list(overrides))


def _pretrain(**kw):
    from polyjepa.runner import pretrain

    return pretrain(**{"progress": False, "echo": lambda *_: None, **kw})


SERIES = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)

# (id, call, needles that the ValueError's message must contain)
API = [
    ("recipe-depth-text", lambda t: _load_recipe("encoder.depth=x"), ["encoder.depth", "number"]),
    ("recipe-masker-key", lambda t: _load_recipe("masker.n_target=3"), ["masker.n_target"]),
    ("recipe-list-file", lambda t: _load_recipe(recipe=_csv(t, "l.yaml", "- 1\n")), ["mapping"]),
    ("recipe-empty-file", lambda t: _load_recipe(recipe=_csv(t, "e.yaml", "")), ["empty"]),
    ("pretrain-no-recipe", lambda t: _pretrain(), ["recipe"]),
    ("pretrain-data-list", lambda t: _pretrain(recipe="ijepa-digits", data=[1, 2, 3]), ["DataFrame"]),
    ("pretrain-resume-unsafe", lambda t: _pretrain(resume=str(t), overrides=["encoder.depth=3"]),
     ["encoder.depth", "train.lr"]),
    ("ts-max-steps-negative", lambda t: _ts(max_steps=-3).fit(SERIES), ["max_steps", "-3"]),
    ("ts-batch-size-zero", lambda t: _ts(batch_size=0).fit(SERIES), ["batch_size"]),
    ("ts-4d", lambda t: _ts().fit(np.zeros((4, 2, 3, 64))), ["shape (4, 2, 3, 64)"]),
    ("ts-ragged", lambda t: _ts().fit([np.zeros(64), np.zeros(50)]), ["ragged"]),
    ("ts-nan-inside", lambda t: _ts().fit(np.where(np.arange(64) == 5, np.nan, SERIES)), ["NaN inside"]),
    ("ts-inf", lambda t: _ts().fit(np.where(np.arange(64) == 5, np.inf, SERIES)), ["inf"]),
    ("ts-complex", lambda t: _ts().fit(SERIES.astype(np.complex64)), ["omplex"]),
    ("ts-strings", lambda t: _ts().fit(np.array([["a"] * 64] * 4)), ["dtype"]),
    ("ts-one-series", lambda t: _ts().fit(SERIES[:1]), ["1 sample"]),
    ("ts-length-1", lambda t: _ts().fit(SERIES[:, :1]), ["at least 2 steps"]),
    ("ts-shorter-than-two-patches", lambda t: _ts(patch_size=8).fit(SERIES[:, :12]), ["two patches of 8 steps"]),
    ("ts-unknown-recipe", lambda t: _ts(recipe="nope").fit(SERIES), ["unknown recipe"]),
    ("ts-transform-length", lambda t: _fitted_ts().transform(SERIES[:, :32]), ["64"]),
    ("ts-transform-channels", lambda t: _fitted_ts().transform(np.zeros((2, 3, 64))), ["channels"]),
    ("tab-3d", lambda t: _tab().fit(np.zeros((5, 3, 2))), ["2-D"]),
    ("tab-ragged", lambda t: _tab().fit([[1.0, 2.0], [3.0]]), ["ragged"]),
    ("tab-all-nan-column", lambda t: _tab().fit(_frame().assign(d=np.nan)), ["column 'd'", "no values"]),
    ("tab-fewer-columns", lambda t: _fitted_tab().transform(_frame()[["a", "b"]]), ["missing: - c"]),
    ("tab-renamed-columns", lambda t: _fitted_tab().transform(_frame().rename(columns={"a": "q"})), ["q"]),
    ("tab-one-row", lambda t: _tab().fit(_frame().iloc[:1]), ["1 sample"]),
    ("tab-one-column", lambda t: _tab().fit(_frame()[["a"]]), ["1 feature"]),
    ("tab-inf", lambda t: _tab().fit(_frame().assign(a=np.inf)), ["inf"]),
    ("tab-complex", lambda t: _tab().fit(_frame().assign(a=1j)), ["omplex"]),
    ("tab-bad-pool", lambda t: _tab(pool="max").fit(_frame()), ["pool"]),
    ("tab-max-steps-negative", lambda t: _tab(max_steps=-1).fit(_frame()), ["max_steps"]),
    ("tab-dim-zero", lambda t: _tab(dim=0).fit(_frame()), ["dim"]),
    ("tab-series", lambda t: _tab().fit(_frame()["a"]), ["Series"]),
    ("tab-text-in-numeric", lambda t: _fitted_tab().transform(_frame().assign(a="text")), ["column 'a'"]),
    ("pad-series-empty", lambda t: __import__("polyjepa.timeseries", fromlist=["pad_series"]).pad_series([]),
     ["non-empty"]),
]


@pytest.mark.parametrize("case", API, ids=[c[0] for c in API])
def test_api_bad_input_raises_a_value_error_naming_it(case, tmp_path):
    name, call, needles = case
    with pytest.raises(ValueError) as info:
        call(tmp_path)
    message = str(info.value)
    assert "\n" not in message.strip(), message
    for needle in needles:
        assert needle in message, message


def test_the_corpus_is_large():
    assert len(CLI) + len(API) >= 60
