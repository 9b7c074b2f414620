"""Runs of the methods with their own training loop resume: the shared stage checkpoints (train/stages.py) on a
toy loop, then each converted runner stopped midway (a training call that raises, as a killed command) and
resumed with ``pretrain(resume=RUN_DIR)``, ending with the weights and logged losses of a run that never stopped.

Every loop here is deterministic on a CPU (same threads, seeded generators, weights and optimizer state saved
bit for bit), so the comparisons are exact."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polyjepa.errors import PolyjepaWarning, UserError
from polyjepa.runner import pretrain
from polyjepa.train.checkpoint import checkpoints_newest_first
from polyjepa.train.stages import StageCheckpoints, generator_state, set_generator_state

QUIET = dict(progress=False, echo=lambda *a, **k: None)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: these runs are tiny, and two threads on a busy machine only wait for each other."""
    torch.set_num_threads(1)


class _Stop(Exception):
    pass


def _stop_at(monkeypatch, owner, name: str, call: int):
    """Make ``owner.name`` raise at its ``call``-th call (a run killed there)."""
    real, count = getattr(owner, name), [0]

    def stopping(*args, **kwargs):
        count[0] += 1
        if count[0] == call:
            raise _Stop()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, stopping)


def _newest_state(run: Path) -> dict:
    return json.loads((checkpoints_newest_first(run / "checkpoints")[0] / "state.json").read_text())


def _same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _no_seconds(o):
    if isinstance(o, dict):
        return {k: _no_seconds(v) for k, v in o.items() if "seconds" not in k and k not in ("run_dir", "created")}
    if isinstance(o, list):
        return [_no_seconds(v) for v in o]
    return o


# ---- the shared helper on a toy loop ------------------------------------------------------------------------


