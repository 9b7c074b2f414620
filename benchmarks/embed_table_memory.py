"""Peak memory of ``polyjepa embed`` on a Parquet table for a run trained with ``data.stream=true``, read lazily
(a batch of rows at a time, encoded with the run's schema, into a memory-mapped .npy) against read into memory;
each way in a fresh process.

    OMP_NUM_THREADS=1 python benchmarks/embed_table_memory.py --n 400000
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
    started = time.perf_counter()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="embed-table-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"table-{args.n}.parquet"
    if not data.exists():
        make_table(data, args.n, args.numeric, args.categorical)
    built = encoder_folder(folder / "encoder", data, args.overrides)
    runs = embed_each_way(folder, data, args.batch)
    diff = largest_difference(folder)
    size_mb = data.stat().st_size / 2 ** 20
    encoded_mb = args.n * (args.numeric + args.categorical) * 4 / 2 ** 20
    columns = ["data path", "rows", "Parquet file (MiB)", "encoded rows (MiB)", *EMBED_COLUMNS]
    rows = embed_rows(runs, [round(size_mb), round(encoded_mb)])
    embed_report("embed-table-memory", title="polyjepa embed of a Parquet table for a streamed run: lazy (record "
                 "batches into a memory-mapped .npy) against in memory", columns=columns, rows=rows, built=built,
                 batch=args.batch, data=f"{args.n} rows of {args.numeric} numeric columns (5 % missing) and "
                 f"{args.categorical} text columns of 8 categories", diff=diff, started=started)


if __name__ == "__main__":
    main()
