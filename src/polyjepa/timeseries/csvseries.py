"""CSV/TSV series (one series per row) parsed a block of rows at a time into a memory-mapped ``.npy`` cache, for
``data.stream=true``: the series, their NaN padding and their labels are those of the in-memory ``series`` loader
(:func:`polyjepa.timeseries.data.load_series`), and memory holds a block of rows, not the file."""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .data import _is_number

CACHE_FORMAT = "series-csv-1"   # part of the cache key: a change of layout never reads an older cache
BLOCK_CELLS = 1 << 20           # cells parsed per block: about 8 MB of float64 values plus their strings
LABEL_NAMES = ("label", "y", "target")


def _reader(path: Path):
    """Rows of ``path`` as the in-memory loader reads them: the csv module, tab-separated for .tsv, blank lines
    skipped."""
    delim = "\t" if path.suffix == ".tsv" else ","
    f = open(path, newline="")
    return f, (r for r in csv.reader(f, delimiter=delim) if r)


def _scan(path: Path, label_first: bool) -> tuple[bool, int | None, list[str], np.ndarray]:
    """(header?, label column, labels, cells per row without the label and trailing empty cells): the first pass."""
    labels, lengths = [], []
    try:
        f, rows = _reader(path)
        with f:
            header, label_col = False, (0 if label_first else None)
            for i, r in enumerate(rows, start=1):
                if i == 1 and not label_first and not _is_number(r[0] or "nan"):
                    names = [h.strip().lower() for h in r]
                    header = True
                    label_col = next((names.index(k) for k in LABEL_NAMES if k in names), None)
                    continue
                if label_col is not None:
                    if label_col >= len(r):
                        raise UserError(f"{path} row {i - header} has {len(r)} cells and no "
                                        f"label in column {label_col + 1}: give every row its label")
                    labels.append(r[label_col].strip())
                    r = r[:label_col] + r[label_col + 1:]
                n = len(r)
                while n and r[n - 1].strip() == "":
                    n -= 1
                lengths.append(n)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path} as CSV ({type(e).__name__}: {e}): write one series per row of numbers")
    if not lengths:
        raise UserError(f"{path} is empty: write one series per row")
    return header, label_col, labels, np.asarray(lengths, np.int64)


def _parse_block(path: Path, rows: list[list[str]], first_row: int) -> np.ndarray:
    """The float64 values of a block of rows (label removed, trailing empty cells dropped), empty cells NaN;
    each cell parsed by Python's float, as the in-memory loader parses it."""
    from itertools import chain

    flat = list(chain.from_iterable(rows))
    try:
        return np.array(flat, dtype=np.float64)  # the common case: no empty cell inside a row
    except ValueError:
        pass
    out = []
    for k, r in enumerate(rows):  # empty cells, or a cell to name
        try:
            out += [float(v) if v.strip() else np.nan for v in r]
        except ValueError as e:
            raise UserError(f"{path} row {first_row + k}: {e}; write numbers only (labels in a column named "
                            f"label)") from None
    return np.asarray(out, np.float64)


def _fill(path: Path, label_first: bool, header: bool, label_col: int | None, lengths: np.ndarray,
          out: np.ndarray, at: int) -> None:
    """Parse ``path`` a block at a time into rows ``at..`` of ``out`` (n, 1, L), NaN-padded, checked as
    :func:`polyjepa.timeseries.series.check_series` checks series (inf, NaN inside a series, fewer than 2 steps)."""
    width = out.shape[-1]
    f, rows = _reader(path)
    with f:
        if header:
            next(rows)
        block, cells, start = [], 0, 0
        for r in rows:
            if start + len(block) >= len(lengths):
                raise UserError(f"{path} changed while it was read (more rows than a moment ago): run again")
            if label_col is not None:
                r = r[:label_col] + r[label_col + 1:]
            n, want = len(r), lengths[start + len(block)]
            while n and r[n - 1].strip() == "":
                n -= 1
            if n != want:
                raise UserError(f"{path} changed while it was read (row {start + len(block) + 1} has {n} cells, "
                                f"a moment ago {want}): run again")
            r = r[:n]
            block.append(r)
            cells += len(r)
            if cells >= BLOCK_CELLS:
                _write(path, block, lengths[start:start + len(block)], out, at + start, start + 1, width)
                start += len(block)
                block, cells = [], 0
        if block:
            _write(path, block, lengths[start:start + len(block)], out, at + start, start + 1, width)
        if start + len(block) != len(lengths):
            raise UserError(f"{path} changed while it was read (fewer rows than a moment ago): run again")


