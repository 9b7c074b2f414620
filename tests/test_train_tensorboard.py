"""train.logger=tensorboard: event files beside metrics.csv holding the same numbers."""
import csv

import pytest

import polyjepa as pj
from polyjepa.errors import UserError

from .conftest import TINY

QUIET = dict(progress=False, echo=lambda *a: None)


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_the_losses_of_metrics_csv(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    over = TINY + ["eval.baselines=false", "eval.pool=mean", "train.logger=tensorboard", "train.max_steps=4"]
    pj.pretrain("ijepa-digits", out=str(run), overrides=over, **QUIET)
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in run.iterdir())
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    csv_loss = {int(r["step"]): float(r["loss"]) for r in rows if r["loss"]}
    assert sorted(csv_loss) == [2, 4]  # log_every=2, 4 steps
    scalars = _scalars(run / "tensorboard")
    assert sorted(scalars["loss"]) == sorted(csv_loss)
    for step, value in csv_loss.items():  # the CSV keeps 6 significant digits
        assert scalars["loss"][step] == pytest.approx(value, rel=1e-5)
    assert {"lr", "rankme"} <= set(scalars)  # the schedule and the monitor are there too
    assert (run / "report.md").exists() and (run / "plots").is_dir()


def test_without_tensorboard_the_error_names_the_extra(tmp_path, monkeypatch):
    import polyjepa.train.tensorboard as tb

    monkeypatch.setattr(tb, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install 'polyjepa\[tensorboard\]'"):
        pj.pretrain("ijepa-digits", out=str(tmp_path / "run"), overrides=TINY + ["train.logger=tensorboard"], **QUIET)
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_an_unknown_logger_is_refused():
    with pytest.raises(UserError, match="'train.logger' must be 'csv' or 'tensorboard'"):
        pj.load_recipe("ijepa-digits", ["train.logger=wandb"])
