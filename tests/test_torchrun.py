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
import torch

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


def _torchrun(run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "polyjepa", "pretrain", "ijepa-digits",
                           "--out", str(run), *TINY, *extra, "--no-progress"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def single_process_losses(tmp_path_factory) -> list[float]:
    """The losses of the TINY run in one process, with the same global batch as the launched runs."""
    run = tmp_path_factory.mktemp("single") / "run"
    assert main(["pretrain", "ijepa-digits", "--out", str(run), *TINY, "--no-progress"]) == 0
    return _losses(run)


def _same_steps(ours: list[float], single: list[float]) -> None:
    """Every rank drew the masks of the whole global batch and kept its rows, and DDP averaged the gradients:
    the launched run takes the single process's steps, up to float summation order."""
    assert len(ours) == len(single) == 6
    assert all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(ours, single)), (ours, single)


@needs_torchrun
def test_torchrun_two_processes_write_one_run_and_take_the_single_process_steps(tmp_path, single_process_losses):
    run = tmp_path / "ddp"
    proc = _torchrun(run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert proc.stdout.count("pretrained encoder") == 1          # rank 0 alone evaluates and prints
    assert json.loads((run / "run.json").read_text())["launch"]  # the launch that wrote it (other ranks wait for it)
    _same_steps(_losses(run), single_process_losses)


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


FABRIC = shutil.which("fabric", path=str(Path(sys.executable).parent))
POLYJEPA_SCRIPT = shutil.which("polyjepa", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(FABRIC is None or POLYJEPA_SCRIPT is None, reason="Lightning's fabric command or the polyjepa "
                    "script is not installed beside this Python")
def test_fabric_run_launches_the_cli_as_torchrun_does(tmp_path, single_process_losses):
    """``fabric run --devices 2 $(which polyjepa) pretrain ...``: Fabric's launcher starts both processes, polyjepa
    takes its --precision as train.precision, and the run is the single process's."""
    run = tmp_path / "fabric"
    proc = subprocess.run([FABRIC, "run", "--accelerator", "cpu", "--devices", "2", "--precision", "32",
                           POLYJEPA_SCRIPT, "pretrain", "ijepa-digits", "--out", str(run), *TINY, "--no-progress"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6 and summary["precision"] == "32-true"
    assert proc.stdout.count("pretrained encoder") == 1
    _same_steps(_losses(run), single_process_losses)


def test_fabric_run_options_become_the_train_settings(monkeypatch):
    from polyjepa.config import TrainConfig
    from polyjepa.errors import UserError
    from polyjepa.runner import torchrun_train_config

    for k in [k for k in os.environ if k.startswith(("SLURM_", "LT_"))]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LT_CLI_USED", "1")
    monkeypatch.setenv("LT_ACCELERATOR", "cpu")
    monkeypatch.setenv("LT_PRECISION", "bf16")
    monkeypatch.setenv("LT_STRATEGY", "fsdp")
    tc = torchrun_train_config(TrainConfig())
    assert (tc.accelerator, tc.precision, tc.strategy, tc.devices) == ("cpu", "bf16-mixed", "fsdp", 2)
    with pytest.raises(UserError, match="fabric run --precision bf16 but train.precision=32-true: drop one"):
        torchrun_train_config(TrainConfig(precision="32-true"))
    monkeypatch.setenv("LT_STRATEGY", "deepspeed")
    with pytest.raises(UserError, match="fabric run --strategy deepspeed: polyjepa trains with ddp or fsdp"):
        torchrun_train_config(TrainConfig())
    monkeypatch.setenv("LT_STRATEGY", "ddp")
    with pytest.raises(UserError, match="fabric run --strategy ddp but train.strategy=fsdp"):
        torchrun_train_config(TrainConfig(strategy="fsdp"))
    monkeypatch.setenv("WORLD_SIZE", "1")          # `fabric run --devices 1`: one process, the options still hold
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    tc = torchrun_train_config(TrainConfig())
    assert (tc.accelerator, tc.precision, tc.strategy) == ("cpu", "bf16-mixed", "ddp")
    with pytest.raises(UserError, match="fabric run --precision bf16 but train.precision=32-true: drop one"):
        torchrun_train_config(TrainConfig(precision="32-true"))


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


def test_fsdp_with_accumulation_and_an_unknown_strategy_are_one_clear_line(tmp_path, capsys):
    assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "f"), *TINY, "train.devices=2",
                 "train.strategy=fsdp", "train.accumulate=2", "--no-progress"]) == 2
    assert "shard the model or accumulate" in capsys.readouterr().err and not (tmp_path / "f").exists()
    assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "b"), *TINY, "train.strategy=bogus",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.strategy=bogus" in err and "Traceback" not in err


