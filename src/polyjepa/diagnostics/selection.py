"""Label-free model selection: rank runs or checkpoints by RankMe; check the ranking against probes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..eval.probes import probe_metric, probe_score


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant or n < 2."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"spearman needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their mean rank
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def _from_summary(run_dir: Path) -> dict | None:
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())
    if s.get("rankme") is None:
        return None
    linear = s.get("probe", {}).get("linear", {})
    return {"name": str(run_dir), "recipe": s.get("recipe"), "step": s.get("steps"), "rankme": float(s["rankme"]),
            "accuracy": probe_score(linear), "probe": "linear", "metric": probe_metric(linear)}


def _checkpoint_rows(run_dir: Path, data: str | None) -> list[dict]:
    from ..config import EvalConfig, dataclass_from
    from ..eval.embed import embed_array
    from ..eval.probes import knn_probe
    from ..runner import open_run, prepare_run_data
    from ..train.checkpoint import load_checkpoint, load_model_state
    from .rankme import rankme
    import torch

    run_dir, cfg, info = open_run(run_dir)
    prepared = prepare_run_data(cfg, info, data)
    ev = dataclass_from(cfg, "eval", EvalConfig)
    from ..build import build_method

    method = build_method(cfg, tuple(info["input_shape"]), info["seed"], info.get("meta"))
    rows = []
    for ckpt in sorted(p for p in (run_dir / "checkpoints").glob("step-*") if (p / "state.json").exists()):
        state, _, meta = load_checkpoint(ckpt)
        load_model_state(method, state, ckpt)
        enc = method.eval().encoder()
        test = embed_array(enc, prepared.x_test, pool=ev.pool, layers=ev.layers)
        train = embed_array(enc, prepared.x_train, pool=ev.pool, layers=ev.layers) \
            if prepared.y_train is not None or not len(test) else None
        # unlabelled data have no test part: RankMe of the training embeddings, as the run's summary has
        row = {"name": f"{run_dir}@{ckpt.name}", "recipe": cfg.name, "step": meta.get("step"),
               "rankme": rankme(torch.from_numpy(test if len(test) else train)), "accuracy": None, "probe": "knn",
               "metric": None}
        if prepared.y_train is not None:
            knn = knn_probe(train, prepared.y_train, test, prepared.y_test, k=ev.knn_k)
            row["accuracy"], row["metric"] = probe_score(knn), probe_metric(knn)
        rows.append(row)
    return rows


def select_runs(run_dirs: list[str], *, checkpoints: bool = False, data: str | None = None) -> dict:
    """Rank runs (their summary.json: test-set RankMe and linear probe) or every kept checkpoint
    (RankMe of the test embeddings and a kNN probe) by RankMe, highest first.

    Returns {"ranked": rows, "chosen": the top row, "spearman": Spearman(RankMe, probe accuracy) over the
    rows that have labels (nan when fewer than 2), "mixed_recipes": whether different recipes were compared}.
    RankMe ranks runs of one method well (Garrido et al., 2023); across methods it is not a fair judge.
    """
    if not run_dirs:
        raise UserError("name at least one run directory: polyjepa select RUN_DIR [RUN_DIR ...]")
    rows = []
    for d in run_dirs:
        path = Path(d)
        if not path.is_dir():
            raise UserError(f"{d} is not a directory: pass run directories written by 'polyjepa pretrain'")
        if not (path / "run.json").is_file() and not (path / "summary.json").is_file():
            raise UserError(f"{d} is not a run directory (no run.json): pass run directories written by "
                            f"'polyjepa pretrain'")
        if checkpoints:
            rows += _checkpoint_rows(path, data)
        else:
            row = _from_summary(path)
            if row is None:
                raise UserError(f"{d} has no summary.json with a RankMe (the run is unfinished): finish it with "
                                f"--resume {d}, or rank its checkpoints with --checkpoints")
            rows.append(row)
    rows.sort(key=lambda r: -r["rankme"])
    labelled = [r for r in rows if r["accuracy"] is not None]
    mixed_metrics = len({r["metric"] for r in labelled}) > 1  # accuracy and R^2 do not share a scale
    rho = spearman([r["rankme"] for r in labelled], [r["accuracy"] for r in labelled]) \
        if labelled and not mixed_metrics else float("nan")
    return {"ranked": rows, "chosen": rows[0], "spearman": rho,
            "mixed_recipes": len({r["recipe"] for r in rows}) > 1, "mixed_metrics": mixed_metrics}


def format_selection(result: dict) -> str:
    rows = result["ranked"]
    lines = [f"{'rank':>4}  {'RankMe':>8}  {'probe':>12}  run"]
    for i, r in enumerate(rows, 1):
        acc = "-" if r["accuracy"] is None else f"{r['probe']} {r['accuracy']:.4f}"
        lines.append(f"{i:>4}  {r['rankme']:>8.2f}  {acc:>12}  {r['name']}")
    lines.append(f"chosen by RankMe: {result['chosen']['name']}")
    rho = result["spearman"]
    if rho == rho:
        labelled = [r for r in rows if r["accuracy"] is not None]
        best = max(labelled, key=lambda r: r["accuracy"])
        lines.append(f"Spearman(RankMe, probe accuracy) = {rho:.2f} over {len(labelled)}; best by probe: {best['name']}")
    elif result.get("mixed_metrics"):
        lines.append("Spearman(RankMe, probe score): not computed: the runs mix classification (accuracy) and "
                     "regression (R^2) targets; select runs of one kind")
    else:
        lines.append("Spearman(RankMe, probe accuracy): not available (needs labels and at least 2 distinct values)")
    if result["mixed_recipes"]:
        lines.append("note: these runs use different recipes; RankMe is meant to compare runs of one method")
    return "\n".join(lines)
