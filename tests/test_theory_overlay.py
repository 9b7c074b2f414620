"""The spectrum monitor's theory overlay: step-time measurement and fit on known curves, the effective
time from a run's learning rate, and the `polyjepa theory RUN_DIR` command on a tiny Barlow Twins run."""
import json

import numpy as np
import pytest

from polyjepa.theory.overlay import effective_time, fit_step_times, measured_step_times


def test_measured_step_times_of_logistic_curves():
    t = np.linspace(0, 50, 2001)
    centres = np.array([3.0, 7.0, 12.0, 20.0])
    finals = np.array([4.0, 2.0, 1.0, 0.5])
    ev = finals / (1 + np.exp(-(t[:, None] - centres)))
    np.testing.assert_allclose(measured_step_times(t, ev, top=4), centres, atol=0.05)
    # on a log scale: half-way between the first and final value in log units
    grow = 1e-6 * np.exp(np.clip(t[:, None] - centres, 0, 10) * np.log(1e6) / 10)
    np.testing.assert_allclose(measured_step_times(t, grow, top=4, log=True), centres + 5, atol=0.05)
    # a mode still far below the others at the end has not been learned yet
    grow[:, 3] *= 1e-3
    assert np.isnan(measured_step_times(t, grow, top=4, log=True)[3])
    # an eigenvalue already above half its final value at the start has no step
    flat = np.ones((len(t), 1))
    assert np.isnan(measured_step_times(t, flat, top=1)[0])


def test_fit_recovers_the_constant():
    gamma = np.array([1.0, 0.5, 0.25, 0.1])
    pred, c = fit_step_times(gamma, 3.0 / gamma)
    assert c == pytest.approx(3.0)
    np.testing.assert_allclose(pred, 3.0 / gamma)
    pred, c = fit_step_times(gamma, np.array([np.nan, 6.0, 12.0, np.nan]))
    assert c == pytest.approx(3.0)


def test_effective_time_sums_the_learning_rate(tmp_path):
    with open(tmp_path / "metrics.csv", "w") as f:
        f.write("step,loss,lr\n")
        for s in range(0, 101, 10):
            f.write(f"{s},1.0,{0.01 if s < 50 else 0.02}\n")
    t = effective_time(tmp_path, [0, 20, 100])
    assert t[0] == 0 and t[1] == pytest.approx(0.2)
    assert 1.4 < t[2] < 1.6   # 50 steps at 0.01, ~50 at 0.02 (the change is interpolated)


def test_theory_command_on_a_joint_embedding_run(tmp_path, image_npz, capsys):
    from polyjepa.cli import main
    from polyjepa.runner import pretrain

    over = ["encoder.size=micro", "encoder.depth=1", "projector.hidden=32", "train.batch_size=32",
            "train.max_steps=12", "train.log_every=2", "train.monitor_every=2", "train.checkpoint_every=12",
            "data.test_size=0.2", "eval.monitor_samples=64", "eval.baselines=false"]
    run = tmp_path / "run"
    pretrain("barlow-mnist", data=str(image_npz), out=str(run), overrides=over, progress=False, echo=lambda *_: None)
    assert main(["theory", str(run), "--top", "4", "--pairs", "64"]) == 0
    out = capsys.readouterr().out
    assert "c / gamma_j" in out
    record = json.loads((run / "theory.json").read_text())
    assert record["objective"] == "barlow_twins" and record["modes"] == 4
    assert record["gamma"] == sorted(record["gamma"], reverse=True)
    assert (run / "plots" / "spectrum_theory.png").stat().st_size > 1000
    # the spectrum file is what the overlay reads: without it the command says how to get one
    (run / "spectrum.jsonl").unlink()
    assert main(["theory", str(run)]) == 2 and "monitor_every" in capsys.readouterr().err


def test_masked_prediction_runs_are_refused():
    from polyjepa.config import load_recipe
    from polyjepa.errors import UserError
    from polyjepa.theory.overlay import require_joint_embedding

    assert require_joint_embedding(load_recipe("vicreg-mnist")) == "vicreg"
    with pytest.raises(UserError, match="joint-embedding"):
        require_joint_embedding(load_recipe("ijepa-digits"))


def test_theory_command_needs_a_run_directory(tmp_path, capsys):
    from polyjepa.cli import main

    assert main(["theory", str(tmp_path)]) == 2
    assert "not a polyjepa run directory" in capsys.readouterr().err
