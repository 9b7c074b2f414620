"""The stepwise theory laid over a training run's recorded embedding spectrum.

A run records its monitor embeddings' covariance eigenvalues (``spectrum.jsonl``) and its learning
rate (``metrics.csv``). For a joint-embedding objective, the linearised theory says mode j switches
on at a time proportional to 1/gamma_j, with gamma_j the eigenvalues of the contrastive operator of
the run's own views (:func:`polyjepa.theory.stepwise.pair_correlation` on input pixels). A deep
network's time unit and initial scale are unknown, so the overlay fits one constant c in
t_j = c / gamma_j (least squares in log t) and reports how well the measured step times follow the
predicted ratios: a strong claim for the linear model, a hypothesis for a deep network.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from .stepwise import pair_correlation, stepwise_modes

JOINT_EMBEDDING = ("barlow_twins", "vicreg", "simclr", "tico", "intl", "lejepa", "dino")
RESULT_FILE = "theory.json"


def effective_time(run_dir: Path, steps) -> np.ndarray:
    """t = sum of the learning rate over the steps before each of ``steps`` (the paper's lr x step),
    from the run's metrics.csv (the rate between logged steps is interpolated)."""
    path = Path(run_dir) / "metrics.csv"
    steps = np.asarray(steps, dtype=np.float64)
    if not path.exists():
        return steps
    with open(path, newline="") as f:
        rows = [(float(r["step"]), float(r["lr"])) for r in csv.DictReader(f) if r.get("lr") not in (None, "")]
    if not rows:
        return steps
    s, lr = np.array(sorted(rows)).T
    grid = np.arange(0, int(max(steps.max(), s.max())) + 1)
    rate = np.interp(grid, s, lr)
    t = np.concatenate([[0.0], np.cumsum(rate)])
    return t[np.clip(steps.astype(int), 0, len(t) - 1)]


def measured_step_times(times, eigenvalues, *, top: int = 8, frac: float = 0.5, log: bool = False,
                        min_share: float = 0.05) -> np.ndarray:
    """First time each of the top eigenvalues (columns of (T, D), descending) reaches ``frac`` of its
    final value (linear interpolation); nan for an eigenvalue that starts above it (no step seen).

    With ``log``, ``frac`` is taken on a log scale between the first and the final value (0.5: their
    geometric mean), for eigenvalues that grow over orders of magnitude from a small start; a mode
    whose final value is below ``min_share`` of the largest final value, or that grew less than 4x,
    has not (yet) been learned and gets nan.
    """
    from .stepwise import crossing_times

    ev = np.asarray(eigenvalues, dtype=np.float64)[:, :top]
    final = ev[-1]
    if log:
        lev = np.log(np.maximum(ev, 1e-300))
        span = lev[-1] - lev[0]
        out = crossing_times(times, (lev - lev[0]) / np.where(span > 0, span, np.nan), level=frac)
        out[~(span > np.log(4.0)) | (final < min_share * final.max())] = np.nan
        return out
    out = crossing_times(times, ev / np.where(final > 0, final, np.nan), level=frac)
    started_high = ev[0] >= frac * final
    out[started_high] = np.nan
    return out


def fit_step_times(gamma, measured) -> tuple[np.ndarray, float]:
    """(c / gamma_j, c) with c fitted to the finite measured times by least squares in log time."""
    g = np.asarray(gamma, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    ok = np.isfinite(m) & (m > 0) & (g > 0)
    if not ok.any():
        return np.full(g.shape, np.nan), float("nan")
    c = float(np.exp(np.mean(np.log(m[ok]) + np.log(g[ok]))))
    with np.errstate(divide="ignore"):
        return np.where(g > 0, c / g, np.inf), c


def spearman(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    return float(np.corrcoef(ra, rb)[0, 1])


def run_gamma(run_dir, *, data: str | None = None, pairs: int = 2000, top: int = 8, seed: int = 0) -> np.ndarray:
    """Top eigenvalues of the contrastive operator of the run's own views on its training inputs."""
    import torch

    from ..runner import _build_method, open_run, prepare_run_data

    run_dir, cfg, info = open_run(run_dir)
    prepared = prepare_run_data(cfg, info, data)
    method = _build_method(cfg, tuple(info["input_shape"]), info["seed"], info.get("meta"))
    views = getattr(method, "views", None)
    if views is None:
        raise UserError(f"{run_dir}'s method has no view maker: the stepwise theory needs a two-view run")
    x = torch.from_numpy(np.ascontiguousarray(prepared.x_train[:pairs]))
    with torch.no_grad():
        v = views(x, torch.Generator().manual_seed(seed))["global"]
    if v.shape[0] < 2:
        raise UserError("the run's view maker makes fewer than two global views; the theory needs pairs")
    a, b = v[0].flatten(1).double().numpy(), v[1].flatten(1).double().numpy()
    return stepwise_modes(pair_correlation(a, b, center=True), top)[0]


def objective_name(cfg) -> str | None:
    obj = cfg.get("objective") if hasattr(cfg, "get") else None
    return str(obj.get("name")) if obj is not None and obj.get("name") is not None else None


def require_joint_embedding(cfg) -> str:
    """The run's objective name; a UserError when it is not a joint-embedding objective."""
    name = objective_name(cfg)
    if name not in JOINT_EMBEDDING:
        raise UserError(f"the stepwise theory describes joint-embedding objectives ({', '.join(JOINT_EMBEDDING)}); "
                        f"this run's objective is {name or 'a masked-prediction one'}: no step times to predict")
    return name


def theory_overlay(run_dir, *, data: str | None = None, top: int = 8, pairs: int = 2000) -> dict:
    """Predicted vs measured step times of a joint-embedding run's spectrum; writes ``theory.json``
    and ``plots/spectrum_theory.png`` in the run directory and returns the record."""
    from ..report import plot_spectrum, read_spectrum
    from ..runner import open_run

    run_dir, cfg, _ = open_run(run_dir)
    name = require_joint_embedding(cfg)
    rows = read_spectrum(run_dir)
    if len(rows) < 3:
        raise UserError(f"{run_dir} has {len(rows)} recorded spectra (spectrum.jsonl); the overlay needs at least 3: "
                        f"train with a smaller train.monitor_every")
    steps = np.array([s for s, _ in rows])
    k = min(top, min(len(ev) for _, ev in rows))
    ev = np.array([ev[:k] for _, ev in rows])
    times = effective_time(run_dir, steps)
    measured = measured_step_times(times, ev, top=k)
    gamma = run_gamma(run_dir, data=data, pairs=pairs, top=k)
    predicted, c = fit_step_times(gamma, measured)
    ok = np.isfinite(measured)
    log_err = float(np.sqrt(np.mean(np.square(np.log(measured[ok] / predicted[ok]))))) if ok.any() else float("nan")
    record = {"objective": name, "modes": k, "gamma": gamma.tolist(), "fitted_c": c,
              "predicted_t": predicted.tolist(), "measured_t": [None if not np.isfinite(m) else float(m) for m in measured],
              "spearman": spearman(predicted, measured), "rms_log_error": log_err,
              "time": "sum of the learning rate over steps (lr x step)"}
    (Path(run_dir) / RESULT_FILE).write_text(json.dumps(record, indent=1))
    plots = Path(run_dir) / "plots"
    plots.mkdir(exist_ok=True)
    plot_spectrum(run_dir, plots, top=k, overlay={"times": times, "predicted": predicted, "measured": measured},
                  name="spectrum_theory.png")
    record["plot"] = str(plots / "spectrum_theory.png")
    return record


def format_overlay(record: dict) -> str:
    lines = [f"stepwise theory on a {record['objective']} run: t_j = c / gamma_j with c = {record['fitted_c']:.4g} "
             f"fitted (t = lr x step)", "", "| mode | gamma_j | predicted t_j | measured t_j |", "|---|---:|---:|---:|"]
    for j, (g, p, m) in enumerate(zip(record["gamma"], record["predicted_t"], record["measured_t"])):
        lines.append(f"| {j + 1} | {g:.4g} | {p:.4g} | {'-' if m is None else f'{m:.4g}'} |")
    lines += ["", f"Spearman(predicted, measured) {record['spearman']:.3f}; rms log error {record['rms_log_error']:.3f}",
              f"plot: {record.get('plot')}"]
    return "\n".join(lines)
