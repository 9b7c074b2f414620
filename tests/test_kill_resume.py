"""SIGKILL a real ``polyjepa pretrain`` process, several times and once in the middle of a checkpoint write;
``--resume`` each time; the finished run must equal one that was never interrupted."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polyjepa.cli import main

TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.monitor_every=0", "train.checkpoint_every=2", "train.log_every=1",
        "eval.monitor_samples=64", "data.max_samples=300", "train.threads=1", "eval.baselines=false"]

# The command line, optionally killing itself (SIGKILL, no clean-up) in the middle of writing the checkpoint of
# step KILL_IN_CHECKPOINT: after its model file is written and before the checkpoint is complete.
LAUNCH = """
import os, signal, sys
step = int(os.environ.get("KILL_IN_CHECKPOINT", "0"))
if step:
    import polyjepa.train.checkpoint as checkpoint
    save_file = checkpoint.save_file
    def killing_save_file(tensors, path, *args, **kwargs):
        save_file(tensors, path, *args, **kwargs)
        if f".step-{step:07d}.tmp" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoint.save_file = killing_save_file
from polyjepa.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _command(run: Path, steps: int, resume: bool) -> list[str]:
    args = ["pretrain", "--resume", str(run)] if resume else \
        ["pretrain", "ijepa-digits", "--out", str(run), *TINY, f"train.max_steps={steps}"]
    return [sys.executable, "-c", LAUNCH, *args, "--no-progress"]


def _env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", **{k: str(v) for k, v in extra.items()}}


def _killed_in_checkpoint(run: Path, steps: int, resume: bool, step: int) -> None:
    proc = subprocess.run(_command(run, steps, resume), env=_env(KILL_IN_CHECKPOINT=step), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (run / "checkpoints" / f".step-{step:07d}.tmp").is_dir()   # a write cut short is left behind


def _killed_after(run: Path, steps: int, resume: bool, step: int) -> None:
    """SIGKILL from outside, as soon as a checkpoint of ``step`` or later is complete (wherever training is)."""
    proc = subprocess.Popen(_command(run, steps, resume), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    pointer, deadline = run / "checkpoints" / "latest.json", time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                if json.loads(pointer.read_text())["step"] >= step:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "training ended before the kill: " + proc.stderr.read()[-2000:]


def _losses(run: Path) -> dict[int, str]:
    with open(run / "metrics.csv", newline="") as f:
        return {int(r["step"]): r["loss"] for r in csv.DictReader(f) if r.get("loss")}


def _assert_same_run(run: Path, reference: Path, steps: int) -> None:
    ours, theirs = _losses(run), _losses(reference)
    assert sorted(ours) == list(range(1, steps + 1)) and ours == theirs
    a, b = load_file(run / "encoder.safetensors"), load_file(reference / "encoder.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)       # bit-equal weights
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (run, reference))
    assert sa["steps"] == sb["steps"] == steps and sa["rankme"] == sb["rankme"]
    assert sa["probe"] == sb["probe"]


def _reference(tmp_path: Path, steps: int) -> Path:
    ref = tmp_path / "uninterrupted"
    assert main(["pretrain", "ijepa-digits", "--out", str(ref), *TINY, f"train.max_steps={steps}", "--no-progress"]) == 0
    return ref


def _resume_in_process(run: Path) -> None:
    assert main(["pretrain", "--resume", str(run), "--no-progress"]) == 0


def test_sigkill_in_the_first_checkpoint_write_then_mid_run_then_resume_equals_uninterrupted(tmp_path):
    steps, run = 12, tmp_path / "killed"
    # 1. killed while writing the first checkpoint: nothing to resume from, so --resume starts the run over
    _killed_in_checkpoint(run, steps, resume=False, step=2)
    assert not list((run / "checkpoints").glob("step-*"))
    # 2. killed from outside at whatever step training has reached after a checkpoint of step 4 or later
    _killed_after(run, steps, resume=True, step=4)
    _resume_in_process(run)   # the last resume in-process: the same code path, without another interpreter start
    _assert_same_run(run, _reference(tmp_path, steps), steps)


@pytest.mark.slow
def test_many_sigkills_at_random_moments_and_in_checkpoint_writes_then_resume_equals_uninterrupted(tmp_path):
    steps, run = 40, tmp_path / "killed"
    _killed_in_checkpoint(run, steps, resume=False, step=4)
    for at in (6, 14):
        _killed_after(run, steps, resume=True, step=at)
    _killed_in_checkpoint(run, steps, resume=True, step=22)
    for at in (26, 32):
        _killed_after(run, steps, resume=True, step=at)
    assert subprocess.run(_command(run, steps, resume=True), env=_env(), capture_output=True,
                          timeout=300).returncode == 0
    _assert_same_run(run, _reference(tmp_path, steps), steps)