def _final_weights(run: Path) -> dict:
    from polyjepa.train.checkpoint import load_latest_checkpoint

    return load_latest_checkpoint(run / "checkpoints")[1]


@needs_torchrun
def test_fsdp_over_two_cpu_processes_trains_as_ddp(tmp_path):
    """train.strategy=fsdp shards every transformer block over the ranks (FSDP2 through Fabric, gloo here): the
    same losses, final weights (gathered whole into the checkpoint) and EMA target as DDP on the same batches."""
    proc = _torchrun(tmp_path / "fsdp", "train.strategy=fsdp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("pretrained encoder") == 1
    ddp = tmp_path / "ddp"
    assert main(["pretrain", "ijepa-digits", "--out", str(ddp), *TINY, "train.devices=2", "--no-progress"]) == 0
    sharded, plain = _losses(tmp_path / "fsdp"), _losses(ddp)
    assert len(sharded) == len(plain) == 6
    assert all(abs(a - b) <= 1e-5 * abs(b) for a, b in zip(sharded, plain)), (sharded, plain)
    a, b = _final_weights(tmp_path / "fsdp"), _final_weights(ddp)
    assert a.keys() == b.keys() and any(k.startswith("target.") for k in a)
    for k in a:
        assert a[k].shape == b[k].shape and torch.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.slow
@needs_torchrun
def test_an_fsdp_run_resumes_with_its_optimizer_state(tmp_path):
    """Cut a finished 6-step FSDP run back to its step-4 checkpoint and resume it: the optimizer state gathered
    into the checkpoint goes back into the shards, so steps 5-6 and the final weights are those of the run."""
    whole = tmp_path / "whole"
    assert _torchrun(whole, "train.strategy=fsdp").returncode == 0
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoints" / "step-0000006")
    (cut / "checkpoints" / "latest.json").unlink()
    (cut / "summary.json").unlink()
    resumed = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "polyjepa", "pretrain",
                              "--resume", str(cut), "--no-progress"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _losses(whole), _losses(cut)
    assert len(a) == len(b) == 6
    assert all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(a, b)), (a, b)
    w, c = _final_weights(whole), _final_weights(cut)
    for k in w:
        assert torch.allclose(w[k], c[k], atol=1e-6), k


def test_srun_tasks_train_as_one_run(tmp_path, single_process_losses):
    """Two processes started as SLURM's ``srun --ntasks-per-node=2`` starts them (its environment, faked here on
    one machine): one run directory written by task 0, DDP over the two tasks through Fabric's SLURM
    environment, and the losses of the single-process run with the same global batch."""
    run, port = tmp_path / "srun", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC", "MASTER_"))
           and k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", SLURM_JOB_ID="4242", SLURM_STEP_ID="0", SLURM_JOB_NAME="pretrain",
               SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0",
               SLURM_STEP_NUM_TASKS="2", SLURM_STEP_NUM_NODES="1",
               SLURM_NODELIST="localhost", MASTER_PORT=str(port))
    cmd = [sys.executable, "-m", "polyjepa", "pretrain", "ijepa-digits", "--out", str(run), *TINY, "--no-progress"]
    tasks = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**env, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)}) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in tasks]
    assert all(p.returncode == 0 for p in tasks), [e[-2000:] for _, e in outs]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert json.loads((run / "run.json").read_text())["launch"] == "slurm-4242.0"
    assert sum(o.count("pretrained encoder") for o, _ in outs) == 1  # task 0 alone evaluates
    _same_steps(_losses(run), single_process_losses)


