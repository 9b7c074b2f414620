"""Image-caption pairs larger than is comfortable in memory: the paired loader's lazy form (data.stream=true) vs
in memory.

    OMP_NUM_THREADS=1 python benchmarks/streaming_paired.py [--items 25000] [--side 64] [--steps 10] [--reads 30]
                                                            [--repeats 1] [--folder DIR]

Generates, under ``--folder`` (default: a temporary folder), a stored (uncompressed) .npz of ``--items`` uint8
RGB images of ``--side`` x ``--side`` (a coloured square on noise, 8 classes) with two captions each, labels and
an 80/20 train/test ``split``, as an image-caption set is laid out. Then, each in a fresh process with 1 torch
thread and no DataLoader workers (so that one process holds everything a path reads), loads the pairs as
``polyjepa pretrain clip-flickr8k --data FILE`` does, with and without ``data.stream=true``, reads ``--reads``
random batches of 32 training images, and trains the recipe's two towers for ``--steps`` steps of batch 32 with
the library's loop. The lazy path then decodes the evaluation's bounded sample (eval.max_bytes, 1 GiB), which the
in-memory path does not need. Reports the time to get ready, batch reads/s, training samples/s, and the
process's resident memory when ready, at its peak through training, and after the evaluation sample.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _memory import generate, interleaved, lazy_against_memory, peak_rss_mb, report, representative, scratch_folder

BATCH = 32
WORDS = ("red", "green", "blue", "yellow", "cyan", "magenta", "white", "black")


def write_pairs(path: Path, n: int, side: int, seed: int = 0) -> None:
    """``n`` uint8 images (n, side, side, 3) of a square of class colour on noise, two captions each, labels, split;
    written a block at a time into one stored .npz."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(WORDS)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
                        [255, 255, 255], [0, 0, 0]], np.uint8)
    images = np.empty((n, side, side, 3), np.uint8)
    for s in range(0, n, 1000):
        k = min(1000, n - s)
        images[s:s + k] = rng.integers(0, 128, (k, side, side, 3), dtype=np.uint8)
        for j in range(k):
            w = int(rng.integers(side // 4, side // 2))
            r, c = rng.integers(0, side - w, 2)
            images[s + j, r:r + w, c:c + w] = colours[y[s + j]]
    sizes = ("small", "large", "bright", "dark")
    captions = np.array([[f"a {sizes[rng.integers(4)]} {WORDS[t]} square", f"{WORDS[t]} on a noisy background"]
                         for t in y])
    split = np.where(rng.random(n) < 0.8, "train", "test")
    np.savez(path, images=images, captions=captions, labels=y, split=split)


def child(mode: str, data: str, steps: int, reads: int) -> dict:
    """Load, read and train in this process; returns the measurements."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from polyjepa.config import TrainConfig, dataclass_from, load_recipe
    from polyjepa.paired.run import PairedBuild, evaluation_rows, facts_of, load_run_pairs, pairs_subset, train_arrays
    from polyjepa.train.loop import TrainJob, fit

    torch.set_num_threads(1)
    cfg = load_recipe("clip-flickr8k", [f"data.source={data}", f"data.stream={mode == 'lazy'}",
                                        f"train.batch_size={BATCH}", f"train.max_steps={steps}", "train.threads=1",
                                        "train.precision=32-true", "train.checkpoint_every=0"])
    t = time.perf_counter()
    pairs = load_run_pairs(cfg)
    ready = time.perf_counter() - t
    rss_ready = peak_rss_mb()
    a, b, ids, y = train_arrays(pairs)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(reads):
        a[np.sort(rng.choice(len(a), BATCH, replace=False))]
    read_s = time.perf_counter() - t
    first = a[np.arange(16)]
    first = first.numpy() if hasattr(first, "numpy") else first
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    build = PairedBuild(cfg_dict, facts_of(pairs, False), 0, (a, b, ids, y))
    tc = dataclass_from(cfg, "train", TrainConfig)
    with tempfile.TemporaryDirectory() as run:
        rec = fit(TrainJob(build=build, x_train=np.arange(len(a), dtype=np.float32)[:, None], train=tc,
                           run_dir=run, seed=0, progress=False))
    peak_train = peak_rss_mb()
    sample = None
    if mode == "lazy":
        rows, note = evaluation_rows(pairs, None, 1 << 30)
        pairs_subset(pairs, rows)
        sample = note
    return {"mode": mode, "type": type(pairs.a).__name__, "n_train": int(pairs.n_train),
            "n_test": int(pairs.test.sum()), "sample_shape": list(pairs.a.shape[1:]), "ready_seconds": ready,
            "rss_ready_mb": rss_ready, "reads_per_second": reads / read_s,
            "samples_per_second": rec["samples_per_second"], "peak_train_rss_mb": peak_train,
            "peak_rss_mb": peak_rss_mb(), "eval_sample": sample, "first_images": first.round(5).tolist()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=25000)
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each path, interleaved; the table takes each "
                    "path's fastest training run and its highest memory")
    ap.add_argument("--folder", default=None, help="where to generate the data (kept; reused when it exists)")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.reads)))
        return 0

    started = time.perf_counter()
    tmp = scratch_folder(args, "streaming-paired-")
    data = Path(args.folder) / f"pairs-{args.items}x{args.side}.npz"
    generate(data, lambda: write_pairs(data, args.items, args.side))
    size_mb = data.stat().st_size / 2**20
    runs = interleaved(
        args.repeats, lambda rep: ("lazy", "memory"),
        lambda mode: [__file__, "--child", mode, str(data), "--steps", str(args.steps), "--reads", str(args.reads)],
        lambda r: f"ready in {r['ready_seconds']:.1f} s, {r['reads_per_second']:.1f} batch reads/s, "
                  f"{r['samples_per_second']:.1f} training samples/s, peak RSS through training "
                  f"{r['peak_train_rss_mb']:.0f} MB, {r['peak_rss_mb']:.0f} MB with the evaluation sample "
                  f"({r['type']}, {r['n_train']} train / {r['n_test']} test pairs)")
    import numpy as np

    from polyjepa.paired.stream import STATS_ROWS

    results = [representative(rs, pick="fastest", drop=("first_images",),
                              highest=("peak_rss_mb", "peak_train_rss_mb", "rss_ready_mb"), lowest=("ready_seconds",))
               for rs in runs.values()]
    cols = ["path", "on disk (MB)", "train pairs", "ready (s)", "batch reads/s", "training samples/s",
            "RSS when ready (MB)", "peak RSS through training (MB)", "peak RSS with the evaluation sample (MB)"]
    label = {"lazy": "lazy (data.stream=true)", "memory": "in memory"}
    rows = [[f"{label[r['mode']]}: {r['type']}", round(size_mb), r["n_train"], round(r["ready_seconds"], 1),
             round(r["reads_per_second"], 1), round(r["samples_per_second"], 1), round(r["rss_ready_mb"]),
             round(r["peak_train_rss_mb"]), round(r["peak_rss_mb"]) if r["mode"] == "lazy" else "-"]
            for r in results]
    lz, mem = runs["lazy"][0], runs["memory"][0]
    speed = {m: max(r["samples_per_second"] for r in runs[m]) for m in runs}
    peak = {m: max(r["peak_train_rss_mb"] for r in runs[m]) for m in runs}
    ev = lz["eval_sample"]
    notes = [f"{args.items} uint8 RGB images of {args.side}x{args.side} with 2 captions each in a stored .npz "
             f"(labels, an 80/20 split column); recipe clip-flickr8k (ViT patch 4, width 96, depth 2; text "
             f"transformer 96 x 2)",
             f"each path in a fresh process, 1 torch thread, no DataLoader workers, fp32; {args.reads} random batches "
             f"of {BATCH} read, then {args.steps} training steps of batch {BATCH}; {args.repeats} run(s) of each path",
             lazy_against_memory(peak["lazy"], peak["memory"], speed["lazy"], speed["memory"],
                                 what="peak RSS through training"),
             f"the lazy path's evaluation sample: {ev['train']} train / {ev['test']} test pairs of {ev['of_train']} / "
             f"{ev['of_test']}, side a decoded as float32 within eval.max_bytes=1 GiB",
             f"train pairs: {lz['n_train']} lazy, {mem['n_train']} in memory; the first 16 images differ by at most "
             f"{np.abs(np.array(lz['first_images']) - np.array(mem['first_images'])).max():.1e}"
             + (f" (the lazy channel statistics come from {STATS_ROWS:,} of the {args.items:,} images, the in-memory "
                f"ones from all)" if args.items > STATS_ROWS else " (both statistics from every image)")]
    report("streaming_paired", title="Image-caption pairs larger than memory: data.stream=true vs in memory",
           columns=cols, rows=rows, notes=notes, started=started,
           extra={"results": results, "args": vars(args) | {"folder": None}})
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
