"""report.md with PNG plots of a run: loss, learning rate, RankMe and monitor kNN over training, probe table."""
from __future__ import annotations

import csv
from pathlib import Path


def _series(rows: list[dict], name: str) -> tuple[list[float], list[float]]:
    pts = [(float(r["step"]), float(r[name])) for r in rows if r.get(name) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def write_report(run_dir: Path, summary: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .runner import format_table

    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    panels = [("loss", "training loss", "loss"), ("lr", "learning rate", "lr"),
              ("rankme", "RankMe (monitor set)", "rankme"), ("monitor_knn", "kNN accuracy (train slices)", "monitor_knn"),
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
        for i, probe in enumerate(("linear", "knn")):
            vals = [p[probe]["accuracy"] for _, p in bars]
            ax.bar([j + 0.38 * i for j in range(len(bars))], vals, width=0.36, label=probe)
            for j, v in enumerate(vals):
                ax.text(j + 0.38 * i, v + 0.01, f"{v:.3f}", ha="center", fontsize=7)
        ax.set_xticks([j + 0.19 for j in range(len(bars))], [n for n, _ in bars])
        ax.set_ylim(0, 1.08)
        ax.set_ylabel("test accuracy")
        ax.set_title("probes (same split, same probe)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(plots / "probes.png")
        plt.close(fig)
        made.insert(0, ("probe accuracy", "plots/probes.png"))

    lines = [f"# {summary['recipe']} on {summary['data']}", "", "```", format_table(summary).strip(), "```", ""]
    lines += [f"- seed {summary.get('seed')}, {summary.get('world_size', 1)} process(es), stop: {summary.get('stop_reason')}",
              f"- embedding: {summary.get('embedding')}",
              f"- final loss {summary.get('final_loss')}", ""]
    for title, path in made:
        lines += [f"## {title}", "", f"![{title}]({path})", ""]
    out = run_dir / "report.md"
    from .train.checkpoint import atomic_write_text

    atomic_write_text(out, "\n".join(lines))
    return out