def test_srun_task_counts_that_do_not_fit_are_one_clear_line(monkeypatch):
    from polyjepa.config import TrainConfig
    from polyjepa.errors import UserError
    from polyjepa.runner import launch_rank, torchrun_train_config

    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NUM_NODES"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    assert launch_rank() is None   # a batch script's shell (no job step of several tasks): a plain command
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "2")
    assert launch_rank() == 3
    cfg = torchrun_train_config(TrainConfig())
    assert (cfg.devices, cfg.num_nodes, cfg.strategy) == (2, 2, "ddp")
    with pytest.raises(UserError, match="train.devices=3 but srun started 2 processes per machine"):
        torchrun_train_config(TrainConfig(devices=3))
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "3")
    with pytest.raises(UserError, match="srun started 4 tasks on 3 nodes"):
        torchrun_train_config(TrainConfig())
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")   # an salloc shell: a plain command, as Fabric sees it
    assert launch_rank() is None and torchrun_train_config(TrainConfig()).devices == 1


# Runs the CLI with the training step patched in one process only: rank 1's loss turns NaN at its third step, or
# rank 1 is slower by a sleep per step.
SCRIPT = """
import sys, time
import polyjepa.train.loop as loop

original, calls = loop.accumulate_backward, [0]

def patched(fabric, method, micro):
    out, loss = original(fabric, method, micro)
    calls[0] += 1
    if fabric.global_rank == 1 and MODE == "nan" and calls[0] == 3:
        loss = loss * float("nan")
    if fabric.global_rank == 1 and MODE == "slow":
        time.sleep(0.03)
    return out, loss

loop.accumulate_backward = patched
MODE = sys.argv.pop(1)
from polyjepa.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _launch(tmp_path, mode: str, *extra: str) -> subprocess.CompletedProcess:
    script = tmp_path / "patched.py"
    script.write_text(SCRIPT)
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", str(script), mode, "pretrain",
                           "ijepa-digits", "--out", str(tmp_path / "run"), *TINY, *extra, "--no-progress"],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)})


@needs_torchrun
def test_a_loss_that_is_not_finite_in_one_process_stops_every_process(tmp_path):
    proc = _launch(tmp_path, "nan")
    assert proc.returncode != 0
    assert "loss became nan at step 2" in proc.stderr                              # the process whose loss it was
    assert "loss became non-finite in another process at step 2" in proc.stderr   # and its peer, at the same step
    assert not (tmp_path / "run" / "summary.json").exists()


@needs_torchrun
def test_a_time_budget_gives_every_process_the_same_steps(tmp_path):
    proc = _launch(tmp_path, "slow", "train.max_steps=null", "train.max_epochs=1000", "train.max_minutes=0.1",
                   "train.checkpoint_every=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and 20 < summary["steps"] < 1000 * 300 // 32
    assert summary["stop_reason"] in ("time budget", "completed")


def test_a_process_other_than_rank_0_never_decodes_the_evaluation_sample(tmp_path, monkeypatch):
    """Only rank 0 evaluates: another rank of a launch neither decodes the probes' sample nor builds a monitor."""
    import polyjepa.data.prepare as prepare_mod
    import polyjepa.runner as runner
    import polyjepa.train.loop as loop

    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--out", str(run), *TINY, "train.max_steps=1", "--no-progress"]) == 0
    seen = {}

    def no_sample(*a, **k):
        raise AssertionError("a rank other than 0 decoded the evaluation sample")

    def fake_fit(job):
        seen["monitor"] = job.monitor
        return {"steps": 1}

    monkeypatch.setattr(runner, "launch_rank", lambda: 1)
    monkeypatch.setattr(runner, "wait_for_run_dir", lambda out, since: runner.open_run(Path(out)))
    monkeypatch.setattr(prepare_mod, "evaluation_sample", no_sample)
    monkeypatch.setattr(loop, "fit", fake_fit)
    assert main(["pretrain", "ijepa-digits", "--out", str(run), *TINY, "--no-progress"]) in (None, 0)
    assert seen == {"monitor": None}
