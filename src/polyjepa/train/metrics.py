"""metrics.csv: one row per logged step, columns grown as new metrics appear, resumable."""
from __future__ import annotations

import csv
from pathlib import Path

# Fabric's CSVLogger rewrites the file from memory and deletes earlier rows when a run restarts;
# a resumed run must keep its rows up to the checkpoint, so this small writer does that instead.


def _step(row: dict) -> int | None:
    """The row's step, or None for a row cut short by a kill during its write."""
    try:
        return int(float(row["step"])) if None not in row else None
    except (KeyError, TypeError, ValueError):
        return None


class MetricsCSV:
    """Rows of metrics in ``path``; each row also goes to the writers in ``also`` (e.g. TensorBoard)."""

    def __init__(self, path: Path, resume_step: int | None = None, also: tuple = ()):
        self.path = path
        self.also = tuple(also)
        self.rows: list[dict] = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if _step(r) is not None and _step(r) <= resume_step]
        self.columns = ["step"]
        for r in self.rows:
            self.columns += [k for k in r if k not in self.columns]
        self._rewrite()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for writer in self.also:
            writer.log(step, metrics)
        row = {"step": step, **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in metrics.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(row)

    def close(self) -> None:
        for writer in self.also:
            writer.close()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.path)
