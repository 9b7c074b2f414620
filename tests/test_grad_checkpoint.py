"""Activation checkpointing (``train.grad_checkpoint``, ``encoder.grad_checkpoint``): the recomputed backward
gives the plain step's loss and gradients, stores less, and a run with it trains as the same run without."""
from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch import nn

from polyjepa.build import build_method
from polyjepa.cli import main
from polyjepa.config import load_recipe
from polyjepa.data.batches import MaskedBatches
from polyjepa.models.encoder import TransformerEncoder
from polyjepa.models.transformer import set_grad_checkpoint

SMALL = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=2", "predictor.heads=2"]


def _grads(method, batch):
    method.zero_grad(set_to_none=True)
    loss = method(batch)["loss"]
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}


def test_checkpointed_step_has_the_plain_loss_and_gradients():
    torch.manual_seed(0)
    method = build_method(load_recipe("ijepa-digits", SMALL), (1, 8, 8), seed=0)
    batch = MaskedBatches(torch.randn(48, 1, 8, 8), batch_size=16, masker=method.masker, seed=3)[0]
    loss0, plain = _grads(method, batch)
    assert set_grad_checkpoint(method, True) >= 3    # online encoder, EMA target's copy, predictor
    loss1, recomputed = _grads(method, batch)
    assert abs(loss0 - loss1) <= 1e-6 * abs(loss0)
    assert plain.keys() == recomputed.keys() and plain
    for name in plain:
        assert torch.allclose(plain[name], recomputed[name], rtol=1e-5, atol=1e-7), name


def test_checkpointing_keeps_fewer_tensors_for_the_backward_pass():
    def saved_bytes(enc, x):
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            enc(x).sum()
        return sum(total)

    enc = TransformerEncoder(dim=32, depth=4, heads=2)
    x = torch.randn(8, 20, 32, requires_grad=True)
    plain = saved_bytes(enc, x)
    enc.grad_checkpoint = True
    assert saved_bytes(enc, x) < plain / 4      # the four block inputs instead of every activation


def test_without_gradients_checkpointing_changes_nothing():
    enc = TransformerEncoder(dim=32, depth=3, heads=2, grad_checkpoint=True)
    x = torch.randn(4, 10, 32)
    with torch.no_grad():
        a = enc(x)
    enc.grad_checkpoint = False
    with torch.no_grad():
        assert torch.equal(a, enc(x))


def test_set_grad_checkpoint_counts_only_parts_that_offer_it():
    assert set_grad_checkpoint(nn.Sequential(nn.Linear(3, 3), nn.ReLU())) == 0


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def test_a_run_with_checkpointing_trains_as_the_same_run_without(tmp_path):
    from polyjepa.config import TrainConfig
    from polyjepa.runner import train_method

    x = torch.randn(96, 1, 8, 8).numpy()
    for on in (False, True):
        method = build_method(load_recipe("ijepa-digits", SMALL), (1, 8, 8), seed=0)
        tc = TrainConfig(batch_size=32, max_steps=4, log_every=1, monitor_every=0, checkpoint_every=0, threads=1,
                         precision="32-true", grad_checkpoint=on)
        train_method(method, x, train=tc, run_dir=tmp_path / str(on), progress=False)
        assert method.predictor.grad_checkpoint is on and method.backbone.encoder.grad_checkpoint is on
    plain, recomputed = _losses(tmp_path / "False"), _losses(tmp_path / "True")
    assert len(plain) == len(recomputed) == 4
    assert all(abs(a - b) <= 1e-5 * abs(a) for a, b in zip(plain, recomputed)), (plain, recomputed)


def test_a_method_without_such_parts_refuses_the_option(tmp_path, capsys):
    code = main(["pretrain", "cnnjepa-digits", "--out", str(tmp_path / "r"), "train.grad_checkpoint=true",
                 "train.max_steps=1", "--no-progress"])
    assert code == 2
    assert "no part of this method can recompute its blocks" in capsys.readouterr().err
