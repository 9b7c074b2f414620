"""Benchmark results as data: one JSON file per benchmark under ``results/``, rendered into the docs.

A benchmark calls :func:`save_result` once with the table it printed; ``scripts/render_results.py``
turns every file into a Markdown table, so the numbers in the README and docs are read from the
files and cannot drift from what was measured.

Schema ``polyjepa-result/1``::

    {"schema": "polyjepa-result/1", "name": "quickstart-digits", "title": "...",
     "command": "python benchmarks/....py --seed 0", "date": "2026-12-04",
     "machine": {"cpu": "...", "cores": 2, "threads": 2, "torch": "2.13.0", "python": "3.11.7"},
     "seconds": 123.4,
     "columns": ["representation", "linear", "kNN"],
     "rows": [["I-JEPA encoder", 0.97, 0.95], ...],
     "notes": ["one sentence per finding"],
     "extra": {...},                                  # anything else the benchmark wants to keep
     "probe_version": 2}                              # the probes' version (absent: 1)
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

SCHEMA = "polyjepa-result/1"
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


MATRIX_ISA = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")  # what decides a CPU's fp32 and bf16 GEMM speed


def cpu_matrix_isa() -> str:
    """The CPU's matrix-relevant instruction sets from ``/proc/cpuinfo`` (e.g. 'avx512_bf16 avx512f avx2'): a
    model name such as 'AMD EPYC' alone does not say whether the CPU has bf16 units. Empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in MATRIX_ISA if f in flags)
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, torch threads, versions."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    isa = cpu_matrix_isa()
    if isa:
        info["isa"] = isa
    try:
        import torch
        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _probe_version() -> int:
    """The probes' version (``polyjepa.eval.cache.PROBE_VERSION``): results written before it was recorded
    used version 1, the linear probe's stop at 200 iterations and tol 1e-3."""
    from .eval.cache import PROBE_VERSION

    return PROBE_VERSION


def save_result(name: str, *, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "",
                command: str | None = None, seconds: float | None = None, notes: Sequence[str] = (),
                extra: dict[str, Any] | None = None, directory: str | os.PathLike | None = None) -> Path:
    """Write ``results/<name>.json`` (atomically) and return its path.

    Args:
        name: file stem, lower case with dashes (``quickstart-digits``).
        columns: the table's header; rows: its rows, each as long as ``columns``.
        command: how to reproduce it (default: the running command line).
        directory: where to write (default: the repository's ``results/``; env ``POLYJEPA_RESULTS``).
    """
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"result name {name!r} must be a plain file stem such as 'quickstart-digits'")
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"result {name!r}: row {i} has {len(row)} cells for {len(columns)} columns")
    if command is None:
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    record = {"schema": SCHEMA, "name": name, "title": title, "command": command,
              "date": _dt.date.today().isoformat(), "machine": machine(), "seconds": seconds,
              "columns": list(columns), "rows": _plain([list(r) for r in rows]), "notes": list(notes),
              "extra": _plain(extra or {}), "probe_version": _probe_version()}
    out_dir = Path(directory or os.environ.get("POLYJEPA_RESULTS") or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def parse_markdown_table(text: str) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the first Markdown table in ``text``; cells that are numbers become numbers.

    Bold markers are dropped (``**0.97**`` -> 0.97); other cells stay strings, empty cells are None.
    """
    def value(cell: str) -> Any:
        cell = cell.strip().replace("**", "")
        if not cell:
            return None
        try:
            return int(cell) if cell.lstrip("-").isdigit() else float(cell)
        except ValueError:
            return cell

    table = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(table) < 2:
        raise ValueError("no Markdown table (a header line, a --- line, rows) in the text")
    split = [[c for c in line.strip().strip("|").split("|")] for line in table]
    columns = [c.strip().replace("**", "") for c in split[0]]
    rows = [[value(c) for c in cells] for cells in split[2:]]
    return columns, rows


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read one result file and check its schema."""
    record = json.loads(Path(path).read_text())
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} result (schema {record.get('schema')!r})")
    return record


def render_markdown(record: dict[str, Any], digits: int = 4) -> str:
    """The result as a Markdown table, followed by its command and machine line."""
    def decimals(v: Any) -> int:  # what a float needs, at most ``digits``
        if not isinstance(v, float) or abs(v) >= 1e4:
            return 0
        return len(f"{v:.{digits}f}".rstrip("0").partition(".")[2])

    cols = record["columns"]
    # one number of decimals per column (the most any of its cells needs), so 0.92 prints as 0.9200 beside 0.9833
    places = [max((decimals(row[i]) for row in record["rows"]), default=0) for i in range(len(cols))]

    def cell(v: Any, i: int) -> str:
        if isinstance(v, float):
            return f"{v:.{places[i]}f}" if abs(v) < 1e4 else f"{v:.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    lines += ["| " + " | ".join(cell(v, i) for i, v in enumerate(row)) + " |" for row in record["rows"]]
    m = record.get("machine", {})
    cpu = f"{m['cpu']} ({m['isa']})" if m.get("cpu") and m.get("isa") else m.get("cpu")
    where = ", ".join(x for x in (cpu, f"{m['threads']} threads" if m.get("threads") else None,
                                  f"torch {m['torch']}" if m.get("torch") else None) if x)
    took = f", {record['seconds'] / 60:.1f} min" if record.get("seconds") else ""
    copied = "; transcribed from the run's printed table" if (record.get("extra") or {}).get("transcribed") else ""
    lines += ["", f"`{record['command']}` ({where or 'machine not recorded'}, {record['date']}{took}{copied})"]
    lines += [""] + [f"- {n}" for n in record.get("notes", [])] if record.get("notes") else []
    return "\n".join(lines)
