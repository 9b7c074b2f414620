"""Peak memory of ``polyjepa embed`` on a series file, read lazily (a batch at a time into a memory-mapped .npy)
against read into memory; each way in a fresh process.

    OMP_NUM_THREADS=1 python benchmarks/embed_memory.py --n 40000 --length 2048
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import print_table  # noqa: E402

from polyjepa.results import save_result  # noqa: E402

CHILD = """
import json, resource, sys, threading, time, torch
torch.set_num_threads(1)
import numpy as np
from polyjepa.export.pretrained import PretrainedEncoder


def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


peak = {"anon": 0.0}
done = threading.Event()


def sample():
    while not done.is_set():
        peak["anon"] = max(peak["anon"], anon_mb())
        time.sleep(0.02)


enc = PretrainedEncoder.from_pretrained(sys.argv[1])
before = anon_mb()
watch = threading.Thread(target=sample, daemon=True)
watch.start()
t = time.perf_counter()
emb = enc.embed(sys.argv[2], out=sys.argv[3], stream=sys.argv[4] == "lazy", batch_size=int(sys.argv[5]))
seconds = time.perf_counter() - t
done.set()
watch.join()
print(json.dumps({"seconds": seconds, "rows": int(emb.shape[0]), "width": int(emb.shape[1]),
                  "anon_before_mb": before, "anon_peak_mb": max(peak["anon"], anon_mb()),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


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
    t0 = time.time()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="embed-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "series.npy"
    if not data.exists():
        make_series(data, args.n, args.channels, args.length)
    built = encoder_folder(folder / "encoder", data, args.overrides)
    runs = {}
    for mode in ("lazy", "memory"):
        out = folder / f"emb-{mode}.npy"
        res = subprocess.run([sys.executable, "-c", CHILD, str(folder / "encoder"), str(data), str(out), mode,
                              str(args.batch)], capture_output=True, text=True, check=True)
        runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    diff = float(np.abs(np.load(folder / "emb-lazy.npy") - np.load(folder / "emb-memory.npy")).max())
    size_mb = data.stat().st_size / 2 ** 20
    columns = ["data path", "rows", "data (MiB)", "process memory before embedding (MiB)",
               "peak process memory (MiB)", "peak RSS with mapped file pages (MiB)", "seconds"]
    rows = [[f"{m} (stream={m == 'lazy'})", r["rows"], round(size_mb), round(r["anon_before_mb"]),
             round(r["anon_peak_mb"]), round(r["peak_mb"]), round(r["seconds"], 1)] for m, r in runs.items()]
    title = "polyjepa embed of an .npy of series: lazy (batches into a memory-mapped .npy) against in memory"
    print(f"built: {built}")
    print_table(title, columns, rows)
    print(f"largest difference between the two outputs: {diff:.2e}")
    save_result("embed-memory", columns=columns, rows=rows, title=title, seconds=time.time() - t0,
                notes=[built + f"; batch {args.batch}; each way in a fresh process, 1 thread",
                       "process memory: anonymous resident memory (RssAnon, sampled every 20 ms); the RSS column also "
                       "counts the pages of the memory-mapped input and output files, which the kernel can drop",
                       f"{args.n} series of {args.channels} x {args.length} float32; largest difference between the "
                       f"two outputs {diff:.2e}"])


if __name__ == "__main__":
    main()
