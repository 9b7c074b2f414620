"""Two-tower recommendation runs resume: a run stopped midway (in either variant) and resumed with
``pretrain(resume=RUN_DIR)`` ends with the weights and metrics of a run that never stopped."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polyjepa.errors import UserError
from polyjepa.recommend.method import TwoTowerRec
from polyjepa.runner import pretrain
from polyjepa.train.checkpoint import latest_checkpoint

TINY = ["train.max_epochs=4", "train.batch_size=32", "train.checkpoint_every=5", "data.vocab_size=50",
        "data.groups=4", "method.dim=16", "method.hidden=32", "method.field_dim=8"]
QUIET = dict(progress=False, echo=lambda *a, **k: None)


def _citations(path, n=90, topics=3, per=5):
    rng = np.random.default_rng(0)
    topic = np.arange(n) % topics
    words = [[f"w{t}x{k}" for k in range(12)] for t in range(topics)]
    texts = [" ".join(rng.choice(words[t], 8)) + " common paper" for t in topic]
    src, dst = [], []
    for i in range(n):
        same = np.flatnonzero((topic == topic[i]) & (np.arange(n) != i))
        for j in rng.choice(same, rng.integers(1, per + 1), replace=False):
            src.append(i)
            dst.append(j)
    np.savez(path, text=np.array(texts), edge_index=np.array([src, dst]))
    return str(path)


class _Stop(Exception):
    pass


def _stop_at(monkeypatch, call: int):
    """Make the towers' training loss raise at its ``call``-th call (a killed command)."""
    real, count = TwoTowerRec.loss, [0]

    def loss(self, *args, **kwargs):
        count[0] += 1
        if count[0] == call:
            raise _Stop()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TwoTowerRec, "loss", loss)


def _final_weights(run_dir):
    return load_file(latest_checkpoint(run_dir / "checkpoints") / "model.safetensors")


def test_a_run_stopped_in_each_variant_and_resumed_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    data = _citations(tmp_path / "cites.npz")
    whole = pretrain("twotower-citeseer", data=data, out=str(tmp_path / "whole"), overrides=TINY, **QUIET)
    steps = whole["steps"]
    assert set(steps) == {"two_tower_ssl", "two_tower"} and steps["two_tower_ssl"] > 12

    run = tmp_path / "stopped"
    _stop_at(monkeypatch, 13)                      # inside the SSL variant, 3 steps past its checkpoint at 10
    with pytest.raises(_Stop):
        pretrain("twotower-citeseer", data=data, out=str(run), overrides=TINY, **QUIET)
    meta = json.loads((latest_checkpoint(run / "checkpoints") / "state.json").read_text())
    assert meta["variant"] == "two_tower_ssl" and meta["progress"]["steps"] == 10 and meta["finished"] == {}
    assert not (run / "summary.json").exists()
    # a new run cannot take the folder over: it points at --resume
    monkeypatch.undo()
    with pytest.raises(UserError, match="--resume"):
        pretrain("twotower-citeseer", data=data, out=str(run), overrides=TINY, **QUIET)

    _stop_at(monkeypatch, steps["two_tower_ssl"] - 10 + 8)   # resumed, then stopped inside the ablation variant
    with pytest.raises(_Stop):
        pretrain(resume=str(run), **QUIET)
    meta = json.loads((latest_checkpoint(run / "checkpoints") / "state.json").read_text())
    assert meta["variant"] == "two_tower" and set(meta["finished"]) == {"two_tower_ssl"}
    monkeypatch.undo()
    resumed = pretrain(resume=str(run), **QUIET)

    assert resumed["steps"] == steps
    assert resumed["results"] == whole["results"]
    for name in ("model.safetensors",):
        a, b = load_file(tmp_path / "whole" / name), load_file(run / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = _final_weights(tmp_path / "whole"), _final_weights(run)
    assert {k.split(".")[0] for k in a} == {"two_tower_ssl", "two_tower"}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # resuming a finished run trains nothing more and gives the same table
    again = pretrain(resume=str(run), **QUIET)
    assert again["results"] == whole["results"] and again["steps"] == steps


def test_resume_rejects_a_changed_seed_and_continues_with_a_new_learning_rate(tmp_path, monkeypatch):
    data = _citations(tmp_path / "cites.npz")
    run = tmp_path / "run"
    _stop_at(monkeypatch, 7)
    with pytest.raises(_Stop):
        pretrain("twotower-citeseer", data=data, out=str(run), overrides=[*TINY, "method.ablation=false"], **QUIET)
    monkeypatch.undo()
    same = tmp_path / "same"
    shutil.copytree(run, same)
    with pytest.raises(UserError, match="seed"):
        pretrain(resume=str(run), seed=3, **QUIET)
    with pytest.raises(UserError, match="cannot change method.dim"):
        pretrain(resume=str(run), overrides=["method.dim=8"], **QUIET)
    s = pretrain(resume=str(run), overrides=["train.lr=1e-3"], **QUIET)
    assert s["steps"]["two_tower_ssl"] > 5
    info = json.loads((run / "run.json").read_text())
    assert info["resumes"][0]["overrides"] == ["train.lr=1e-3"]
    # the new rate took effect: the same stopped run resumed at its own rate ends with other weights
    assert pretrain(resume=str(same), **QUIET)["steps"] == s["steps"]
    a, b = load_file(run / "model.safetensors"), load_file(same / "model.safetensors")
    assert a.keys() == b.keys() and not all(torch.equal(a[k], b[k]) for k in a)
