"""report.md with PNG plots of a run: loss, learning rate, RankMe, LiDAR and monitor kNN over training, the
embedding spectrum over training, the collapse alarm, the probe table."""
from __future__ import annotations

import csv
from pathlib import Path

from .eval.probes import probe_metric, probe_score


def _series(rows: list[dict], name: str) -> tuple[list[float], list[float]]:
    pts = [(float(r["step"]), float(r[name])) for r in rows if r.get(name) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def write_report(run_dir: Path, summary: dict, figures: list[tuple[str, str]] = ()) -> Path:
    """Write report.md (and plots/) for a finished run; ``figures`` are more (title, path under run_dir) images
    the method drew itself, shown after the training plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .runner import format_table

    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    panels = [("loss", "training loss", "loss"), ("lr", "learning rate", "lr"),
              ("rankme", "RankMe (monitor set)", "rankme"), ("monitor_knn", "kNN accuracy (R^2 for a continuous target; train slices)", "monitor_knn"),
              ("lidar", "LiDAR (monitor set, 4 views)", "lidar"),
              ("embedding_std", "embedding std (monitor set)", "embedding_std"),
              ("target_std", "target feature std", "target_std")]
    made = []
    for key, title, fname in panels:
        x, y = _series(rows, key)
        if not x:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(plots / f"{fname}.png")
        plt.close(fig)
        made.append((title, f"plots/{fname}.png"))

    bars = [("pretrained", summary.get("probe", {}))] + [
        (name, summary.get("baselines", {}).get(key, {})) for name, key in (("random init", "random_init"), ("raw input", "raw"))]
    bars = [(n, p) for n, p in bars if "linear" in p]
    if bars:
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        scores = {probe: [probe_score(p[probe]) for _, p in bars] for probe in ("linear", "knn")}
        for i, (probe, vals) in enumerate(scores.items()):
            ax.bar([j + 0.38 * i for j in range(len(bars))], vals, width=0.36, label=probe)
            for j, v in enumerate(vals):
                ax.text(j + 0.38 * i, v + 0.01, f"{v:.3f}", ha="center", fontsize=7)
        ax.set_xticks([j + 0.19 for j in range(len(bars))], [n for n, _ in bars])
        ax.set_ylim(min(0.0, *scores["linear"], *scores["knn"]), 1.08)
        ax.set_ylabel(f"test {probe_metric(bars[0][1]['linear'])}")
        ax.set_title("probes (same split, same probe)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(plots / "probes.png")
        plt.close(fig)
        made.insert(0, ("probe scores (accuracy; R^2 for a continuous target)", "plots/probes.png"))

    spectrum = plot_spectrum(run_dir, plots)
    if spectrum:
        made.insert(1 if bars else 0, ("embedding spectrum over training", spectrum))

    made += list(figures)
    lines = [f"# {summary['recipe']} on {summary['data']}", "", collapse_statement(rows, summary), "",
             "```", format_table(summary).strip(), "```", ""]
    lines += [f"- seed {summary.get('seed')}, {summary.get('world_size', 1)} process(es), stop: {summary.get('stop_reason')}",
              f"- embedding: {summary.get('embedding')}",
              f"- final loss {summary.get('final_loss')}", ""]
    for title, path in made:
        lines += [f"## {title}", "", f"![{title}]({path})", ""]
    out = run_dir / "report.md"
    from .train.checkpoint import atomic_write_text

    atomic_write_text(out, "\n".join(lines))
    return out


def collapse_statement(rows: list[dict], summary: dict, *, min_rankme: float = 2.0) -> str:
    """One plain sentence on whether the embeddings collapsed during training or at the end."""
    from .diagnostics.spectrum import rankme_floor

    flagged = [r for r in rows if r.get("collapse") not in (None, "") and float(r["collapse"]) > 0]
    final = summary.get("rankme")
    first = next((float(r["rankme"]) for r in rows if r.get("rankme") not in (None, "")), None)
    min_rankme = rankme_floor(first, min_rankme)
    if flagged:
        steps = ", ".join(str(int(float(r["step"]))) for r in flagged[:8]) + (" ..." if len(flagged) > 8 else "")
        last = flagged[-1]
        tail = f"; final test RankMe {final:.2f}." if final is not None else "."
        return (f"**COLLAPSE ALARM**: the embeddings collapsed at monitor step(s) {steps} (last: RankMe "
                f"{float(last['rankme']):.2f}, embedding std {float(last['embedding_std']):.2e}){tail}")
    if final is not None and final < min_rankme:
        return f"**COLLAPSE ALARM**: the final test embeddings have RankMe {final:.2f} < {min_rankme:g}."
    checked = sum(1 for r in rows if r.get("collapse") not in (None, ""))
    if checked:
        return f"No collapse: RankMe and embedding std stayed above the alarm thresholds at all {checked} checks."
    return "No collapse check was recorded during training."


def read_spectrum(run_dir: Path) -> list[tuple[int, list[float]]]:
    """(step, eigenvalues) rows of the run's spectrum.jsonl, in step order."""
    import json

    path = Path(run_dir) / "spectrum.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            out.append((int(row["step"]), [float(v) for v in row["eigenvalues"]]))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out)


def plot_spectrum(run_dir: Path, plots: Path, top: int = 8, *, overlay: dict | None = None,
                  name: str = "spectrum.png") -> str | None:
    """Eigenvalue spectra at every recorded step (left) and the top eigenvalues against the step (right).

    ``overlay`` ({"times": (T,) lr x step of each recorded spectrum, "predicted": (k,), "measured": (k,)},
    from :func:`polyjepa.theory.overlay.theory_overlay`) plots the right panel against t = lr x step with
    the predicted step times as dashed lines and the measured ones as dots, one colour per mode.
    """
    rows = read_spectrum(run_dir)
    if not rows:
        return None
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    cmap = plt.get_cmap("viridis")
    floor = 1e-12
    for i, (step, ev) in enumerate(rows):
        ev = np.maximum(np.asarray(ev), floor)
        ax1.plot(np.arange(1, len(ev) + 1), ev, color=cmap(i / max(len(rows) - 1, 1)), lw=1,
                 label=f"step {step}" if i in (0, len(rows) - 1) else None)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("eigenvalue index")
    ax1.set_title("covariance spectrum (dark: early)")
    ax1.legend(fontsize=7)
    steps = [s for s, _ in rows]
    k = min(top, min(len(ev) for _, ev in rows))
    x = steps if overlay is None else list(overlay["times"])
    colors = plt.get_cmap("tab10")
    for j in range(k):
        y = [max(ev[j], floor) for _, ev in rows]
        ax2.plot(x, y, marker="o" if len(rows) < 30 else None, ms=3, lw=1, color=colors(j % 10))
        if overlay is not None:
            p, m = overlay["predicted"][j], overlay["measured"][j]
            if np.isfinite(p):
                ax2.axvline(p, color=colors(j % 10), ls="--", lw=0.8)
            if np.isfinite(m):
                ax2.plot([m], [np.interp(m, x, y)], "o", color=colors(j % 10), ms=5, mec="k")
    ax2.set_yscale("log")
    if overlay is None:
        ax2.set_xlabel("step")
        ax2.set_title(f"top {k} eigenvalues over training")
    else:
        ax2.set_xlabel("t = lr x step")
        ax2.set_title("top eigenvalues; dashed: theory c/gamma_j, dots: measured", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(plots / name)
    plt.close(fig)
    return f"plots/{name}"
