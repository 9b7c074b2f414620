"""Series data loaders: UCR/UEA sets bundled with aeon (official split), .npy/.npz arrays, CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded, label_vector, labels_or_targets, read_numpy
from ..errors import UserError, require
from .series import check_series, pad_series

X_KEYS = ("series", "x", "X", "data", "inputs")
Y_KEYS = ("labels", "y", "targets", "target")


def aeon_datasets() -> list[str]:
    """Names of the classification sets that ship inside the installed aeon package."""
    try:
        import aeon.datasets
    except ImportError:
        return []
    root = Path(aeon.datasets.__file__).parent / "data"
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").exists())


def load_series(source: str, *, length: int | None = None, fitted: dict | None = None) -> Loaded:
    """Load a UCR/UEA set bundled with aeon by name (official train/test split), or a file.

    Files: .npy (n, L) or (n, C, L); .npz with the series under series/x/X/data/inputs and optional
    labels under labels/y/targets/target; .csv with one series per row (numbers only; an optional
    header whose label column is named label/y/target; empty cells at a row's end pad shorter
    series); the UCR 2018 archive's ``NAME_TRAIN.tsv`` (label first, no header), with the
    ``NAME_TEST.tsv`` beside it as the official test split. Series shorter than the longest are
    NaN-padded at the end. ``length`` pads (or, for a run, ``fitted["length"]`` pads) every series to
    that many steps. Labels that are numbers, not all whole, are a regression target (float64).
    """
    length = (fitted or {}).get("length", length)
    path, continuous = Path(source), False
    if path.exists():
        if path.suffix == ".npy":
            x, y, x_test, y_test = read_numpy(path), None, None, None
        elif path.suffix == ".npz":
            x, y = _load_npz(path)
            x_test = y_test = None
        elif (test_file := _ucr_pair(path)) is not None:
            (x, y), (x_test, y_test) = _load_csv(path, label_first=True), _load_csv(test_file, label_first=True)
        elif path.suffix in (".csv", ".tsv", ".txt"):
            x, y = _load_csv(path, label_first=path.name.upper().endswith(("_TRAIN.TSV", "_TEST.TSV")))  # UCR 2018
            x_test = y_test = None
        else:
            raise UserError(f"cannot read {source!r} as series: use .npy, .npz or .csv, or an aeon data set name")
    else:
        names = aeon_datasets()
        if source not in names:
            hint = f"one of {', '.join(names)}" if names else "an aeon data set name (pip install 'polyjepa[timeseries]')"
            raise UserError(f"{source!r} is neither a file nor a bundled data set: pass a .npy/.npz/.csv path or {hint}")
        x, y, x_test, y_test = _load_aeon(source)
        continuous = y.dtype.kind == "f"                  # an aeon regression set: float targets, even whole ones
    if x_test is not None and (isinstance(x, list) or isinstance(x_test, list)):  # unequal lengths: pad both parts
        longest = max(s.shape[-1] for s in list(x) + list(x_test))
        x, x_test = pad_series(list(x), longest), pad_series(list(x_test), longest)
    x = _as_series(x, str(source), length)
    if x_test is not None:
        x_test = _as_series(x_test, f"{source} (test)", x.shape[-1])
        if not continuous:
            y, y_test = labels_or_targets(y, y_test)
    elif y is not None:
        y = labels_or_targets(y)[0]
    if y is not None and len(y) != len(x):
        raise UserError(f"{source}: {len(y)} labels for {len(x)} series: store one label per series")
    return Loaded(x, y, path.stem if path.exists() else source, x_test, y_test, meta={"length": int(x.shape[-1])})


def _as_series(x, what: str, length: int | None) -> np.ndarray:
    if isinstance(x, list):
        x = pad_series(x)          # to the longest; the length check below names the fix
    x = check_series(x, what)
    if length is not None and x.shape[-1] != length:
        if x.shape[-1] > length:
            raise UserError(f"{what} has series of {x.shape[-1]} steps but the model takes at most {length}: "
                            f"crop them")
        x = np.concatenate([x, np.full(x.shape[:2] + (length - x.shape[-1],), np.nan, np.float32)], axis=-1)
    return x


def _ucr_pair(path: Path) -> Path | None:
    """The ``NAME_TEST.tsv`` beside a UCR 2018 ``NAME_TRAIN.tsv``, if ``path`` is one and it exists."""
    if not path.name.upper().endswith("_TRAIN.TSV"):
        return None
    tail = path.name[-10:-4]                              # "_TRAIN", in the file's own case
    test = path.with_name(path.name[:-10] + ("_TEST" if tail.isupper() else "_test") + path.suffix)
    return test if test.exists() else None


def _load_aeon(name: str):
    """(x, y, x_test, y_test) of a bundled set; a regression set (``@targetlabel true``) has float y."""
    require("aeon", "timeseries", "the bundled UCR/UEA sets")
    import aeon.datasets
    from aeon.datasets import load_classification, load_regression

    regression = False
    with open(Path(aeon.datasets.__file__).parent / "data" / name / f"{name}_TRAIN.ts", errors="replace") as f:
        for line in f:                          # the header ends at @data
            line = line.strip().lower()
            regression |= line.startswith("@targetlabel true")
            if line.startswith("@data"):
                break
    load = load_regression if regression else load_classification
    x, y = load(name, split="train")
    x_test, y_test = load(name, split="test")
    if regression:  # float targets even where every value is whole
        y, y_test = np.asarray(y, np.float64), np.asarray(y_test, np.float64)
    return x, y, x_test, y_test


def _load_npz(path: Path):
    with read_numpy(path) as z:
        keys = list(z.keys())
        xk = next((k for k in X_KEYS if k in keys), None)
        if xk is None:
            raise UserError(f"{path} has arrays {keys} but no series: store them under one of {', '.join(X_KEYS)}")
        yk = next((k for k in Y_KEYS if k in keys), None)
        return z[xk], (label_vector(z[yk]) if yk else None)


def _load_csv(path: Path, *, label_first: bool = False):
    """(list of series, labels or None); ``label_first``: no header, the first column is the label (UCR 2018)."""
    import csv

    delim = "\t" if path.suffix == ".tsv" else ","
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delim) if r]
    if not rows:
        raise UserError(f"{path} is empty: write one series per row")
    label_col = 0 if label_first else None
    if not label_first and not _is_number(rows[0][0] or "nan"):  # a header
        header = [h.strip().lower() for h in rows.pop(0)]
        label_col = next((header.index(k) for k in ("label", "y", "target") if k in header), None)
    labels, series = [], []
    for i, r in enumerate(rows, start=1):
        if label_col is not None:
            labels.append(r[label_col].strip())
            r = r[:label_col] + r[label_col + 1:]
        while r and r[-1].strip() == "":
            r = r[:-1]
        try:
            series.append(np.array([float(v) if v.strip() else np.nan for v in r], dtype=np.float32))
        except ValueError as e:
            raise UserError(f"{path} row {i}: {e}; write numbers only (labels in a column named label)") from None
    y = np.array(labels) if label_col is not None else None
    return series, y


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
