"""Training runs and printed tables shared by the benchmark scripts (imported as ``_runs`` from beside them)."""
from __future__ import annotations

import tempfile


def pretrain_for_minutes(name: str, recipe: str, overrides: list[str], data: str, minutes: float, threads: int,
                         seed: int):
    """Pretrain ``recipe`` on ``data`` for ``minutes`` of training at ``threads`` torch threads in a new temporary
    run directory, quietly; returns (summary, run directory, config, run.json, the trained method)."""
    import torch

    torch.set_num_threads(threads)
    from polyjepa.runner import load_run_method, open_run, pretrain

    out = tempfile.mkdtemp(prefix=f"{name}-")
    summary = pretrain(recipe, data=data, out=out, max_minutes=minutes, seed=seed, progress=False,
                       overrides=[*overrides, f"train.threads={threads}", "train.max_epochs=1000"],
                       echo=lambda *a, **k: None)
    run_dir, cfg, info = open_run(out)
    return summary, run_dir, cfg, info, load_run_method(run_dir, cfg, info)[0]


def print_table(head: str, columns: list[str], rows: list[list]) -> None:
    """Print ``head`` and the rows as a Markdown table; columns of numbers (and blanks) are right-aligned."""
    def numeric(i: int) -> bool:
        return all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows if r[i] not in ("", None))

    print(f"\n{head}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "".join("---:|" if numeric(i) else "---|" for i in range(len(columns))))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
