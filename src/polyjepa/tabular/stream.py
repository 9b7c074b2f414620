"""Parquet tables larger than memory: read in record batches with pyarrow, encoded once into a memory-mapped
array in the user cache, and indexed lazily by training, so memory holds a batch of rows, not the table."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.stream import LazySource
from ..errors import UserError

FIT_ROWS = 100_000     # rows the schema (categories, statistics, bin edges) is fitted on: the first ones
BATCH_ROWS = 65_536    # rows read, encoded and written per record batch
ENCODING_VERSION = 1


class RowView(LazySource):
    """Rows ``index`` of an (n, F) array (a memory map) as an indexable source: ``view[idx]`` reads those rows.

    It stands in for an in-memory array wherever training takes a lazy source (``MaskedBatches`` indexes it
    with a batch's sample indices and gets a float32 tensor); ``len``, ``shape`` and ``ndim`` are the view's.
    """

    def __init__(self, base: np.ndarray, index: np.ndarray):
        self.base, self.index = base, np.asarray(index, dtype=np.int64)
        self.sample_shape = tuple(base.shape[1:])

    def __getstate__(self) -> dict:
        # DataLoader workers get the file's name and reopen the map, not a pickled copy of every row
        name = getattr(self.base, "filename", None)
        return {"index": self.index, "sample_shape": self.sample_shape,
                **({"file": str(name)} if name else {"base": np.asarray(self.base)})}

    def __setstate__(self, state: dict) -> None:
        self.index, self.sample_shape = state["index"], state["sample_shape"]
        self.base = np.load(state["file"], mmap_mode="r") if "file" in state else state["base"]

    def __len__(self) -> int:
        return len(self.index)


    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, torch.Tensor):
            idx = idx.numpy()
        rows = self.index[idx]
        if np.ndim(rows) == 0:
            return torch.from_numpy(np.array(self.base[int(rows)], dtype=np.float32))
        order = np.argsort(rows, kind="stable")  # read the file forwards, then restore the batch's order
        out = np.empty((len(rows), *self.sample_shape), dtype=np.float32)
        out[order] = self.base[rows[order]]
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return f"RowView({len(self)} of {len(self.base)} rows x {self.sample_shape})"


def _parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("streaming a Parquet table needs pyarrow: pip install 'polyjepa[parquet]'") from None
    try:
        return pq.ParquetFile(path)
    except Exception as e:  # a truncated or non-Parquet file
        raise UserError(f"cannot read {path} as Parquet ({type(e).__name__}: {e}): re-create or re-copy it") from None


ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
TABLE_SUFFIXES = (".parquet", ".pq", *ARROW_SUFFIXES)


class _ArrowFile:
    """What :func:`stream_table` reads of a ``pyarrow.parquet.ParquetFile`` (``schema_arrow``,
    ``metadata.num_rows``, ``iter_batches``, ``read``) over an Arrow IPC file (Feather v2), memory-mapped:
    its record batches are read in place, ``batch_size`` rows at a time."""

    def __init__(self, path: Path):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self._reader = ipc.open_file(pa.memory_map(str(path), "r"))
        self.schema_arrow = self._reader.schema
        rows = sum(self._reader.get_batch(i).num_rows for i in range(self._reader.num_record_batches))
        self.metadata = type("Metadata", (), {"num_rows": rows})()

    def iter_batches(self, batch_size: int, columns: list[str]):
        for i in range(self._reader.num_record_batches):
            batch = self._reader.get_batch(i).select(columns)
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size)

    def read(self, columns: list[str]):
        return self._reader.read_all().select(columns)


def _arrow(path: Path) -> _ArrowFile:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UserError("streaming an Arrow table needs pyarrow: pip install 'polyjepa[parquet]'") from None
    try:
        return _ArrowFile(path)
    except Exception as e:  # a truncated file, or Feather v1 / the IPC stream format
        raise UserError(f"cannot read {path} as an Arrow IPC (Feather v2) file ({type(e).__name__}: {e}): "
                        f"re-create it, e.g. with pyarrow.feather.write_feather") from None


def is_table_file(path: Path) -> bool:
    """Whether ``path`` names a file that the streamed table reads (by its suffix): Parquet or Arrow IPC."""
    return path.suffix.lower() in TABLE_SUFFIXES


def open_table_file(path: Path):
    """pyarrow's reader of a Parquet file, or of an Arrow IPC file (memory-mapped), chosen by the suffix."""
    return _arrow(path) if path.suffix.lower() in ARROW_SUFFIXES else _parquet(path)


def fitted_schema(fitted: dict) -> dict:
    """The schema part (columns, kinds, categories, statistics, bin edges) of a trained run's table meta."""
    return {k: fitted[k] for k in ("schema", "columns", "kinds", "categories", "mean", "std", "edges")}


def _split_columns(columns: list[str], target: str | None, fitted: dict | None) -> tuple[str | None, list[str]]:
    """(the label column or None, the feature columns) of a file's ``columns``, as the table loader splits them:
    a column named 'target' is the label when none is given; a trained run's label column may be absent."""
    if target is None and "target" in columns:
        target = "target"
    if fitted and target is not None and target not in columns:
        target = None
    if target is not None and target not in columns:
        raise UserError(f"target column {target!r} is not in the table (columns: {columns[:20]}): set data.target to "
                        f"one of them, or data.target=null for no labels")
    return target, [c for c in columns if c != target]


def _fingerprint(path: Path, options: dict) -> str:
    st = path.stat()
    key = json.dumps({"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "options": options, "version": ENCODING_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def stream_table(source, *, target: str | None = None, train_rows: int | None = None, categorical=None,
                 n_bins: int = 16, max_int_categories: int | None = None, fitted: dict | None = None,
                 fit_rows: int = FIT_ROWS, batch_rows: int = BATCH_ROWS, cache: str | os.PathLike | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(x as a read-only memory map of (n, F) float32 encoded rows, labels or None, meta) of a Parquet file or an
    Arrow IPC (Feather v2) file (``.arrow``, ``.feather``, ``.ipc``).

    The schema is fitted on the first ``fit_rows`` rows (or reused from ``fitted``, a trained run's meta);
    the rows are then read ``batch_rows`` at a time and encoded as :func:`polyjepa.tabular.loader.load_table`
    encodes a whole table. The encoded array is written once to ``cache`` (default: the user cache), keyed by
    the file's path, size, modification time and the options, written to a temporary name and renamed, so an
    interrupted encoding is never read back. The label column is read alone, in one piece.
    """
    from ..data.lazy import filled_npy
    from ..eval.cache import cache_dir
    from .loader import encode_labels
    from .schema import AUTO_INT_CATEGORIES, encode, fit_schema

    path = Path(source)
    if not is_table_file(path) or not path.is_file():
        raise UserError(f"data.stream=true reads a table from a .parquet or Arrow IPC (.arrow, .feather) file, not "
                        f"{source!r}: convert it to Parquet, or drop data.stream to read it into memory")
    pf = open_table_file(path)
    target, features = _split_columns(list(pf.schema_arrow.names), target, fitted)
    n = pf.metadata.num_rows
    if n == 0:
        raise UserError(f"{path} has no rows")
    if fitted and "kinds" in fitted:
        schema = fitted_schema(fitted)
    else:
        head = []
        for batch in pf.iter_batches(batch_size=min(batch_rows, fit_rows), columns=features):
            head.append(batch.to_pandas())
            if sum(len(h) for h in head) >= fit_rows:
                break
        import pandas as pd

        frame = pd.concat(head, ignore_index=True).iloc[:fit_rows if train_rows is None else min(fit_rows, train_rows)]
        schema = fit_schema(frame, categorical="auto" if categorical in (None, "auto") else list(categorical),
                            max_int_categories=AUTO_INT_CATEGORIES if max_int_categories is None else max_int_categories,
                            n_bins=n_bins)
    y = classes = task = None
    if target is not None:
        labels = pf.read(columns=[target]).to_pandas()[target]
        y, classes = encode_labels(labels, (fitted or {}).get("classes"),
                                   None if (fitted or {}).get("task") is None else fitted["task"] == "regression")
        task = "regression" if classes is None else "classification"
    meta = {**schema, "target": target, "classes": classes, "task": task}

    folder = Path(cache) if cache is not None else cache_dir() / "tables"
    key = _fingerprint(path, {"schema": schema, "columns": features})
    out = folder / f"{path.stem}-{key}.npy"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with filled_npy(out, (n, len(schema["columns"]))) as mm:
            row = 0
            for batch in pf.iter_batches(batch_size=batch_rows, columns=features):
                part = encode(batch.to_pandas(), schema)
                mm[row:row + len(part)] = part
                row += len(part)
            if row != n:
                raise UserError(f"{path} gave {row} rows, but its footer says {n}: the file is damaged; re-create it")
    x = np.load(out, mmap_mode="r")
    if x.shape != (n, len(schema["columns"])):
        raise UserError(f"the cached encoding {out} does not match {path} ({x.shape}): delete it and run again")
    return x, y, meta


class TableBatches:
    """The rows of a Parquet or Arrow IPC file encoded with a trained run's schema, read in file order a record
    batch at a time: ``batches(k)`` yields (<= k, F) float32 arrays, so memory holds one batch of rows.

    This is how ``PretrainedEncoder.embed`` reads a table lazily. Each batch is encoded as
    :func:`polyjepa.tabular.loader.load_table` encodes the whole table with ``fitted`` (the run's meta): the
    same categories, statistics and columns, so the rows equal the in-memory loader's. The label column (the
    run's ``target``, else a column named 'target') is left unread. ``mean`` / ``std`` (per column) standardise
    the encoded rows as :func:`polyjepa.data.prepare.normalise` does, for a run that standardised its table.
    Unlike the training stream, nothing is cached: each row is read and encoded once, in order.

    Shapes:
        len(self) = n rows; sample_shape = (F,); batches(k) yields (<= k, F) float32.
    """

    def __init__(self, source, *, fitted: dict, target: str | None = None, mean=None, std=None):
        from .schema import check_columns

        self.path = Path(source)
        if not is_table_file(self.path):
            raise UserError(f"a table is read lazily from a .parquet or Arrow IPC (.arrow, .feather) file, not "
                            f"{str(source)!r}: convert it to Parquet, or read it into memory")
        if not self.path.is_file():
            raise UserError(f"{self.path} is not a file: pass the path of a .parquet or Arrow IPC file")
        if not fitted or "kinds" not in fitted:
            raise UserError("the run has no fitted table schema (its meta lacks the column kinds): embed with a run "
                            "trained on a table")
        self.schema = fitted_schema(fitted)
        self._file = open_table_file(self.path)
        arrow_schema = self._file.schema_arrow
        _, self.features = _split_columns(list(arrow_schema.names), target, fitted)
        # the columns as pandas sees them (a stored pandas index becomes the index, not a column), checked now
        check_columns(arrow_schema.empty_table().select(self.features).to_pandas(), self.schema)
        self.n = self._file.metadata.num_rows
        self.sample_shape = (len(self.schema["columns"]),)
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.sample_shape)

    def batches(self, rows: int):
        """The encoded rows in file order, at most ``rows`` at a time: (k, F) float32 arrays."""
        from ..data.prepare import normalise
        from .schema import encode

        seen = 0
        for batch in self._file.iter_batches(batch_size=rows, columns=self.features):
            part = encode(batch.to_pandas(), self.schema)
            seen += len(part)
            yield part if self.mean is None else normalise(part, self.mean, self.std)
        if seen != self.n:
            raise UserError(f"{self.path} gave {seen} rows, but its footer says {self.n}: the file is damaged; "
                            f"re-create it")

    def __repr__(self) -> str:
        return f"TableBatches({self.path.name}: {self.n} rows x {self.sample_shape[0]} columns)"
