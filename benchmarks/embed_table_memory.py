"""Peak memory of ``polyjepa embed`` on a Parquet table for a run trained with ``data.stream=true``, read lazily
(a batch of rows at a time, encoded with the run's schema, into a memory-mapped .npy) against read into memory;
each way in a fresh process.

    OMP_NUM_THREADS=1 python benchmarks/embed_table_memory.py --n 400000
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
from embed_memory import CHILD  # noqa: E402

from polyjepa.results import save_result  # noqa: E402

COLOURS = np.array(["red", "white", "rose", "orange", "green", "amber", "grey", "tawny"])


def block(rng: np.random.Generator, k: int, numeric: int, categorical: int):
    """``k`` rows: ``numeric`` float columns (5 % missing) and ``categorical`` text columns of 8 categories."""
    import pandas as pd

    cols = {f"x{j}": rng.normal(j, 1 + j, k) for j in range(numeric)}
    for j in range(numeric):
        cols[f"x{j}"][rng.random(k) < 0.05] = np.nan
    cols.update({f"c{j}": COLOURS[rng.integers(0, len(COLOURS), k)] for j in range(categorical)})
    return pd.DataFrame(cols)


def make_table(path: Path, n: int, numeric: int, categorical: int) -> None:
    """A Parquet file written 50,000 rows (one row group) at a time: the generator never holds the table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    for i in range(0, n, 50_000):
        part = pa.Table.from_pandas(block(rng, min(50_000, n - i), numeric, categorical), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, part.schema)
        writer.write_table(part)
    writer.close()


def encoder_folder(folder: Path, data: Path, overrides: list[str]) -> str:
    """An untrained tjepa encoder (data.stream=true) with the schema fitted on the file's first 100,000 rows, as the
    streamed table fits it, saved with save_pretrained."""
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf

    from polyjepa.config import load_recipe
    from polyjepa.export.pretrained import FORMAT, PretrainedEncoder, build_encoder
    from polyjepa.tabular.schema import fit_schema
    from polyjepa.tabular.stream import FIT_ROWS

    cfg = load_recipe("tjepa", ["data.stream=true", *overrides])
    head = next(pq.ParquetFile(data).iter_batches(batch_size=FIT_ROWS)).to_pandas()
    schema = fit_schema(head)
    config = {"format": FORMAT, "recipe": OmegaConf.to_container(cfg, resolve=True),
              "input_shape": [len(schema["columns"])], "seed": 0,
              "meta": {**schema, "target": None, "classes": None, "task": None}, "mean": None, "std": None,
              "embedding": {"pool": cfg.eval.pool, "layers": cfg.eval.layers, "dim": 0}}
    enc = PretrainedEncoder(build_encoder(config), config)
    enc.config["embedding"]["dim"] = enc._probe_width()
    enc.save_pretrained(folder)
    return (f"tjepa encoder {sum(p.numel() for p in enc.encoder.parameters())} parameters, "
            f"{enc.dim}-wide embeddings, {len(schema['columns'])} columns")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400_000)
    ap.add_argument("--numeric", type=int, default=12)
    ap.add_argument("--categorical", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--folder", default=None, help="where the data and outputs go (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", default=[])
    args = ap.parse_args()
    t0 = time.time()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="embed-table-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"table-{args.n}.parquet"
    if not data.exists():
        make_table(data, args.n, args.numeric, args.categorical)
    built = encoder_folder(folder / "encoder", data, args.overrides)
    runs = {}
    for mode in ("lazy", "memory"):
        out = folder / f"emb-{mode}.npy"
        res = subprocess.run([sys.executable, "-c", CHILD, str(folder / "encoder"), str(data), str(out), mode,
                              str(args.batch)], capture_output=True, text=True, check=True)
        runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    lazy, memory = np.load(folder / "emb-lazy.npy", mmap_mode="r"), np.load(folder / "emb-memory.npy", mmap_mode="r")
    diff = max(float(np.abs(lazy[i:i + 50_000] - memory[i:i + 50_000]).max()) for i in range(0, len(lazy), 50_000))
    size_mb = data.stat().st_size / 2 ** 20
    encoded_mb = args.n * (args.numeric + args.categorical) * 4 / 2 ** 20
    columns = ["data path", "rows", "Parquet file (MiB)", "encoded rows (MiB)", "process memory before embedding (MiB)",
               "peak process memory (MiB)", "peak RSS with mapped file pages (MiB)", "seconds"]
    rows = [[f"{m} (stream={m == 'lazy'})", r["rows"], round(size_mb), round(encoded_mb), round(r["anon_before_mb"]),
             round(r["anon_peak_mb"]), round(r["peak_mb"]), round(r["seconds"], 1)] for m, r in runs.items()]
    title = ("polyjepa embed of a Parquet table for a streamed run: lazy (record batches into a memory-mapped .npy) "
             "against in memory")
    print(f"built: {built}")
    print_table(title, columns, rows)
    print(f"largest difference between the two outputs: {diff:.2e}")
    save_result("embed-table-memory", columns=columns, rows=rows, title=title, seconds=time.time() - t0,
                notes=[built + f"; batch {args.batch}; each way in a fresh process, 1 thread",
                       "process memory: anonymous resident memory (RssAnon, sampled every 20 ms); the RSS column also "
                       "counts the pages of the memory-mapped input and output files, which the kernel can drop",
                       f"{args.n} rows of {args.numeric} numeric columns (5 % missing) and {args.categorical} text "
                       f"columns of 8 categories; largest difference between the two outputs {diff:.2e}"])


if __name__ == "__main__":
    main()
