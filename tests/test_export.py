"""Saved encoders (safetensors + JSON) and exported graphs (ONNX, torch.export) against `polyjepa embed`."""
import json
import pickle
import shutil
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest
import torch

import polyjepa as pj
from polyjepa.cli import main
from polyjepa.errors import UserError
from polyjepa.export.graph import export_encoder, run_onnx

from .conftest import TINY

QUIET = dict(progress=False, echo=lambda *a: None)
needs_onnx = pytest.mark.skipif(any(find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
                                reason="ONNX export needs pip install 'polyjepa[export]'")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny I-JEPA run on digits and a .npy of new images (uint8 pixels, as a user's file holds them)."""
    root = tmp_path_factory.mktemp("image")
    torch.set_num_threads(2)
    pj.pretrain("ijepa-digits", out=str(root / "run"), overrides=TINY + ["eval.baselines=false"], **QUIET)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (37, 8, 8)).astype(np.uint8)
    np.save(root / "new.npy", images)
    return root / "run", root / "new.npy", images


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    """A tiny TS-JEPA run on 2-channel series of unequal length (NaN-padded at the end)."""
    root = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 2, 64)).astype(np.float32)
    y = np.arange(96) % 3
    x[y == 1] += np.sin(np.linspace(0, 6, 64)).astype(np.float32)
    for i in range(0, 96, 4):
        x[i, :, 40 + i % 20:] = np.nan  # shorter series: padding the key-padding mask must hide
    np.savez(root / "series.npz", x=x, y=y)
    over = ["encoder.depth=1", "predictor.depth=1", "predictor.dim=32", "predictor.heads=2", "train.max_steps=4",
            "train.batch_size=32", "eval.monitor_samples=64", "train.monitor_every=0", "eval.baselines=false"]
    pj.pretrain("tsjepa", data=str(root / "series.npz"), out=str(root / "run"), overrides=over, **QUIET)
    return root / "run", root / "series.npz", x


def test_saved_encoder_embeds_exactly_as_polyjepa_embed(image_run, tmp_path, capsys):
    run, new, images = image_run
    assert main(["embed", str(run), "--data", str(new), "--out", str(tmp_path / "cli.npy")]) == 0
    want = np.load(tmp_path / "cli.npy")
    saved = pj.save_pretrained(run, tmp_path / "enc")
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    enc = pj.from_pretrained(saved)
    assert enc.dim == want.shape[1] and enc.input_shape == (1, 8, 8)
    assert repr(enc) == (f"PretrainedEncoder(recipe='ijepa-digits', input_shape=(1, 8, 8), pool={enc.pool!r}, "
                         f"layers={enc.layers}, dim={enc.dim})")
    assert np.array_equal(enc.embed(str(new)), want)            # the file
    assert np.array_equal(enc.embed(images), want)              # the same pixels as an array
    assert np.array_equal(enc.embed(torch.from_numpy(images)), want)
    # forward (what exports) takes the loader's output and standardises it itself
    with torch.no_grad():
        fwd = enc(torch.from_numpy(enc.load(images))).numpy()
    assert np.abs(fwd - want).max() <= 1e-5 * np.abs(want).max()
    # nothing of the training machine's paths in the shared config
    assert str(run) not in (saved / "config.json").read_text()


def test_a_saved_encoder_reloads_in_a_fresh_process_without_the_run(image_run, tmp_path, capsys):
    run, new, _ = image_run
    want = pj.embed_run(str(run), str(new))
    assert main(["export", str(run), "--format", "pretrained", "--out", str(tmp_path / "enc")]) == 0
    assert "from_pretrained" in capsys.readouterr().out
    shared = tmp_path / "elsewhere" / "enc"
    shutil.copytree(tmp_path / "enc", shared)
    code = ("import sys, numpy as np, polyjepa as pj; enc = pj.from_pretrained(sys.argv[1]); "
            "np.save(sys.argv[3], enc.embed(sys.argv[2])); "
            "assert not any(m.startswith('lightning') for m in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(shared), str(new), str(tmp_path / "fresh.npy")],
                         cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(np.load(tmp_path / "fresh.npy"), want)


@needs_onnx
def test_onnx_export_of_the_image_encoder_matches_torch(image_run, tmp_path, capsys):
    run, new, images = image_run
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "enc.onnx")]) == 0
    assert "matches torch" in capsys.readouterr().out
    side = json.loads((tmp_path / "enc.onnx.json").read_text())
    assert side["graph"]["input"]["shape"] == ["batch", 1, 8, 8] and side["mean"] is not None
    enc = pj.PretrainedEncoder.from_run(run)
    want = enc.embed(images)
    for x in (enc.load(images), enc.load(images)[:1]):  # any batch size, down to one sample
        got = run_onnx(tmp_path / "enc.onnx", x)
        assert got.shape == (len(x), enc.dim)
        assert np.abs(got - want[:len(x)]).max() <= 1e-5 * np.abs(want).max()