def _toy_run(run_dir, *, every=3, steps=(7, 5), stop_after=None, lr=0.05):
    """Two stages of SGD-with-momentum with random batches and dropout (torch's global generator): a linear
    model, then a second one stacked on it, both trained; returns (weights of both, per-step losses).
    ``stop_after`` raises after that many steps in all."""
    ckpts = StageCheckpoints(run_dir, every=every, keep=2)
    ckpts.load()
    torch.manual_seed(0)
    x, y = torch.randn(40, 4), torch.randn(40, 1)
    models, losses, done = {}, {}, [0]
    for stage, total in zip(("first", "second"), steps):
        torch.manual_seed(len(stage))
        models[stage] = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(4 if stage == "first" else 1, 1))
        record = ckpts.skip(stage, dict(models))
        if record is not None:
            losses[stage] = record["losses"]
            continue
        model = torch.nn.Sequential(*models.values())    # the second stage trains both models
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        g = torch.Generator().manual_seed(1)
        pos = ckpts.begin(stage, dict(models), opt, generators={"batches": g}, state={"losses": []})
        for _ in range(pos.step, total):
            idx = torch.randint(0, 40, (8,), generator=g)
            loss = (model(x[idx]) - y[idx]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            pos.advance(losses=pos.state["losses"] + [loss.item()])
            done[0] += 1
            if stop_after is not None and done[0] == stop_after:
                raise _Stop()
        losses[stage] = pos.finish(losses=pos.state["losses"])["losses"]
    return {k: m.state_dict() for k, m in models.items()}, losses


def _equal_states(a, b):
    return all(torch.equal(a[s][k], b[s][k]) for s in a for k in a[s])


def test_generator_states_round_trip_as_text():
    g = torch.Generator().manual_seed(5)
    text = generator_state(g)
    first = torch.rand(3, generator=g)
    set_generator_state(g, text)
    assert torch.equal(first, torch.rand(3, generator=g))
    text = generator_state()
    first = torch.rand(3)
    set_generator_state(None, text)
    assert torch.equal(first, torch.rand(3))
    json.dumps({"state": text})           # plain text: goes into a checkpoint's JSON, no pickle


def test_a_toy_run_stopped_in_either_stage_resumes_to_the_uninterrupted_result(tmp_path):
    whole_w, whole_l = _toy_run(None)
    assert len(whole_l["first"]) == 7 and len(whole_l["second"]) == 5
    for stop in (4, 8, 11):               # inside stage 1, just past it, inside stage 2
        run = tmp_path / f"stop{stop}"
        with pytest.raises(_Stop):
            _toy_run(run, stop_after=stop)
        w, losses = _toy_run(run)
        assert losses == whole_l, stop
        assert _equal_states(w, whole_w), stop
    # the checkpoint names count the steps of both stages in one sequence; the newest says which stage is in training
    run = tmp_path / "names"
    with pytest.raises(_Stop):
        _toy_run(run, stop_after=11)
    state = _newest_state(run)
    assert state["step"] == 10 and state["stage"] == "second" and state["progress"]["steps"] == 3
    assert set(state["finished"]) == {"first"} and state["finished"]["first"]["steps"] == 7


def test_the_toy_run_without_a_directory_trains_the_same(tmp_path):
    a, la = _toy_run(None)
    b, lb = _toy_run(tmp_path / "written")
    assert la == lb and _equal_states(a, b)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    whole_w, whole_l = _toy_run(None)
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        _toy_run(run, stop_after=11)
    newest, older = checkpoints_newest_first(run / "checkpoints")[:2]
    assert (newest.name, older.name) == ("step-0000010", "step-0000007")
    data = bytearray((newest / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(data))
    with pytest.warns(PolyjepaWarning, match="step-0000007"):
        w, losses = _toy_run(run)
    assert losses == whole_l and _equal_states(w, whole_w)


def test_a_new_learning_rate_on_resume_takes_effect(tmp_path):
    whole_w, _ = _toy_run(None)
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        _toy_run(run, stop_after=4)
    w, _ = _toy_run(run, lr=0.01)
    assert not torch.equal(w["first"]["1.weight"], whole_w["first"]["1.weight"])


# ---- the JEPA audio codec (two stages) -----------------------------------------------------------------------

CODEC = ["method.dim=16", "method.levels=[5,5,5]", "train.max_epochs=4", "train.batch_size=16",
         "decoder_training.epochs=3", "data.frames=32", "data.n_mels=16", "train.checkpoint_every=5"]


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    from .test_audio_data import tone_clips, write_npz

    clips, y = tone_clips(60)
    return str(write_npz(tmp_path_factory.mktemp("tones") / "tones.npz", clips, y, take=np.arange(60) % 50))


@pytest.fixture(scope="module")
def codec_whole(tones, tmp_path_factory):
    out = tmp_path_factory.mktemp("codec") / "whole"
    return pretrain("codec-fsdd", data=tones, out=str(out), overrides=CODEC, **QUIET), out


def test_a_codec_run_stopped_in_each_stage_resumes_to_the_uninterrupted_run(tones, codec_whole, tmp_path,
                                                                           monkeypatch):
    from polyjepa.audio.codec import JEPACodec

    whole, whole_dir = codec_whole
    run = tmp_path / "run"
    _stop_at(monkeypatch, JEPACodec, "jepa_loss", 8)        # JEPA stage: 3 steps past its checkpoint at 5
    with pytest.raises(_Stop):
        pretrain("codec-fsdd", data=tones, out=str(run), overrides=CODEC, **QUIET)
    state = _newest_state(run)
    assert state["stage"] == "jepa" and state["progress"]["steps"] == 5
    assert (run / "run.json").exists() and not (run / "summary.json").exists()
    monkeypatch.undo()
    _stop_at(monkeypatch, JEPACodec, "recon_loss", 7)       # resumed, then stopped in the decoder stage
    with pytest.raises(_Stop):
        pretrain(resume=str(run), **QUIET)
    state = _newest_state(run)
    assert state["stage"] == "decoder" and state["progress"]["steps"] == 5 and set(state["finished"]) == {"jepa"}
    monkeypatch.undo()
    resumed = pretrain(resume=str(run), **QUIET)
    assert _no_seconds(resumed) == _no_seconds(whole)
    assert _same_tensors(run / "codec.safetensors", whole_dir / "codec.safetensors")
    assert (run / "metrics.csv").read_text() == (whole_dir / "metrics.csv").read_text()
    assert json.loads((run / "codec.json").read_text()) == json.loads((whole_dir / "codec.json").read_text())


def test_a_codec_run_stopped_before_its_first_checkpoint_starts_over(tones, codec_whole, tmp_path, monkeypatch):
    from polyjepa.audio.codec import JEPACodec

    whole, whole_dir = codec_whole
    run = tmp_path / "run"
    _stop_at(monkeypatch, JEPACodec, "jepa_loss", 3)
    with pytest.raises(_Stop):
        pretrain("codec-fsdd", data=tones, out=str(run), overrides=CODEC, **QUIET)
    monkeypatch.undo()
    said = []
    resumed = pretrain(resume=str(run), progress=False, echo=said.append)
    assert any("stopped before its first checkpoint: starting it over" in s for s in said)
    assert _same_tensors(run / "codec.safetensors", whole_dir / "codec.safetensors")
    assert _no_seconds(resumed) == _no_seconds(whole)


# ---- Lie-symmetry SSL on PDE solutions (VICReg, its ablation, two supervised networks) ----------------------

LIE = ["pde.n_train=32", "pde.n_test=16", "pde.few_labels=16", "pde.solve_grid=64", "train.max_steps=12",
       "train.batch_size=8", "method.width=4", "method.dim=8", "method.projector=16", "method.ablation=true",
       "train.checkpoint_every=5"]


def test_a_lie_run_stopped_in_two_stages_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    import polyjepa.science.lie_ssl as lie

    whole = pretrain("lie-burgers", out=str(tmp_path / "whole"), overrides=LIE, **QUIET)
    run = tmp_path / "run"
    # set_lr: once a step in every network's loop; 12 steps each
    _stop_at(monkeypatch, lie, "set_lr", 12 + 8)           # the ablation's VICReg, 2 steps past its checkpoint at 5
    with pytest.raises(_Stop):
        pretrain("lie-burgers", out=str(run), overrides=LIE, **QUIET)
    state = _newest_state(run)
    assert (state["stage"], state["progress"]["steps"], set(state["finished"])) == ("vicreg_shifts", 5, {"vicreg"})
    monkeypatch.undo()
    _stop_at(monkeypatch, lie, "set_lr", 7 + 8)            # resumed, then stopped in the supervised network
    with pytest.raises(_Stop):
        pretrain(resume=str(run), **QUIET)
    state = _newest_state(run)
    assert state["stage"] == "supervised" and state["progress"]["steps"] == 5
    monkeypatch.undo()
    resumed = pretrain(resume=str(run), **QUIET)
    assert _no_seconds(resumed) == _no_seconds(whole)
    assert _same_tensors(run / "encoder.safetensors", tmp_path / "whole" / "encoder.safetensors")
    final = [checkpoints_newest_first(d / "checkpoints")[0] / "model.safetensors" for d in (run, tmp_path / "whole")]
    assert _same_tensors(*final)
    assert {k.split(".")[0] for k in load_file(final[0])} == {
        f"{s}_{m}" for s, ms in (("vicreg", ("encoder", "expander")), ("vicreg_shifts", ("encoder", "expander")),
                                 ("supervised", ("encoder", "head")), ("supervised_few", ("encoder", "head")))
        for m in ms}


def test_a_lie_resume_takes_a_new_learning_rate_and_refuses_other_changes(tmp_path, monkeypatch):
    import polyjepa.science.lie_ssl as lie

    run = tmp_path / "run"
    _stop_at(monkeypatch, lie, "set_lr", 8)
    with pytest.raises(_Stop):
        pretrain("lie-burgers", out=str(run), overrides=[*LIE, "method.ablation=false"], **QUIET)
    monkeypatch.undo()
    same = tmp_path / "same"
    shutil.copytree(run, same)
    with pytest.raises(UserError, match="cannot change method.dim"):
        pretrain(resume=str(run), overrides=["method.dim=4"], **QUIET)
    pretrain(resume=str(run), overrides=["train.lr=1e-2"], **QUIET)
    assert json.loads((run / "run.json").read_text())["resumes"][0]["overrides"] == ["train.lr=1e-2"]
    pretrain(resume=str(same), **QUIET)
    assert not _same_tensors(run / "encoder.safetensors", same / "encoder.safetensors")


# ---- contrastive clustering of volumes ----------------------------------------------------------------------


def test_a_clustering_run_with_a_corrupt_newest_checkpoint_resumes_from_the_one_before(tmp_path, monkeypatch):
    import polyjepa.volumes.contrastive_clustering as cc

    from .test_volumes_recipe import SMALL, volume_npz

    data = volume_npz(tmp_path / "vol.npz")
    over = [*SMALL, "train.max_steps=8", "train.checkpoint_every=3"]
    whole = pretrain("clustering-modelnet10", data=data, out=str(tmp_path / "whole"), overrides=over, **QUIET)
    run = tmp_path / "run"
    _stop_at(monkeypatch, cc, "set_lr", 8)                  # one step past the checkpoint at 6
    with pytest.raises(_Stop):
        pretrain("clustering-modelnet10", data=data, out=str(run), overrides=over, **QUIET)
    state = _newest_state(run)
    assert state["stage"] == "clustering" and state["progress"]["steps"] == 6
    monkeypatch.undo()
    newest = checkpoints_newest_first(run / "checkpoints")[0]
    (newest / "optimizer.safetensors").write_bytes((newest / "optimizer.safetensors").read_bytes()[:-8])
    with pytest.warns(PolyjepaWarning, match="step-0000003"):
        resumed = pretrain(resume=str(run), **QUIET)
    assert resumed["steps"] == 8 and _no_seconds(resumed) == _no_seconds(whole)
    assert _same_tensors(run / "model.safetensors", tmp_path / "whole" / "model.safetensors")


# ---- the control recipes (a stage per policy / world model / sensor / controller) -----------------------------


def _stop_at_step(monkeypatch, call: int):
    """Kill the run inside its ``call``-th training step, counted over every stage (the step's work is lost)."""
    from polyjepa.train.stages import StagePosition

    _stop_at(monkeypatch, StagePosition, "advance", call)


def _control_resume(tmp_path, monkeypatch, recipe, over, stop, stage, at):
    pytest.importorskip("gymnasium", reason="the control extra (gymnasium) is not installed")
    whole = pretrain(recipe, out=str(tmp_path / "whole"), overrides=over, **QUIET)
    run = tmp_path / "run"
    _stop_at_step(monkeypatch, stop)
    with pytest.raises(_Stop):
        pretrain(recipe, out=str(run), overrides=over, **QUIET)
    state = _newest_state(run)
    assert (state["stage"], state["progress"]["steps"]) == (stage, at)
    monkeypatch.undo()
    resumed = pretrain(resume=str(run), **QUIET)
    assert _no_seconds(resumed) == _no_seconds(whole)
    files = sorted(p.name for p in (tmp_path / "whole").glob("*.safetensors"))
    assert files and files == sorted(p.name for p in run.glob("*.safetensors"))
    assert all(_same_tensors(run / f, tmp_path / "whole" / f) for f in files)
    return whole, run


CONTROL = ["rollouts.train_seeds=1", "rollouts.episodes=1", "train.checkpoint_every=8"]


def test_an_actjepa_run_stopped_in_its_second_policy_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    over = [*CONTROL, "train.max_steps=20", "demos.episodes=1"]
    _, run = _control_resume(tmp_path, monkeypatch, "actjepa-cartpole", over, 20 + 13, "bc_seed0", 8)
    assert set(_newest_state(run)["finished"]) == {"actjepa_seed0", "bc_seed0"}
    losses = _newest_state(run)["finished"]["bc_seed0"]["losses"]
    assert len(losses) == 20 and all(np.isfinite(losses))


def test_a_planner_run_stopped_midway_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    over = [*CONTROL, "train.max_steps=20", "transitions.random_episodes=3", "transitions.noisy_episodes=1",
            "planner.samples=8", "planner.elites=2", "planner.horizon=3"]
    _control_resume(tmp_path, monkeypatch, "planner-cartpole", over, 13, "world_model_seed0", 8)


@pytest.mark.slow
def test_a_remote_run_stopped_in_a_noisy_controller_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    # the sensor (20 steps), then controllers of 12 steps: 4 bits at BER 0 and 0.1, 8 bits at BER 0 and 0.1
    over = [*CONTROL, "train.max_steps=20", "controller.steps=12", "demos.episodes=1", "channel.bits=[4,8]",
            "channel.ber=[0.0,0.1]"]
    _, run = _control_resume(tmp_path, monkeypatch, "tsjepa-remote-cartpole", over, 20 + 3 * 12 + 10,
                             "controller_seed0_0_8_1", 8)
    finished = _newest_state(run)["finished"]
    # a judged controller keeps its return in the record, not its weights
    assert {k for k in finished if k.startswith("controller_seed0_0_")} >= {"controller_seed0_0_4_0",
                                                                             "controller_seed0_0_4_1"}
    assert all("mean" in r for k, r in finished.items() if k.startswith("controller"))
    # the finished run's newest checkpoint records every controller and keeps the sensor's weights alone
    state = _newest_state(run)
    assert state["stage"] is None and len([k for k in state["finished"] if k.startswith("controller")]) == len(
        [c for r in json.loads((run / "summary.json").read_text())["rows"] for c in r["cells"] if c is not None])
    weights = load_file(checkpoints_newest_first(run / "checkpoints")[0] / "model.safetensors")
    assert {k.split(".")[0] for k in weights} == {"sensor_seed0"}
