import json

import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.train.checkpoint import latest_checkpoint, load_checkpoint, load_model_state, save_checkpoint


def test_round_trip_with_optimizer(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, 7, model.state_dict(), opt.state_dict(), {"total_steps": 10})
    path = latest_checkpoint(tmp_path)
    assert path.name == "step-0000007"
    state, optim, meta = load_checkpoint(path)
    assert meta["step"] == 7 and meta["total_steps"] == 10
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    load_model_state(other, state, path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3)
    opt2.load_state_dict(optim)
    for s1, s2 in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(s1["exp_avg"], s2["exp_avg"]) and torch.equal(s1["step"], s2["step"])


def test_keeps_newest_and_ignores_partial_writes(tmp_path):
    m = torch.nn.Linear(2, 2)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, m.state_dict(), None, {}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000002", "step-0000003"]
    (tmp_path / ".step-0000004.tmp").mkdir()  # a write killed midway is never picked up
    (tmp_path / "latest.json").unlink()
    assert latest_checkpoint(tmp_path).name == "step-0000003"


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    m = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path, 1, m.state_dict(), None, {})
    (path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(path)
    meta = json.loads((path / "state.json").read_text())
    meta["format"] = "something-else"
    (path / "state.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="not a polyjepa checkpoint"):
        load_checkpoint(path)
    path2 = save_checkpoint(tmp_path / "b", 1, torch.nn.Linear(3, 3).state_dict(), None, {})
    state, _, _ = load_checkpoint(path2)
    with pytest.raises(UserError, match="do not fit"):
        load_model_state(m, state, path2)