def test_torch_export_program_matches_torch(image_run, tmp_path):
    run, _, images = image_run
    r = export_encoder(run, tmp_path / "enc.pt2", format="torch")
    assert r["max_abs_diff"] == 0.0 and r["config"] == str(tmp_path / "enc.pt2.json")
    enc = pj.PretrainedEncoder.from_run(run)
    program = torch.export.load(tmp_path / "enc.pt2")
    got = program.module()(torch.from_numpy(enc.load(images))).detach().numpy()
    want = enc.embed(images)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@needs_onnx
def test_onnx_export_of_a_series_encoder_with_padding_matches_torch(series_run, tmp_path):
    run, data, x = series_run
    saved = pj.save_pretrained(run, tmp_path / "enc")
    export_encoder(saved, tmp_path / "ts.onnx")        # from the saved folder, not the run
    enc = pj.from_pretrained(saved)
    assert np.array_equal(enc.embed(str(data)), pj.embed_run(str(run), str(data)))
    assert np.array_equal(enc.embed(x), enc.embed(str(data)))
    want = enc.embed(x)
    loaded = enc.load(x)
    assert np.isnan(loaded).any()                       # padded rows go through the graph's mask
    got = run_onnx(tmp_path / "ts.onnx", loaded)
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_a_table_encoder_takes_an_array_of_its_columns(tmp_path):
    pytest.importorskip("pandas")
    over = ["encoder.dim=16", "encoder.depth=1", "train.batch_size=32", "train.max_steps=3", "train.monitor_every=0",
            "eval.monitor_samples=64", "eval.baselines=false"]
    pj.pretrain("tjepa", out=str(tmp_path / "run"), overrides=over, **QUIET)
    enc = pj.from_pretrained(pj.save_pretrained(tmp_path / "run", tmp_path / "enc"))
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").iloc[:20]
    want = enc.embed(frame)
    assert np.array_equal(want, pj.embed_run(str(tmp_path / "run"), frame))
    assert np.array_equal(enc.embed(frame.to_numpy()), want)
    with pytest.raises(UserError, match="training columns in order"):
        enc.embed(frame.to_numpy()[:, :5])


# ---- bad input: one line naming the problem and the fix; nothing unpickles


def test_a_folder_that_is_not_a_saved_encoder(image_run, tmp_path):
    run = image_run[0]
    with pytest.raises(UserError, match="not a saved polyjepa encoder .*no config.json"):
        pj.from_pretrained(tmp_path)
    with pytest.raises(UserError, match="it is a run directory.*save_pretrained"):
        pj.from_pretrained(run)
    with pytest.raises(UserError, match="neither an existing folder nor a Hub repository id"):
        pj.from_pretrained(tmp_path / "missing" / "deeper")


def _saved(image_run, tmp_path):
    return pj.save_pretrained(image_run[0], tmp_path / "enc")


