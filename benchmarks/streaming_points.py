"""Point clouds from voxel grids larger than is comfortable in memory: the lazy path (data.stream=true) vs in memory.

    OMP_NUM_THREADS=1 python benchmarks/streaming_points.py [--grids 10000] [--side 32] [--steps 5] [--reads 30]
                                                            [--repeats 1] [--folder DIR]

Generates, under ``--folder`` (default: a temporary folder), a stored (uncompressed) .npz of ``--grids`` uint8
voxel grids of ``--side``^3 (boxes and balls of random size and place, 4 classes, with an official
X_train/X_test split of 5:1 and a few empty grids) as ModelNet's voxel sets are laid out. Then, each in a fresh
process with 1 torch thread and no DataLoader workers (so that one process holds everything a path reads),
prepares the data as ``polyjepa pretrain pointjepa --data FILE`` does, with and without ``data.stream=true``,
reads ``--reads`` random batches of 32, and trains the recipe's model (512 points, encoder 128x4) for
``--steps`` steps of batch 32. Reports the time to get ready (occupancy scan, or load and convert every grid),
batch reads per second, training samples/s, and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _memory import (generate, interleaved, lazy_against_memory, prepare_read_train, report,
                     representative, scratch_folder)

BATCH = 32


def write_grids(path: Path, n: int, side: int, seed: int = 0) -> None:
    """``n`` uint8 grids of boxes (classes 0-2: longest along x, y or z) and balls (class 3); every 500th empty."""
    import numpy as np

    rng = np.random.default_rng(seed)
    grids = np.zeros((n, side, side, side), np.uint8)
    y = np.arange(n) % 4
    ax = np.arange(side)
    for i in range(n):
        if i % 500 == 499:
            continue
        if y[i] == 3:
            c, r = rng.uniform(side * 0.35, side * 0.65, 3), rng.uniform(side * 0.15, side * 0.35)
            d = (ax[:, None, None] - c[0]) ** 2 + (ax[None, :, None] - c[1]) ** 2 + (ax[None, None, :] - c[2]) ** 2
            grids[i] = d <= r * r
            continue
        ext = rng.integers(side // 8, side // 3, 3)
        ext[y[i]] = rng.integers(side // 2, side - 2)
        lo = rng.integers(0, side - ext + 1)
        grids[i, lo[0]:lo[0] + ext[0], lo[1]:lo[1] + ext[1], lo[2]:lo[2] + ext[2]] = 1
    cut = n * 5 // 6
    np.savez(path, X_train=grids[:cut], y_train=y[:cut], X_test=grids[cut:], y_test=y[cut:])


def child(mode: str, data: str, steps: int, reads: int) -> dict:
    """Prepare, read and train in this process; returns the measurements."""
    import numpy as np

    from polyjepa.config import load_recipe

    cfg = load_recipe("pointjepa", [f"data.source={data}", f"data.stream={mode == 'lazy'}",
                                    f"train.batch_size={BATCH}"])
    # the first clouds, to compare the two paths
    run = prepare_read_train(cfg, batch=BATCH, reads=reads, steps=steps,
                             look=lambda x: np.asarray(x[np.arange(min(64, len(x)))], np.float64))
    x = run.prepared.x_train
    return {"mode": mode, "type": type(x).__name__, "n_train": len(x), "n_test": len(run.prepared.x_test),
            "sample_shape": list(x.shape[1:]), "dropped_empty": run.prepared.meta.get("dropped_empty"),
            "ready_seconds": run.ready_seconds, "rss_ready_mb": run.rss_ready_mb,
            "reads_per_second": run.reads_per_second, "samples_per_second": run.samples_per_second,
            "peak_rss_mb": run.peak_rss_mb, "model_parameters": sum(p.numel() for p in run.method.parameters()),
            "first_clouds": run.looked.round(5).tolist()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=int, default=10000)
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each path, interleaved; the table takes each "
                    "path's fastest training run and its highest peak memory")
    ap.add_argument("--folder", default=None, help="where to generate the data (kept; reused when it exists)")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.reads)))
        return 0

    started = time.perf_counter()
    tmp = scratch_folder(args, "streaming-points-")
    data = Path(args.folder) / f"grids-{args.grids}x{args.side}.npz"
    generate(data, lambda: write_grids(data, args.grids, args.side))
    size_mb = data.stat().st_size / 2**20
    runs = interleaved(
        args.repeats, lambda rep: ("lazy", "memory"),
        lambda mode: [__file__, "--child", mode, str(data), "--steps", str(args.steps), "--reads", str(args.reads)],
        lambda r: f"ready in {r['ready_seconds']:.1f} s, {r['reads_per_second']:.1f} batch reads/s, "
                  f"{r['samples_per_second']:.1f} training samples/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"({r['type']}, {r['n_train']} train / {r['n_test']} test clouds of {r['sample_shape']})")
    import numpy as np

    results = [representative(rs, pick="fastest", drop=("first_clouds",), highest=("peak_rss_mb", "rss_ready_mb"),
                              lowest=("ready_seconds",)) for rs in runs.values()]
    cols = ["path", "on disk (MB)", "train clouds", "ready (s)", "batch reads/s", "training samples/s",
            "RSS when ready (MB)", "peak RSS (MB)"]
    label = {"lazy": "lazy (data.stream=true)", "memory": "in memory"}
    rows = [[f"{label[r['mode']]}: {r['type']}", round(size_mb), r["n_train"], round(r["ready_seconds"], 1),
             round(r["reads_per_second"], 1), round(r["samples_per_second"], 1), round(r["rss_ready_mb"]),
             round(r["peak_rss_mb"])] for r in results]
    lz, mem = runs["lazy"][0], runs["memory"][0]
    speed = {m: max(r["samples_per_second"] for r in runs[m]) for m in runs}
    notes = [f"{args.grids} uint8 voxel grids of {args.side}^3 in a stored .npz (X_train/X_test 5:1, every 500th grid "
             f"empty: dropped {lz['dropped_empty']}), recipe pointjepa (clouds of {lz['sample_shape'][0]} surface "
             f"points, {lz['model_parameters']:,} parameters)",
             f"each path in a fresh process, 1 torch thread, no DataLoader workers, fp32; {args.reads} random batches "
             f"of {BATCH} read, then {args.steps} training steps of batch {BATCH}; {args.repeats} run(s) of each path",
             lazy_against_memory(max(r["peak_rss_mb"] for r in runs["lazy"]),
                                 max(r["peak_rss_mb"] for r in runs["memory"]), speed["lazy"], speed["memory"],
                                 times=False),
             f"train clouds: {lz['n_train']} lazy, {mem['n_train']} in memory; the first 64 differ by at most "
             f"{np.abs(np.array(lz['first_clouds']) - np.array(mem['first_clouds'])).max():.1e}"]
    report("streaming_points", title="Voxel-grid point clouds larger than memory: data.stream=true vs in memory",
           columns=cols, rows=rows, notes=notes, started=started,
           extra={"results": results, "args": vars(args) | {"folder": None}})
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
