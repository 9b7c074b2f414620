"""Training runs shared by the benchmark scripts (imported as ``_runs`` from beside them)."""
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
