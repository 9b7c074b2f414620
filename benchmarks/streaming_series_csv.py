"""A CSV of series larger than is comfortable in memory: the lazy path (data.stream=true) vs in memory.

    python benchmarks/streaming_series_csv.py [--rows 40000] [--length 600] [--steps 10] [--reads 30]
                                              [--repeats 2] [--folder DIR]

Generates, under ``--folder`` (default: a temporary folder), one CSV of ``--rows`` series (one per row, a header,
a ``label`` column of 4 classes, lengths from 3/4 of ``--length`` to ``--length``: shorter rows end in empty
cells, which pad them with NaN). Then, each in a fresh process with 1 torch thread and no DataLoader workers (so
that one process holds everything a path reads), prepares it as ``polyjepa pretrain tsjepa --data FILE`` does,
with and without ``data.stream=true``, reads ``--reads`` random batches and trains the recipe's model for
``--steps`` steps. The lazy path runs first with an empty cache (it parses the CSV into the memory-mapped cache),
then with that cache. Reports the time to get ready (parse or index + statistics, or load + normalise), batch
reads per second, training samples/s and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _memory import (fresh_cache, generate, interleaved, lazy_against_memory, prepare_read_train,
                     report, representative, scratch_folder)

RECIPE, OVERRIDES = "tsjepa", ["train.batch_size=32", "encoder.depth=2"]


def write_csv(path: Path, rows: int, length: int, seed: int = 0) -> None:
    """``rows`` noisy sines of 4 classes (frequency), ``length * 3/4`` to ``length`` steps, 5 significant digits."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("label," + ",".join(f"t{i}" for i in range(length)) + "\n")
        for r0 in range(0, rows, 1000):
            k = min(1000, rows - r0)
            label = rng.integers(0, 4, k)
            t = np.arange(length) / length
            x = np.sin(2 * np.pi * (2 + label[:, None]) * t + rng.uniform(0, 6.3, (k, 1)))
            x = x + rng.normal(0, .3, (k, length))
            n = rng.integers(3 * length // 4, length + 1, k)
            lines = []
            for i in range(k):
                lines.append(f"c{label[i]}," + ",".join(f"{v:.5g}" for v in x[i, :n[i]]) + "," * (length - n[i]))
            f.write("\n".join(lines) + "\n")
    tmp.replace(path)


def child(mode: str, source: str, steps: int, reads: int) -> dict:
    """Prepare, read and train in this process; returns the measurements."""
    from polyjepa.config import load_recipe

    cfg = load_recipe(RECIPE, OVERRIDES + [f"data.source={source}", f"data.stream={mode == 'lazy'}"])
    batch = int(cfg.train.batch_size)
    run = prepare_read_train(cfg, batch=batch, reads=reads, steps=steps)
    x, method = run.prepared.x_train, run.method
    return {"mode": mode, "type": type(x).__name__, "n_train": len(x), "n_test": len(run.prepared.x_test),
            "sample_shape": list(x.shape[1:]), "batch": batch, "ready_seconds": run.ready_seconds,
            "rss_ready_mb": run.rss_ready_mb, "reads_per_second": run.reads_per_second,
            "samples_per_second": run.samples_per_second, "peak_rss_mb": run.peak_rss_mb,
            "model_parameters": sum(p.numel() for p in method.parameters()),
            "encoder": f"{type(method.backbone.encoder).__name__} depth {len(method.backbone.encoder.blocks)}"
            if hasattr(method, "backbone") and hasattr(method.backbone, "encoder")
            and hasattr(method.backbone.encoder, "blocks") else type(method).__name__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--length", type=int, default=600)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each path, interleaved; the table takes each path's fastest training run and its "
                         "highest peak memory")
    ap.add_argument("--folder", default=None, help="where to generate the CSV (kept; reused when it exists)")
    ap.add_argument("--name", default="streaming_series_csv")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.reads)))
        return 0

    started = time.perf_counter()
    tmp = scratch_folder(args, "streaming-series-")
    base = Path(args.folder)
    source = base / f"series-{args.rows}x{args.length}.csv"
    generate(source, lambda: write_csv(source, args.rows, args.length))
    size = source.stat().st_size / 2**20
    fresh_cache(base)  # the first opening parses
    runs = interleaved(
        args.repeats, lambda rep: ("lazy-first", "lazy", "memory") if rep == 0 else ("lazy", "memory"),
        lambda mode: [__file__, "--child", mode.removesuffix("-first"), str(source), "--steps", str(args.steps),
                      "--reads", str(args.reads)],
        lambda r: f"ready in {r['ready_seconds']:.1f} s, {r['reads_per_second']:.1f} batch reads/s, "
                  f"{r['samples_per_second']:.1f} training samples/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"({r['type']}, {r['n_train']} train samples of {r['sample_shape']}, {r['encoder']}, "
                  f"{r['model_parameters']} parameters)")
    results = [representative(rs, pick="fastest", add={"path": mode}, highest=("peak_rss_mb", "rss_ready_mb"),
                              lowest=("ready_seconds",)) for mode, rs in runs.items()]
    cols = ["path", "on disk (MB)", "train samples", "ready (s)", "batch reads/s", "training samples/s",
            "RSS when ready (MB)", "peak RSS (MB)"]
    label = {"lazy-first": "lazy (data.stream=true), first opening: parses into the cache",
             "lazy": "lazy (data.stream=true)", "memory": "in memory"}
    rows = [[f"{label[r['path']]}: {r['type']}", round(size), r["n_train"], round(r["ready_seconds"], 1),
             round(r["reads_per_second"], 1), round(r["samples_per_second"], 1), round(r["rss_ready_mb"]),
             round(r["peak_rss_mb"])] for r in results]
    first = results[0]
    notes = [f"one CSV of {args.rows} series of {3 * args.length // 4}-{args.length} steps (header, a label column "
             f"of 4 classes, shorter rows end in empty cells), {size:.0f} MB; recipe {RECIPE} "
             f"({' '.join(OVERRIDES)}): {first['encoder']}, {first['model_parameters']} parameters, samples "
             f"{first['sample_shape']}",
             f"each path in a fresh process, 1 torch thread (OMP_NUM_THREADS=1), no DataLoader workers, fp32; "
             f"{args.reads} random batches read, then {args.steps} training steps (batch 32); {args.repeats} "
             f"interleaved run(s) of each path: the fastest run's samples/s and ready time, the highest peak memory"]
    by = {r["path"]: r for r in results}
    if "lazy" in by and "memory" in by:
        lz, mem = by["lazy"], by["memory"]
        notes.append(lazy_against_memory(lz["peak_rss_mb"], mem["peak_rss_mb"], lz["samples_per_second"],
                                         mem["samples_per_second"]))
    report(args.name, title="A CSV of series larger than memory: data.stream=true vs in memory", columns=cols,
           rows=rows, notes=notes, started=started, extra={"results": results, "args": vars(args) | {"folder": None}})
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
