"""No dead ends: checksummed checkpoints with fall-back, divergence then a resume with a lower learning rate,
runs stopped before their first checkpoint, and data at the edge of the number range."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from polyjepa.cli import main
from polyjepa.errors import PolyjepaWarning, UserError
from polyjepa.train import checkpoint
from polyjepa.train.checkpoint import load_checkpoint, save_checkpoint

TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.max_steps=4", "train.monitor_every=0", "train.checkpoint_every=2",
        "eval.monitor_samples=64", "data.max_samples=300", "train.threads=1", "eval.baselines=false"]


def _pretrain(**kw):
    from polyjepa.runner import pretrain

    return pretrain(**{"progress": False, "echo": lambda *_: None, **kw})


def _flip_a_tensor_byte(path: Path) -> None:
    """Flip one bit inside the tensor data of a safetensors file; its header stays valid."""
    raw = bytearray(path.read_bytes())
    header = int.from_bytes(raw[:8], "little")
    raw[8 + header + 5] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_bit_flip_inside_a_tensor_fails_the_checksum(tmp_path):
    m = torch.nn.Linear(8, 8)
    path = save_checkpoint(tmp_path, 1, m.state_dict(), None, {})
    assert set(json.loads((path / "state.json").read_text())["sha256"]) == {"model.safetensors"}
    _flip_a_tensor_byte(path / "model.safetensors")
    from safetensors.torch import load_file

    load_file(path / "model.safetensors")  # still a valid file: only the checksum can tell
    with pytest.raises(UserError, match="does not match its SHA-256 checksum"):
        load_checkpoint(path)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_older_one(tmp_path):
    m = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(m.parameters())
    save_checkpoint(tmp_path, 1, m.state_dict(), opt.state_dict(), {})
    older = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        m.weight.add_(1.0)
    newest = save_checkpoint(tmp_path, 2, m.state_dict(), opt.state_dict(), {})
    _flip_a_tensor_byte(newest / "model.safetensors")
    with pytest.warns(PolyjepaWarning, match=r"step-0000002 is corrupt.*older intact checkpoint .*step-0000001"):
        path, state, _, meta = checkpoint.load_latest_checkpoint(tmp_path)
    assert path.name == "step-0000001" and meta["step"] == 1
    assert all(torch.equal(state[k], older[k]) for k in older)
    (path / "model.safetensors").write_bytes(b"\x00" * 64)  # every checkpoint corrupt: the newest one's error
    with pytest.raises(UserError, match="step-0000002 is corrupt"):
        checkpoint.load_latest_checkpoint(tmp_path)


def test_a_diverged_run_warns_and_resumes_with_a_lower_learning_rate(tmp_path, capsys):
    run = tmp_path / "run"
    from polyjepa.train.loop import TrainingDiverged

    # The peak learning rate is absurd: the loss becomes NaN on the third step.
    wild = ["train.max_steps=8", "train.lr=1e12", "train.start_lr=1e-3", "train.warmup=0.5", "train.grad_clip=null",
            "train.checkpoint_every=1"]
    with pytest.raises(TrainingDiverged, match="resume with a lower train.lr") as info:
        _pretrain(recipe="ijepa-digits", out=str(run), overrides=TINY + wild)
    step = info.value.step
    marker = json.loads((run / "diverged.json").read_text())
    assert marker["step"] == step
    # the checkpoint whose weights gave the NaN is dropped: the newest left is from before it
    assert max(int(p.name[5:]) for p in (run / "checkpoints").glob("step-*")) < step
    with pytest.warns(PolyjepaWarning, match=rf"the run .*run diverged at step {step} .* train.lr=1e-4") as seen:
        assert main(["probe", str(run)]) == 0
    import warnings

    line = warnings.formatwarning(seen[0].message, seen[0].category, "x.py", 1)  # as the command line prints it
    assert line.startswith(f"polyjepa: warning: the run {run} diverged") and line.count("\n") == 1
    # the advice can be followed: --resume takes a lower learning rate (and a new length), and records them
    assert main(["pretrain", "--resume", str(run), "train.lr=1e-3", "train.max_steps=10", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 10 and np.isfinite(summary["final_loss"])
    info = json.loads((run / "run.json").read_text())
    assert info["resumes"][-1]["overrides"] == ["train.lr=1e-3", "train.max_steps=10"]
    assert info["resumes"][-1]["from_checkpoint"] == f"step-{step - 1:07d}"
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.train.lr == 1e-3 and cfg.train.max_steps == 10 and cfg.encoder.depth == 2
    assert not (run / "diverged.json").exists()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", PolyjepaWarning)
        assert main(["probe", str(run)]) == 0


def test_a_run_stopped_before_its_first_checkpoint_restarts(tmp_path, capsys):
    run = tmp_path / "run"
    _pretrain(recipe="ijepa-digits", out=str(run), overrides=TINY)
    reference = json.loads((run / "summary.json").read_text())
    # what a kill before the first checkpoint leaves: config.yaml, run.json, a metrics.csv, no checkpoint
    for p in list(run.iterdir()):
        if p.name not in ("config.yaml", "run.json", "metrics.csv"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    stopped = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["pretrain", "--resume", str(run), "--no-progress"]) == 0           # --resume starts it over
    assert "before its first checkpoint: starting it over" in capsys.readouterr().out
    again = json.loads((run / "summary.json").read_text())
    assert again["steps"] == 4 and again["final_loss"] == reference["final_loss"]
    shutil.rmtree(run)
    run.mkdir()
    for name, data in stopped.items():
        (run / name).write_bytes(data)
    with pytest.warns(PolyjepaWarning, match="stopped before its first checkpoint: starting it over in place"):
        _pretrain(recipe="ijepa-digits", out=str(run), overrides=TINY)           # a new run into the same --out
    assert json.loads((run / "summary.json").read_text())["final_loss"] == reference["final_loss"]


def test_images_near_the_float32_limit_train(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((120, 8, 8)) * 1e37).astype(np.float32)
    x[:, :, :4] += 1e37 * (np.arange(120) % 2)[:, None, None]
    np.savez(tmp_path / "huge.npz", images=x, labels=np.arange(120) % 2)
    s = _pretrain(recipe="ijepa-digits", data=str(tmp_path / "huge.npz"), out=str(tmp_path / "run"),
                  overrides=TINY + ["data.max_samples=null"])
    assert np.isfinite(s["rankme"]) and np.isfinite(s["final_loss"])
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    ref = x.astype(np.float64)
    assert np.isclose(info["mean"][0], ref.mean(), rtol=0.05) and np.isclose(info["std"][0], ref.std(), rtol=0.05)  # train split


def test_channel_stats_are_float64_and_finite():
    from polyjepa.data.prepare import channel_stats, normalise

    x = np.array([[[3e38, 1e38]], [[-3e38, 2e38]]], dtype=np.float32)   # float32 sums and squares overflow
    mean, std = channel_stats(x)
    ref = x.astype(np.float64).reshape(-1)
    assert np.isclose(mean[0], ref.mean(), rtol=1e-12) and np.isclose(std[0], ref.std(), rtol=1e-12)
    z = normalise(x, mean, std)
    assert z.dtype == np.float32 and np.allclose(z.reshape(-1), (ref - ref.mean()) / ref.std(), atol=1e-6)
    with pytest.raises(UserError, match=r"no finite values in channel\(s\) \[1\]"):
        channel_stats(np.stack([np.ones((3, 4)), np.full((3, 4), np.nan)], 1))


def test_a_table_column_of_huge_values_keeps_its_information():
    import pandas as pd

    from polyjepa.tabular.schema import encode, fit_schema

    v = np.random.default_rng(0).normal(size=300)
    frame = pd.DataFrame({"huge": v * 1e300, "small": v})
    schema = fit_schema(frame)
    z = encode(frame, schema)
    assert np.isfinite(z).all()
    assert np.allclose(z[:, 0], z[:, 1], atol=1e-5)          # standardised alike, whatever the scale
    assert len(schema["edges"][0]) == len(schema["edges"][1])


def test_a_typo_in_a_numeric_column_warns_naming_it():
    import pandas as pd

    from polyjepa.tabular.schema import fit_schema

    values = [f"{x:.3f}" for x in np.random.default_rng(0).normal(size=200)]
    values[17] = "12,5"
    with pytest.warns(PolyjepaWarning, match=r"column 'price' is read as categorical .* 1 of its 200 values are not "
                                             r"numbers \('12,5'\)"):
        schema = fit_schema(pd.DataFrame({"price": values, "b": np.arange(200.0)}))
    assert schema["kinds"][0] == "cat"


def test_a_category_column_of_words_does_not_warn():
    import warnings

    import pandas as pd

    from polyjepa.tabular.schema import fit_schema

    with warnings.catch_warnings():
        warnings.simplefilter("error", PolyjepaWarning)
        fit_schema(pd.DataFrame({"colour": list("rgb") * 50 + ["7"] * 3, "b": np.arange(153.0)}))


def test_unseen_categories_at_transform_map_to_the_unknown_token():
    import pandas as pd

    from polyjepa.tabular.embedder import TabularEmbedder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=30), "c": list("xyz") * 10})
    emb = TabularEmbedder(max_steps=2, min_steps=0, dim=8, depth=1, batch_size=8).fit(frame)
    out = emb.transform(frame.assign(c=["never seen"] * 30))
    assert out.shape[0] == 30 and np.isfinite(out).all()
    assert not np.allclose(out, emb.transform(frame))


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mitbih"


@pytest.mark.skipif(not (SHARED / "100.hea").exists(), reason="needs ../shared/data/mitbih")
def test_a_complete_wfdb_record_still_reads():
    from polyjepa.timeseries.wfdb import read_record

    sig, fs, names = read_record(SHARED / "100")
    assert sig.shape[0] == 2 and fs == 360 and sig.shape[1] == 650000
