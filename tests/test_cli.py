"""The command line: happy path and bad input (one line, exit code 2, no traceback)."""
import json
import subprocess
import sys

import numpy as np

from polyjepa.cli import main

TINY_CLI = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
            "train.batch_size=32", "train.max_steps=4", "train.monitor_every=0", "eval.monitor_samples=64"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "polyjepa", *args], capture_output=True, text=True, timeout=300)


def assert_clean_error(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("polyjepa: error: ")
    for needle in needles:
        assert needle in err, err


def test_recipes_lists_one_line_each():
    out = run_cli("recipes")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("ijepa-digits ") for line in lines)
    assert all(len(line.split(None, 1)) == 2 for line in lines)
    assert "cannot read this recipe" not in out.stdout  # every bundled recipe parses


def test_a_recipe_whose_yaml_does_not_parse_is_one_line(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: a colon: in a value\nmethod: {name: jepa\n")
    assert_clean_error(capsys, ["pretrain", str(bad)], "cannot read recipe", "fix the YAML")
    import polyjepa.config as config

    (tmp_path / "good.yaml").write_text("description: fine\n")
    monkeypatch.setattr(config, "recipe_dir", lambda: tmp_path)  # a broken bundled recipe is listed, not fatal
    assert dict(config.list_recipes())["good"] == "fine"
    assert dict(config.list_recipes())["bad"].startswith("(cannot read this recipe")


def test_recipes_and_probe_do_not_import_the_training_engine():
    code = ("import sys; from polyjepa.cli import main; main(['recipes']); "
            "assert not any(m.startswith(('lightning', 'lightning_fabric')) for m in sys.modules), 'engine imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_pretrain_probe_embed_on_an_npz(tmp_path, image_npz, capsys, monkeypatch):
    run = tmp_path / "run"
    out = run_cli("pretrain", "ijepa-digits", "--data", str(image_npz), "--out", str(run), "--no-progress",
                  "tokenizer.patch_size=4", *TINY_CLI)
    assert out.returncode == 0, out.stderr
    assert "pretrained encoder" in out.stdout and "random-init encoder" in out.stdout and "raw input" in out.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_train"] + summary["n_test"] == 150
    out = run_cli("probe", str(run))
    assert out.returncode == 0 and "pretrained encoder" in out.stdout, out.stderr
    emb_path = tmp_path / "emb.npy"
    out = run_cli("embed", str(run), "--data", str(image_npz), "--out", str(emb_path))
    assert out.returncode == 0, out.stderr
    emb = np.load(emb_path)
    assert emb.shape == (150, summary["embedding"]["dim"]) and np.isfinite(emb).all()
    # probing and embedding are deterministic and use the trained encoder (not the random init)
    from polyjepa.runner import embed_run

    assert np.allclose(embed_run(str(run), str(image_npz)), emb, atol=1e-5)
    # a run trained on a relative path, probed from another folder: one line naming --data
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace(str(image_npz), image_npz.name))
    monkeypatch.chdir(tmp_path / "run")
    assert_clean_error(capsys, ["probe", str(run)], "the run's data 'bars.npz' is not found from", "--data PATH")
    assert_clean_error(capsys, ["select", str(run), "--checkpoints"], "is not found from", "--data PATH")
    monkeypatch.chdir(tmp_path)
    assert main(["probe", str(run)]) == 0


def test_bad_inputs(tmp_path, capsys, image_npz):
    assert_clean_error(capsys, ["pretrain", "no-such-recipe"], "unknown recipe", "ijepa-digits")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "train.lrr=1"], "unknown config key 'train.lrr'", "lr")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "masker.n_target=3"], "masker.n_target", "n_targets")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "train.lr=fast"], "train.lr", "number")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "missing.npz")], "does not exist")
    np.savez(tmp_path / "flat.npz", images=np.zeros((10, 64)), labels=np.zeros(10))
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "flat.npz")], "shape (10, 64)")
    nan = np.random.rand(20, 8, 8).astype(np.float32)
    nan[3, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", images=nan, labels=np.arange(20) % 2)
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "nan.npz")], "NaN")
    np.savez(tmp_path / "strings.npz", images=np.array([["a", "b"]] * 4), labels=np.zeros(4))
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "strings.npz")], "dtype")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "broken.npz")],
                       "is not a NumPy file", "numpy.savez")
    np.savez(tmp_path / "cut.npz", images=np.zeros((4, 8, 8)))       # a real archive, truncated
    (tmp_path / "cut.npz").write_bytes((tmp_path / "cut.npz").read_bytes()[:200])
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "cut.npz")], "cannot read")
    np.save(tmp_path / "obj.npy", np.array([np.zeros(3), np.zeros(4)], dtype=object), allow_pickle=True)
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "obj.npy")], "does not unpickle")
    np.savez(tmp_path / "odd.npz", images=np.random.rand(40, 10, 10).astype(np.float32))
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--data", str(tmp_path / "odd.npz"),
                                "tokenizer.patch_size=4"], "not a multiple of patch size")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "train.batch_size=0"], "train.batch_size", ">= 1")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "train.warmup=2"], "train.warmup", "0 to 1")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "train.lr=-1"], "train.lr", "> 0")
    # keys whose default is None (max_steps, max_minutes, threads, max_samples) are numbers too
    for bad in ("train.max_steps=abc", "train.max_minutes=x", "train.threads=abc", "data.max_samples=abc"):
        assert_clean_error(capsys, ["pretrain", "ijepa-digits", bad], bad.split("=")[0], "number")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "data.size=[8"], "cannot apply overrides", "data.size")
    # a part's or a loader's option of the wrong type is named with what it takes, before Python trips on it
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "masker.n_targets=abc"],
                       "masker.n_targets='abc' must be a number (default 4)")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "masker.target_scale=[a,b]"],
                       "masker.target_scale", "must be a list of numbers")
    assert_clean_error(capsys, ["pretrain", "pointjepa", "data.points=many"], "data.points='many' must be a number")
    # sizes and ranges no part used to check (they ended in IndexError, ZeroDivisionError or torch errors)
    for bad, needle in (("encoder.depth=0", "depth must be a positive integer"),
                        ("encoder.heads=0", "heads must be a positive integer"),
                        ("encoder.dim=-8", "dim must be a positive integer"),
                        ("tokenizer.patch_size=0", "patch_size must be a positive integer"),
                        ("predictor.depth=0", "depth must be a positive integer"),
                        ("target.momentum=[1.5,1.0]", "momentum must be (start, end) with both in [0, 1]"),
                        ("train.weight_decay=abc", "list of 2 numbers"),
                        ("data.max_samples=5", "cannot take data.max_samples=5"),
                        ("data.test_size=-1", "data.test_size"), ("eval.knn_k=0", "eval.knn_k"),
                        ("eval.pool=grid:0", "regions per side")):
        assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--out", str(tmp_path / "b3"), bad], needle)
        assert not (tmp_path / "b3").exists()
    # a key of a part the recipe does not have would change nothing: refused, not silently ignored
    assert_clean_error(capsys, ["pretrain", "vicreg-mnist", "masker.n_targets=2"], "has no masker section")
    assert_clean_error(capsys, ["pretrain", "vicreg-mnist", "trian.lr=1"], "unknown config section 'trian'")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--max-minutes", "0"], "--max-minutes")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--seed", "-1"], "--seed")
    (tmp_path / "a_file").write_text("x")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--out", str(tmp_path / "a_file")], "is a file")
    # VCR (and VICReg, two-clip mixtures, ...) need two samples in a batch: refused before the run exists
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--out", str(tmp_path / "b1"), "train.batch_size=1"],
                       "train.batch_size=1", "set train.batch_size to 2 or more")
    assert not (tmp_path / "b1").exists()
    for bad, needle in (("eval.pool=bogus", "unknown pool 'bogus'"), ("eval.layers=0", "at least 1 layer")):
        assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--out", str(tmp_path / "b2"), bad], needle)
        assert not (tmp_path / "b2").exists()
    assert_clean_error(capsys, ["probe", str(tmp_path)], "not a polyjepa run directory")
    # the output name is checked before anything is read or computed (tmp_path is no run directory)
    assert_clean_error(capsys, ["embed", str(tmp_path), "--data", "digits", "--out", str(tmp_path / "e.txt")], ".npy")
    assert_clean_error(capsys, ["pretrain", "--resume", str(tmp_path)], "not a polyjepa run directory")


