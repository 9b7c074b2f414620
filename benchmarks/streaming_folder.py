"""Pretraining from a large folder of JPEG images, decoded lazily in DataLoader workers vs held in memory.

    python benchmarks/streaming_folder.py [--n 100000] [--steps 40] [--batch 128] [--workers 2] [--folder DIR]

Generates ``--n`` JPEG files (28x28 grey, one sub-folder per class) from the bundled MNIST sample, each image a
random shift of one of its 6,000 digits (the folder is made by the benchmark, never shipped; ``--folder`` keeps
it for a re-run), then trains the quick-start model (``cjepa-mnist6k``'s C-JEPA, 1 thread) for ``--steps``
steps twice, each in a fresh process: once from ``ImageFolderStream`` (files decoded by ``--workers``
DataLoader workers as batches are drawn), once from the in-memory path (every file decoded into one array
first, as ``polyjepa pretrain --data FOLDER`` does). Reports for each: the time to get ready, training
samples/s, and peak resident memory of the training process and of its worker processes. The mode
``lazy-recompute`` is the lazy path with ``train.grad_checkpoint`` (each transformer block recomputed in the
backward pass), which takes the model's activations, not the data, out of the trainer's peak.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _memory import interleaved, peak_rss_mb, report, representative, scratch_folder

MODEL = ["train.threads=1"]


def make_folder(root: Path, n: int, seed: int = 0) -> float:
    """Write ``n`` JPEGs made from the bundled MNIST sample under ``root/<label>/``; returns the seconds taken."""
    import numpy as np
    from PIL import Image

    from polyjepa.data.sources import BUNDLED_DIR

    t = time.perf_counter()
    z = np.load(BUNDLED_DIR / "mnist6k.npz")
    x = z[[k for k in z.files if k in ("images", "x", "X")][0]]
    y = z[[k for k in z.files if k in ("labels", "y")][0]]
    x = (x.reshape(len(x), 28, 28) * (255 if x.max() <= 1 else 1)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    for c in np.unique(y):
        (root / str(int(c))).mkdir(parents=True, exist_ok=True)
    src = rng.integers(0, len(x), n)
    shifts = rng.integers(-2, 3, (n, 2))
    for i in range(n):
        a = np.roll(x[src[i]], tuple(shifts[i]), axis=(0, 1))
        Image.fromarray(a).save(root / str(int(y[src[i]])) / f"{i:06d}.jpg", quality=90)
    return time.perf_counter() - t


def child(mode: str, folder: str, steps: int, batch: int, workers: int) -> dict:
    """Train in this process from ``folder`` (mode: lazy or memory); returns the measurements."""
    import numpy as np
    import torch

    from polyjepa.build import build_augment, build_method
    from polyjepa.config import TrainConfig, load_recipe
    from polyjepa.runner import train_method

    torch.set_num_threads(1)
    t = time.perf_counter()
    recompute = mode.endswith("-recompute")
    mode = mode.removesuffix("-recompute")
    if mode == "lazy":
        from polyjepa.data.stream import ImageFolderStream

        x = ImageFolderStream(folder, mode="L")
        x.set_normalisation(*x.channel_stats(n=2000))
        n, shape = len(x), x.shape[1:]
    else:
        from polyjepa.data.sources import load_images

        arr = load_images(folder).x
        mean, std = arr.mean(axis=(0, 2, 3)), arr.std(axis=(0, 2, 3)) + 1e-8
        x = (arr - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
        x = np.ascontiguousarray(x, dtype=np.float32)
        del arr
        n, shape = len(x), x.shape[1:]
    ready = time.perf_counter() - t
    cfg = load_recipe("cjepa-mnist6k", MODEL + [f"train.batch_size={batch}"])
    method = build_method(cfg, tuple(shape), seed=0)
    tc = TrainConfig(batch_size=batch, max_steps=steps, checkpoint_every=0, monitor_every=0, num_workers=workers,
                     threads=1, precision="32-true", grad_checkpoint=recompute)
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as run:
        rec = train_method(method, x, train=tc, augment=build_augment(cfg), run_dir=run, progress=False)
    recomputed = sum(bool(m.grad_checkpoint) for m in method.modules() if hasattr(m, "grad_checkpoint"))
    params = sum(p.numel() for p in method.parameters())
    return {"mode": mode + ("-recompute" if recompute else ""), "n": n, "rss_before_training_mb": before,
            "parts_recomputed": recomputed, "model_parameters": params, "ready_seconds": ready,
            "samples_per_second": rec["samples_per_second"],
            "train_seconds": rec["train_seconds"],
            "peak_rss_mb": peak_rss_mb(),
            "worker_peak_rss_mb": peak_rss_mb(children=True),
            "skipped": len(getattr(x, "skipped", ()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--folder", default=None, help="where to generate the images (kept; reused when it exists)")
    ap.add_argument("--modes", default="lazy,memory,lazy-recompute")
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each mode, interleaved; the table takes each mode's median run by samples/s "
                         "(other jobs on the machine slow single runs) and its highest peak memory")
    ap.add_argument("--name", default="streaming_folder", help="result file stem under results/")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.steps, args.batch, args.workers)))
        return 0

    started = time.perf_counter()
    tmp = scratch_folder(args, "jpeg-folder-")
    root = Path(args.folder)
    existing = sum(1 for _ in root.rglob("*.jpg")) if root.exists() else 0
    gen_s = None
    if existing != args.n:
        if existing:
            raise SystemExit(f"{root} holds {existing} JPEGs, not {args.n}: pass an empty or new --folder")
        gen_s = make_folder(root, args.n)
        print(f"generated {args.n} JPEGs under {root} in {gen_s:.0f} s", flush=True)
    size_mb = sum(p.stat().st_size for p in root.rglob("*.jpg")) / 2**20
    runs = interleaved(
        args.repeats, lambda rep: args.modes.split(","),
        lambda mode: [__file__, "--child", mode, "--folder", str(root), "--steps", str(args.steps), "--batch",
                      str(args.batch), "--workers", str(args.workers)],
        lambda r: f"ready in {r['ready_seconds']:.1f} s, {r['samples_per_second']:.1f} samples/s, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB (workers {r['worker_peak_rss_mb']:.0f} MB; "
                  f"{r['model_parameters']:,} parameters, {r['parts_recomputed']} parts recomputed)")
    results = {mode: representative(rs, pick="median",
                                    highest=("peak_rss_mb", "worker_peak_rss_mb", "rss_before_training_mb"))
               for mode, rs in runs.items()}

    cols = ["data path", "images", "ready (s)", "training samples/s", "trainer RSS before training (MB)",
            "peak RSS, trainer (MB)", "peak RSS, one worker (MB)", "skipped files"]
    names = {"lazy": "lazy folder (ImageFolderStream)", "memory": "in memory (decoded array)",
             "lazy-recompute": "lazy folder, blocks recomputed (train.grad_checkpoint)",
             "memory-recompute": "in memory, blocks recomputed (train.grad_checkpoint)"}
    rows = [[names[m], r["n"], round(r["ready_seconds"], 1), round(r["samples_per_second"], 1),
             round(r["rss_before_training_mb"]), round(r["peak_rss_mb"]), round(r["worker_peak_rss_mb"]),
             r["skipped"]] for m, r in results.items()]
    notes = [f"{args.n} JPEGs of 28x28 ({size_mb:.0f} MB on disk) made from the bundled MNIST sample; "
             f"cjepa-mnist6k's model, batch {args.batch}, {args.steps} steps, {args.workers} DataLoader workers, "
             f"1 torch thread, fp32; each path in a fresh process, {args.repeats} interleaved run(s) each: the median "
             f"run's samples/s, the highest peak memory"]
    if "lazy" in results and "memory" in results:
        ratio = results["lazy"]["samples_per_second"] / results["memory"]["samples_per_second"]
        notes.append(f"lazy / in-memory training samples/s: {ratio:.2f}")
    if "lazy-recompute" in results and "memory-recompute" in results:
        ratio = results["lazy-recompute"]["samples_per_second"] / results["memory-recompute"]["samples_per_second"]
        notes.append(f"lazy / in-memory training samples/s, both with the blocks recomputed: {ratio:.2f}")
    if "lazy" in results and "lazy-recompute" in results:
        ratio = results["lazy-recompute"]["samples_per_second"] / results["lazy"]["samples_per_second"]
        notes.append(f"recomputing the blocks: {results['lazy-recompute']['parts_recomputed']} parts, "
                     f"samples/s x{ratio:.2f} against the plain lazy run")
    if gen_s is not None:
        notes.append(f"generating the folder took {gen_s:.0f} s")
    report(args.name, title="Pretraining from a folder of JPEGs: lazy decoding vs in memory", columns=cols, rows=rows,
           notes=notes, started=started, extra={"results": results, "n": args.n, "steps": args.steps,
                                                "batch": args.batch, "workers": args.workers})
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
