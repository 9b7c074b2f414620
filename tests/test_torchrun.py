"""``torchrun --nproc_per_node=2 -m polyjepa pretrain``: one run directory (written by rank 0), DDP over the
two launched processes, and the losses of a single-process run."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from polyjepa.cli import main

TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.monitor_every=0", "train.checkpoint_every=4", "train.log_every=1",
        "eval.monitor_samples=64", "data.max_samples=300", "train.threads=1", "eval.baselines=false",
        "train.max_steps=6", "train.accelerator=cpu"]


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")


def _torchrun(run: Path) -> subprocess.CompletedProcess:
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "polyjepa", "pretrain", "ijepa-digits",
                           "--out", str(run), *TINY, "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@needs_torchrun
def test_torchrun_two_processes_write_one_run(tmp_path):
    run = tmp_path / "ddp"
    proc = _torchrun(run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert proc.stdout.count("pretrained encoder") == 1          # rank 0 alone evaluates and prints
    assert json.loads((run / "run.json").read_text())["launch"]  # the launch that wrote it (other ranks wait for it)
    losses = _losses(run)
    assert len(losses) == 6 and all(x == x for x in losses)


@pytest.mark.slow
@needs_torchrun
def test_torchrun_equals_the_spawned_two_process_run(tmp_path):
    assert _torchrun(tmp_path / "torchrun").returncode == 0
    # a second launch into the same --out is refused by rank 0, and the launch fails as a whole (no rank hangs)
    again = _torchrun(tmp_path / "torchrun")
    assert again.returncode != 0 and "already holds a run" in again.stderr
    spawned = tmp_path / "spawn"
    assert main(["pretrain", "ijepa-digits", "--out", str(spawned), *TINY, "train.devices=2", "--no-progress"]) == 0
    ours, theirs = _losses(tmp_path / "torchrun"), _losses(spawned)
    assert len(ours) == len(theirs) == 6
    assert all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(ours, theirs)), (ours, theirs)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@needs_torchrun
def test_two_nodes_train_as_the_spawned_two_process_run(tmp_path):
    """Two torchrun launches rendezvous as two nodes of one process each (here on one machine, sharing its file
    system as a cluster shares one): one run directory, world size 2, the losses of two spawned processes."""
    run, port = tmp_path / "nodes", _free_port()
    cmd = [TORCHRUN, "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=localhost:{port}",
           f"--rdzv-id=nodes{port}", "-m", "polyjepa", "pretrain", "ijepa-digits", "--out", str(run), *TINY,
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in nodes]
    assert all(p.returncode == 0 for p in nodes), [e[-2000:] for _, e in outs]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert sum(o.count("pretrained encoder") for o, _ in outs) == 1  # one process (global rank 0) evaluates
    spawned = tmp_path / "spawn"
    assert main(["pretrain", "ijepa-digits", "--out", str(spawned), *TINY, "train.devices=2", "--no-progress"]) == 0
    ours, theirs = _losses(run), _losses(spawned)
    assert len(ours) == len(theirs) == 6
    assert all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(ours, theirs)), (ours, theirs)


def test_a_multi_node_setting_without_a_launcher_is_one_clear_error(tmp_path, capsys):
    assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "r"), *TINY, "train.num_nodes=2",
                 "--no-progress"]) == 2
    assert "torchrun --nnodes=N" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_fsdp_on_the_cpu_and_an_unknown_strategy_are_one_clear_line(tmp_path, capsys):
    assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "f"), *TINY, "train.devices=2",
                 "train.strategy=fsdp", "--no-progress"]) == 2
    assert "use train.strategy=ddp" in capsys.readouterr().err and not (tmp_path / "f").exists()
    assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "b"), *TINY, "train.strategy=bogus",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.strategy=bogus" in err and "Traceback" not in err
