"""Peak memory of ``polyjepa embed`` on a series file, read lazily (a batch at a time into a memory-mapped .npy)
against read into memory; each way in a fresh process.

    OMP_NUM_THREADS=1 python benchmarks/embed_memory.py --n 40000 --length 2048
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import EMBED_COLUMNS, embed_each_way, embed_report, embed_rows, largest_difference  # noqa: E402


def make_series(path: Path, n: int, channels: int, length: int) -> None:
    """A random-walk series file written a block at a time (the generator never holds it)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, channels, length))
    rng = np.random.default_rng(0)
    for i in range(0, n, 1000):
        k = min(1000, n - i)
        mm[i:i + k] = np.cumsum(rng.normal(size=(k, channels, length)), axis=-1, dtype=np.float32)
    mm.flush()
    del mm


def encoder_folder(folder: Path, data: Path, overrides: list[str]) -> str:
    """An untrained tsjepa encoder (data.stream=true) with the file's statistics, saved with save_pretrained."""
    from omegaconf import OmegaConf

    from polyjepa.config import load_recipe
    from polyjepa.export.pretrained import FORMAT, PretrainedEncoder, build_encoder
    from polyjepa.timeseries.stream import NpySeries

    cfg = load_recipe("tsjepa", ["data.stream=true", *overrides])
    src = NpySeries(data)
    mean, std = src.channel_stats(2000)
    config = {"format": FORMAT, "recipe": OmegaConf.to_container(cfg, resolve=True),
              "input_shape": list(src.sample_shape), "seed": 0, "meta": {"length": src.sample_shape[-1]},
              "mean": mean, "std": std, "embedding": {"pool": "mean", "layers": 1, "dim": 0}}
    enc = PretrainedEncoder(build_encoder(config), config)
    enc.config["embedding"]["dim"] = enc._probe_width()
    enc.save_pretrained(folder)
    return (f"tsjepa encoder {sum(p.numel() for p in enc.encoder.parameters())} parameters, "
            f"{enc.dim}-wide embeddings, input {tuple(enc.input_shape)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40000)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--folder", default=None, help="where the data and outputs go (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", default=["encoder.depth=1"])
    args = ap.parse_args()
    started = time.perf_counter()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="embed-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "series.npy"
    if not data.exists():
        make_series(data, args.n, args.channels, args.length)
    built = encoder_folder(folder / "encoder", data, args.overrides)
    runs = embed_each_way(folder, data, args.batch)
    diff = largest_difference(folder)
    size_mb = data.stat().st_size / 2 ** 20
    columns = ["data path", "rows", "data (MiB)", *EMBED_COLUMNS]
    rows = embed_rows(runs, [round(size_mb)])
    embed_report("embed-memory", title="polyjepa embed of an .npy of series: lazy (batches into a memory-mapped "
                 ".npy) against in memory", columns=columns, rows=rows, built=built, batch=args.batch,
                 data=f"{args.n} series of {args.channels} x {args.length} float32", diff=diff, started=started)


if __name__ == "__main__":
    main()
