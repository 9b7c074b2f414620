"""Learning-rate and weight-decay schedules against their closed forms."""
import math

import pytest
import torch

from polyjepa.train.schedules import cosine, set_lr, warmup_cosine, warmup_cosine_factor


def test_warmup_cosine_endpoints_and_midpoint():
    kw = dict(start=1e-4, peak=1e-3, final=1e-6, warmup_steps=10)
    assert warmup_cosine(0, 110, **kw) == pytest.approx(1e-4)
    assert warmup_cosine(5, 110, **kw) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))
    assert warmup_cosine(10, 110, **kw) == pytest.approx(1e-3)
    assert warmup_cosine(60, 110, **kw) == pytest.approx((1e-3 + 1e-6) / 2)    # half-way down the cosine
    assert warmup_cosine(110, 110, **kw) == pytest.approx(1e-6)
    assert warmup_cosine(500, 110, **kw) == pytest.approx(1e-6)                 # held past the end


def test_cosine_ramp_rises_from_start_to_end():
    assert cosine(0, 100, start=0.04, end=0.4) == pytest.approx(0.04)
    assert cosine(50, 100, start=0.04, end=0.4) == pytest.approx(0.22)
    assert cosine(100, 100, start=0.04, end=0.4) == pytest.approx(0.4)


def test_warmup_cosine_factor_is_the_runners_rule():
    total, warm = 50, 5
    for step in range(total):
        want = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
        assert warmup_cosine_factor(step, total, warm) == pytest.approx(want)
    assert warmup_cosine_factor(0, 10, 0) == 1.0          # no warm-up: starts at the peak, never at 0
    assert warmup_cosine_factor(99, 10, 2) == pytest.approx(0.0)


def test_set_lr_sets_every_group():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}], lr=0.1)
    set_lr(opt, 0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
