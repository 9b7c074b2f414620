"""Gradient accumulation (``train.accumulate``): micro-batches hold exactly the full batch, their summed gradients
equal the full batch's for a loss that averages over samples, and a run with accumulation trains as one without."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from polyjepa.build import build_method
from polyjepa.cli import main
from polyjepa.config import load_recipe
from polyjepa.data.batches import MaskedBatches, check_accumulate, split_batch
from polyjepa.errors import UserError

# I-JEPA without its batch-statistics regulariser: a loss that is a mean over samples
PLAIN = ["regularizer=null", "encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1",
         "predictor.heads=2"]


def _method_and_batch(n=12):
    torch.manual_seed(0)
    method = build_method(load_recipe("ijepa-digits", PLAIN), (1, 8, 8), seed=0)
    batch = MaskedBatches(torch.randn(48, 1, 8, 8), batch_size=n, masker=method.masker, seed=3)[0]
    return method, batch


def test_split_batch_cuts_every_entry_into_equal_parts_that_rebuild_the_batch():
    _, batch = _method_and_batch()
    parts = split_batch(batch, 3)
    assert len(parts) == 3 and all(len(p["x"]) == 4 for p in parts)
    for key, value in batch.items():
        assert torch.equal(torch.cat([p[key] for p in parts]), value)
    assert split_batch(batch, 1) == [batch]


def test_split_batch_refuses_uneven_parts_and_entries_not_per_sample():
    _, batch = _method_and_batch()
    with pytest.raises(UserError, match="does not split into train.accumulate=5"):
        split_batch(batch, 5)
    with pytest.raises(UserError, match=r"entries \['views'\]"):
        split_batch({**batch, "views": torch.zeros(2, 12, 3)}, 2)


def test_methods_that_lay_out_their_own_batches_refuse_accumulation():
    method = build_method(load_recipe("vicreg-mnist"), (1, 28, 28), seed=0)
    check_accumulate(method, 1)
    with pytest.raises(UserError, match="train.accumulate=2 is not supported"):
        check_accumulate(method, 2)


def test_accumulated_gradients_equal_the_full_batch_gradient():
    from lightning_fabric import Fabric

    from polyjepa.train.loop import accumulate_backward

    method, batch = _method_and_batch()
    method(batch)["loss"].backward()
    full = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
    loss_full = method(batch)["loss"].item()
    method.zero_grad(set_to_none=True)

    fabric = Fabric(accelerator="cpu", devices=1)
    wrapped = fabric.setup_module(method)
    out, loss = accumulate_backward(fabric, wrapped, split_batch(batch, 3))
    assert abs(loss.item() - loss_full) <= 1e-5 * abs(loss_full)
    got = {n: p.grad for n, p in method.named_parameters() if p.grad is not None}
    assert got.keys() == full.keys() and full
    for name in full:
        assert torch.allclose(got[name], full[name], rtol=1e-4, atol=1e-6), name


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def test_a_run_with_accumulation_trains_as_the_same_run_without(tmp_path, monkeypatch):
    import polyjepa.train.loop as loop

    parts, real = [], loop.accumulate_backward

    def counting(fabric, method, micro):  # the micro-batches each step really ran
        parts.append(len(micro))
        return real(fabric, method, micro)

    monkeypatch.setattr(loop, "accumulate_backward", counting)
    common = [*PLAIN, "train.batch_size=32", "train.max_steps=5", "train.log_every=1", "train.monitor_every=0",
              "train.threads=1", "data.max_samples=200", "eval.baselines=false", "eval.monitor_samples=64"]
    for k in (1, 4):
        assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / f"a{k}"), *common, f"train.accumulate={k}",
                     "--no-progress"]) == 0
    assert parts == [1] * 5 + [4] * 5
    one, four = _losses(tmp_path / "a1"), _losses(tmp_path / "a4")
    assert len(one) == len(four) == 5
    assert all(abs(a - b) <= 1e-4 * abs(a) for a, b in zip(one, four)), (one, four)


def test_the_command_line_refuses_accumulation_that_cannot_split(tmp_path, capsys):
    code = main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "r"), "train.batch_size=30",
                 "train.accumulate=4", "--no-progress"])
    assert code == 2
    assert "does not split into train.accumulate=4" in capsys.readouterr().err
