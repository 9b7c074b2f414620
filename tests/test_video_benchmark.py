"""Smoke test of benchmarks/video_moving_digits.py: its readouts and speed options reach the table and JSON."""
import json
import runpy
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "video_moving_digits.py"


def test_benchmark_reports_every_readout_at_the_given_speed(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", [str(BENCH), "digits", "--steps", "2", "--batch-size", "16", "--n-train", "80",
                                      "--n-test", "40", "--speed", "0.5,1.5", "--pools", "time+grid:2,mean",
                                      "--only", "V-JEPA (tube masks)", "--out", str(out)])
    runpy.run_path(str(BENCH), run_name="__main__")
    text = capsys.readouterr().out
    assert "speed (0.5, 1.5) px/frame" in text
    assert "velocity R^2 (time+grid:2)" in text and "velocity R^2 (mean)" in text
    res = json.loads(out.read_text())
    assert res["args"]["speed"] == "0.5,1.5"
    for name in ("random-init encoder", "V-JEPA (tube masks)"):
        assert set(res["results"][name]) == {"time+grid:2", "mean", "train_s"}
        for pool in ("time+grid:2", "mean"):
            assert all(np.isfinite(res["results"][name][pool]["velocity_r2"]))
    assert set(res["results"]["raw pixels"]) == {"raw", "train_s"}


def test_benchmark_speed_changes_the_clips():
    """--speed reaches the generator: the probe's velocity targets lie in the requested range."""
    from polyjepa.video.sources import moving_digit_split

    for lo, hi in ((0.5, 1.5), (3.0, 6.0)):
        train, _, meta = moving_digit_split("digits", frames=8, frame_size=32, digit_size=14, speed=(lo, hi),
                                            n_train=50, n_test=10, seed=0)
        v = np.linalg.norm(train.velocity[:, 0, 0], axis=-1)
        assert meta["generator"]["speed"] == [lo, hi]
        assert v.min() >= lo - 1e-5 and v.max() <= hi + 1e-5