def _write(path: Path, block, lens: np.ndarray, out: np.ndarray, at: int, first_row: int, width: int) -> None:
    values = _parse_block(path, block, first_row)
    k = len(block)
    a = np.full((k, width), np.nan, np.float32)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    rid = np.repeat(np.arange(k), lens)
    a[rid, np.arange(len(values)) - np.repeat(starts, lens)] = values.astype(np.float32)
    if np.isinf(a).any():
        r = int(np.flatnonzero(np.isinf(a).any(1))[0])
        raise UserError(f"{path} contains inf in row {first_row + r}: remove or clip it")
    finite = np.isfinite(a)
    n_real = finite.sum(1)
    bad = ~(finite == (np.arange(width)[None] < n_real[:, None])).all(1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise UserError(f"{path} row {first_row + r} has an empty or NaN cell inside its series: only cells at a "
                        f"row's end may be empty (padding); impute missing values first")
    short = np.flatnonzero(n_real < 2)
    if len(short):
        r = int(short[0])
        raise UserError(f"{path} row {first_row + r} has {int(n_real[r])} value(s): series need at least 2 steps; "
                        f"drop that row")
    out[at:at + k, 0] = a


def csv_series_cache(files: list[Path], *, label_first: bool, cache: str | Path | None = None
                     ) -> tuple[Path, list[np.ndarray | None]]:
    """The CSV/TSV ``files`` (one series per row; a UCR pair: train then test) as one memory-mapped float32
    ``.npy`` of (rows, 1, longest row), NaN-padded at the end, and each file's label strings (None without a label
    column). Built once, two passes a block of rows at a time, into the user cache's ``series`` folder keyed by
    every file's path, size and modification time; written under a temporary name and renamed when complete."""
    from ..data.lazy import filled_npy
    from ..eval.cache import cache_dir

    ident = [CACHE_FORMAT, str(label_first)]
    for p in files:
        try:
            st = p.stat()
        except OSError as e:
            raise UserError(f"cannot read {p}: {e.strerror or e}") from None
        ident.append(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    key = hashlib.sha256("\n".join(ident).encode()).hexdigest()[:24]
    folder = Path(cache) if cache is not None else cache_dir() / "series"
    out, labels_at = folder / f"{files[0].stem}-{key}.npy", folder / f"{files[0].stem}-{key}-labels.npz"
    if out.exists() and labels_at.exists():
        with np.load(labels_at, allow_pickle=False) as z:
            return out, [z[f"y{i}"] if z[f"has{i}"] else None for i in range(len(files))]
    scans = [_scan(p, label_first) for p in files]
    width = max(int(s[3].max()) for s in scans)
    if width < 2:
        raise UserError(f"{files[0]} has series of {width} step(s): series need at least 2 steps")
    total = sum(len(s[3]) for s in scans)
    folder.mkdir(parents=True, exist_ok=True)
    labels = [np.array(s[2]) if s[1] is not None else None for s in scans]
    # a name of this process's own: the processes of a launch may build the same cache at once
    tmp = labels_at.with_name(f".{labels_at.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **{f"y{i}": (y if y is not None else np.zeros(0, "U1")) for i, y in enumerate(labels)},
                 **{f"has{i}": np.array(y is not None) for i, y in enumerate(labels)})
        tmp.replace(labels_at)
    finally:
        tmp.unlink(missing_ok=True)
    with filled_npy(out, (total, 1, width)) as mm:
        at = 0
        for p, (header, label_col, _, lengths) in zip(files, scans):
            _fill(p, label_first, header, label_col, lengths, mm, at)
            at += len(lengths)
    return out, labels