def test_missing_or_corrupt_weights(image_run, tmp_path):
    saved = _saved(image_run, tmp_path)
    (saved / "model.safetensors").write_bytes(b"\x00" * 5 + b"not safetensors")
    with pytest.raises(UserError, match="corrupt or not safetensors"):
        pj.from_pretrained(saved)
    (saved / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no model.safetensors"):
        pj.from_pretrained(saved)


class _Trap:
    def __reduce__(self):
        return (open, (str(_Trap.path), "w"))


def test_a_pickle_in_place_of_the_weights_is_never_unpickled(image_run, tmp_path):
    saved = _saved(image_run, tmp_path)
    _Trap.path = tmp_path / "unpickled"
    (saved / "model.safetensors").write_bytes(pickle.dumps({"w": _Trap()}))
    with pytest.raises(UserError, match="cannot read"):
        pj.from_pretrained(saved)
    assert not _Trap.path.exists()


def test_weights_of_another_encoder(image_run, tmp_path):
    saved = _saved(image_run, tmp_path)
    config = json.loads((saved / "config.json").read_text())
    config["recipe"]["encoder"]["depth"] = 3
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="does not fit the encoder.*missing"):
        pj.from_pretrained(saved)


def test_config_of_a_newer_or_unknown_format(image_run, tmp_path):
    saved = _saved(image_run, tmp_path)
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "format": "polyjepa-encoder/2"}))
    with pytest.raises(UserError, match="cannot read .*upgrade polyjepa"):
        pj.from_pretrained(saved)
    (saved / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UserError, match="not a polyjepa encoder config"):
        pj.from_pretrained(saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read .*config.json"):
        pj.from_pretrained(saved)


def _one_line_error(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("polyjepa: error: ") and needle in err, err


def test_export_bad_input_is_one_line(image_run, tmp_path, capsys):
    run = str(image_run[0])
    _one_line_error(capsys, ["export", run, "--format", "tflite", "--out", str(tmp_path / "x")],
                    "unknown export format 'tflite': use one of onnx, torch, pretrained")
    _one_line_error(capsys, ["export", str(tmp_path), "--out", str(tmp_path / "x.onnx")],
                    "neither a run directory")
    _one_line_error(capsys, ["export", run, "--out", str(tmp_path / "x.json")], "ends in .json")


def test_an_encoder_that_cannot_become_a_graph_says_so_in_one_line(image_run, tmp_path, monkeypatch):
    enc = pj.PretrainedEncoder.from_run(image_run[0])

    def data_dependent(x, **kw):  # control flow on values: torch.export cannot trace it
        return x.flatten(1) if bool((x > 0).all()) else -x.flatten(1)

    monkeypatch.setattr(enc.encoder, "embed", data_dependent)
    with pytest.raises(UserError, match="cannot be exported as a graph .*save_pretrained"):
        export_encoder(enc, tmp_path / "x.pt2", format="torch")
    assert not (tmp_path / "x.pt2").exists()


# ---- the Hugging Face Hub, offline: its download and upload functions pointed at a local folder


def test_push_to_hub_and_load_by_id_offline(image_run, tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    remote = tmp_path / "hub"
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create", repo_id, kw.get("private")))
        (remote / repo_id).mkdir(parents=True, exist_ok=True)
        return f"https://hub.example/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, **kw):
        calls.append(("upload", repo_id, sorted(allow_patterns)))
        shutil.copytree(folder_path, remote / repo_id, dirs_exist_ok=True)

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kw):
        calls.append(("download", repo_id, revision))
        if not (remote / repo_id).exists():
            raise OSError(f"404 Repository Not Found: {repo_id}")
        return str(remote / repo_id)

    monkeypatch.setattr(hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    run, new, _ = image_run
    enc = pj.PretrainedEncoder.from_run(run)
    assert enc.push_to_hub("alice/tiny-digits", private=True) == "https://hub.example/alice/tiny-digits"
    again = pj.from_pretrained("alice/tiny-digits", revision="main")
    assert np.array_equal(again.embed(str(new)), enc.embed(str(new)))
    assert calls[0] == ("create", "alice/tiny-digits", True) and calls[-1] == ("download", "alice/tiny-digits", "main")
    with pytest.raises(UserError, match="cannot download 'alice/other'.*404 Repository Not Found"):
        pj.from_pretrained("alice/other")
    with pytest.raises(UserError, match="not a Hub repository id"):
        enc.push_to_hub("no-owner")


def test_without_huggingface_hub_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(UserError, match=r"pip install 'polyjepa\[hub\]'"):
        pj.from_pretrained("alice/tiny-digits")
