"""Label-free selection: Spearman against scipy and closed forms; ranking runs and checkpoints; the CLI."""
import json

import numpy as np
import pytest
import torch

from polyjepa.cli import main
from polyjepa.diagnostics.selection import select_runs, spearman


def test_spearman_closed_forms_and_scipy():
    from scipy.stats import spearmanr

    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=12)
    a[3] = a[5]  # a tie
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(spearman([1], [2]))


def fake_run(path, rankme, acc, recipe="vicreg-mnist"):
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"recipe": recipe, "steps": 10, "rankme": rankme,
                                                   "probe": {"linear": {"accuracy": acc}}}))
    return str(path)


def test_select_ranks_runs_by_rankme(tmp_path, capsys):
    runs = [fake_run(tmp_path / f"r{i}", rk, acc) for i, (rk, acc) in enumerate([(5.0, 0.7), (30.0, 0.9), (12.0, 0.8)])]
    result = select_runs(runs)
    assert [r["rankme"] for r in result["ranked"]] == [30.0, 12.0, 5.0]
    assert result["chosen"]["name"] == runs[1] and result["spearman"] == pytest.approx(1.0)
    assert main(["select", *runs, "--json", str(tmp_path / "sel.json")]) == 0
    out = capsys.readouterr().out
    assert "chosen by RankMe" in out and "Spearman(RankMe, probe accuracy) = 1.00" in out
    assert json.loads((tmp_path / "sel.json").read_text())["chosen"]["rankme"] == 30.0


def test_select_does_not_correlate_accuracy_with_r2(tmp_path, capsys):
    runs = [fake_run(tmp_path / "c1", 5.0, 0.7), fake_run(tmp_path / "c2", 30.0, 0.9)]
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "summary.json").write_text(json.dumps(
        {"recipe": "vicreg-mnist", "steps": 10, "rankme": 12.0, "probe": {"linear": {"r2": 0.1, "rmse": 2.0}}}))
    result = select_runs(runs + [str(tmp_path / "reg")])
    assert result["mixed_metrics"] and np.isnan(result["spearman"]) and result["chosen"]["name"] == runs[1]
    assert main(["select", *runs, str(tmp_path / "reg")]) == 0
    assert "mix classification (accuracy) and regression (R^2)" in capsys.readouterr().out
    # --json writes strict JSON: an unavailable Spearman is null, not NaN
    assert main(["select", *runs, str(tmp_path / "reg"), "--json", str(tmp_path / "sel.json")]) == 0
    text = (tmp_path / "sel.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in --json"))["spearman"] is None
    assert select_runs(runs)["spearman"] == pytest.approx(1.0) and not select_runs(runs)["mixed_metrics"]


def test_select_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["select", str(tmp_path / "empty")]) == 2
    assert "is not a run directory (no run.json)" in capsys.readouterr().err
    assert main(["select", str(tmp_path / "empty"), "--checkpoints"]) == 2
    assert "is not a run directory (no run.json)" in capsys.readouterr().err
    (tmp_path / "empty" / "run.json").write_text("{}")        # started, never finished
    assert main(["select", str(tmp_path / "empty")]) == 2
    assert "no summary.json" in capsys.readouterr().err
    assert main(["select", str(tmp_path / "missing")]) == 2


def test_select_checkpoints_of_a_tiny_run(tmp_path, tiny_overrides):
    from polyjepa.runner import pretrain

    run = tmp_path / "run"
    pretrain("ijepa-digits", out=str(run), overrides=tiny_overrides + ["eval.baselines=false", "eval.pool=mean"], progress=False,
             echo=lambda *_: None)
    result = select_runs([str(run)], checkpoints=True)
    assert [r["step"] for r in sorted(result["ranked"], key=lambda r: r["step"])] == [4, 8]
    assert all(r["rankme"] >= 1 and 0 <= r["accuracy"] <= 1 and r["probe"] == "knn" for r in result["ranked"])
    # unlabelled data have no test part: RankMe comes from the training embeddings (it was 1.0 of nothing)
    from sklearn.datasets import load_digits

    np.savez(tmp_path / "unlabelled.npz", images=load_digits().images[:200].astype(np.float32) / 16)
    result = select_runs([str(run)], checkpoints=True, data=str(tmp_path / "unlabelled.npz"))
    from polyjepa.diagnostics.rankme import rankme
    from polyjepa.runner import embed_run

    last = max(result["ranked"], key=lambda r: r["step"])          # the final encoder is the last checkpoint's
    want = rankme(torch.from_numpy(embed_run(str(run), str(tmp_path / "unlabelled.npz"))))
    assert last["rankme"] == pytest.approx(want, rel=1e-4) and want > 1.01 and last["accuracy"] is None
