"""End-to-end training through the Python API: loss falls, resume equals uninterrupted, NaN stops cleanly."""
import csv
import json

import numpy as np
import pytest

from polyjepa.runner import pretrain
from polyjepa.train.loop import TrainingDiverged


def losses(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")}


def test_tiny_run_loss_goes_down_and_writes_the_run_directory(tmp_path, tiny_overrides):
    over = [o for o in tiny_overrides if not o.startswith("train.max_steps")] + ["train.max_steps=40",
                                                                                  "train.lr=2e-3"]
    s = pretrain("ijepa-digits", out=str(tmp_path / "run"), overrides=over, progress=False, echo=lambda *_: None)
    run = tmp_path / "run"
    for name in ("config.yaml", "run.json", "metrics.csv", "summary.json", "report.md", "encoder.safetensors",
                 "plots/loss.png", "checkpoints/latest.json"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("recipe", "data", "n_train", "n_test", "seconds", "steps", "samples_per_second", "rankme"):
        assert key in summary
    for path in ("probe.linear.accuracy", "probe.knn.accuracy", "baselines.raw.linear.accuracy",
                 "baselines.random_init.linear.accuracy"):
        node = summary
        for k in path.split("."):
            node = node[k]
        assert 0 <= node <= 1
    assert summary == s and summary["steps"] == 40 and summary["n_train"] == 320
    ls = losses(run)
    first, last = np.mean([ls[k] for k in sorted(ls)[:3]]), np.mean([ls[k] for k in sorted(ls)[-3:]])
    assert last < 0.8 * first
    assert summary["rankme"] > 1.0  # not collapsed to a single direction


def test_killed_and_resumed_equals_uninterrupted(tmp_path, tiny_overrides):
    quiet = dict(progress=False, echo=lambda *_: None)
    full = pretrain("ijepa-digits", out=str(tmp_path / "full"), overrides=tiny_overrides, **quiet)
    # "Kill" after the step-4 checkpoint: train a copy to step 4 (same schedule, 8 steps planned)...
    part = tmp_path / "part"
    pretrain("ijepa-digits", out=str(part), overrides=tiny_overrides, **quiet)
    import shutil

    shutil.rmtree(part / "checkpoints" / "step-0000008")
    (part / "checkpoints" / "latest.json").unlink()
    (part / "summary.json").unlink()
    state = part / "checkpoints" / "step-0000004" / "state.json"   # pretend the killed command trained 1000 s
    state.write_text(json.dumps({**json.loads(state.read_text()), "train_seconds": 1000.0}))
    resumed = pretrain(None, resume=str(part), **quiet)
    assert resumed["train_seconds"] >= 1000 and resumed["seconds"] >= resumed["train_seconds"]
    a, b = losses(tmp_path / "full"), losses(part)
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-7), step
    assert resumed["probe"]["linear"]["accuracy"] == pytest.approx(full["probe"]["linear"]["accuracy"])


def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    import polyjepa.objectives.latent as latent

    calls = {"n": 0}
    real = latent.latent_regression

    def nan_after_six_steps(pred, target, **kw):
        out = real(pred, target, **kw)
        calls["n"] += 1
        if calls["n"] > 7:  # two builds each check the objective once, then five good steps
            out["loss"] = out["loss"] * float("nan")
        return out

    from polyjepa import registry

    monkeypatch.setattr(registry, "_USER", {})  # a registered part lives only for this test
    registry.register("objective", "nan_after_six", nan_after_six_steps, {"pred", "target"})
    try:
        with pytest.raises(TrainingDiverged, match="loss became nan at step 5"):
            pretrain("ijepa-digits", out=str(tmp_path / "r"), overrides=tiny_overrides + ["objective.name=nan_after_six"],
                     progress=False, echo=lambda *_: None)
    finally:
        registry._tables.cache_clear()
    run = tmp_path / "r"
    assert not (run / "summary.json").exists()
    from polyjepa.train.checkpoint import latest_checkpoint, load_checkpoint

    path = latest_checkpoint(run / "checkpoints")
    assert path is not None
    state, _, meta = load_checkpoint(path)
    assert meta["step"] == 4 and all(bool(v.isfinite().all()) for v in state.values())


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_overrides):
    """Kill the CLI process hard after a checkpoint, resume it, and compare every logged loss."""
    import os
    import signal
    import subprocess
    import sys
    import time

    over = [o for o in tiny_overrides if "max_steps" not in o and "checkpoint_every" not in o] + [
        "train.max_steps=120", "train.checkpoint_every=10", "train.monitor_every=0"]
    cmd = [sys.executable, "-m", "polyjepa", "pretrain", "ijepa-digits", "--no-progress", *over]
    ref = subprocess.run(cmd + ["--out", str(tmp_path / "ref")], capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "step-0000020").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists(), "the run finished before it could be killed"
    res = subprocess.run([sys.executable, "-m", "polyjepa", "pretrain", "--resume", str(run), "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    a, b = losses(tmp_path / "ref"), losses(run)
    assert sorted(a) == sorted(b)
    assert all(a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7) for k in a)


def test_the_fused_adamw_takes_the_steps_of_the_reference_loop_and_is_kept_off_other_tensors():
    import torch

    from polyjepa.train.loop import adamw, param_groups

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 3)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = adamw(param_groups([nets[0]]), lr=1e-2, betas=(0.9, 0.95))
    plain = torch.optim.AdamW(param_groups([nets[1]]), lr=1e-2, betas=(0.9, 0.95), foreach=False)
    assert fused.defaults["fused"] and not plain.defaults.get("fused")
    for step in range(5):
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        for net, opt in zip(nets, (fused, plain)):
            net(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, torch.zeros_like(a))
    # a device without the fused kernel keeps the per-parameter loop
    elsewhere = torch.nn.Parameter(torch.empty(3, device="meta"))
    assert not adamw([{"params": [elsewhere]}], lr=1e-3).defaults.get("fused")