def test_pretrain_on_unlabelled_data_reports_rankme_only(tmp_path, capsys):
    np.savez(tmp_path / "nolab.npz", images=np.random.default_rng(0).random((200, 8, 8), dtype=np.float32))
    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--data", str(tmp_path / "nolab.npz"), "--out", str(run),
                 "--no-progress", *TINY_CLI]) == 0
    s = json.loads((run / "summary.json").read_text())
    assert s["n_test"] == 0 and s["probe"] == {} and np.isfinite(s["rankme"])
    capsys.readouterr()
    assert_clean_error(capsys, ["probe", str(run)], "no labels")
    emb = tmp_path / "e.npy"
    assert main(["embed", str(run), "--data", str(tmp_path / "nolab.npz"), "--out", str(emb)]) == 0
    assert np.load(emb).shape[0] == 200


def test_images_with_a_continuous_target_get_regression_probes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((200, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "reg.npz", images=x, y=x.mean((1, 2)) * 10)   # brightness, not whole numbers
    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--data", str(tmp_path / "reg.npz"), "--out", str(run),
                 "--no-progress", *TINY_CLI]) == 0
    s = json.loads((run / "summary.json").read_text())
    assert set(s["probe"]["linear"]) == {"r2", "rmse", "alpha"}
    assert s["baselines"]["raw"]["linear"]["r2"] > 0.95   # the mean pixel is linear in the raw input


def test_corrupt_checkpoint_and_shape_mismatch(tmp_path, capsys, image_npz):
    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--out", str(run), "--no-progress", *TINY_CLI,
                 "data.max_samples=300"]) == 0
    capsys.readouterr()
    assert_clean_error(capsys, ["embed", str(run), "--data", str(image_npz), "--out", str(tmp_path / "e.npy")],
                       "trained on (1, 8, 8)")
    assert_clean_error(capsys, ["pretrain", "ijepa-digits", "--out", str(run)], "already holds a run", "--resume")
    # a resume runs in its own directory with its own seed: a different --out or --seed is refused, not ignored
    assert_clean_error(capsys, ["pretrain", "--resume", str(run), "--out", str(tmp_path / "else")], "--out")
    assert_clean_error(capsys, ["pretrain", "--resume", str(run), "--seed", "7"], "seed 0, not 7", "drop --seed")
    for ckpt in (run / "checkpoints").glob("step-*"):
        (ckpt / "model.safetensors").write_bytes(b"\x00" * 100)
    assert_clean_error(capsys, ["probe", str(run)], "corrupt")
