"""A table's schema (column kinds, category vocabularies, numeric statistics) and the encoding it defines.

The schema is learnt from the training table and stored as JSON (``Loaded.meta``, a run's run.json,
a fitted ``TabularEmbedder``), so that new data are encoded exactly as the training data were.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError, require, warn

SCHEMA = "polyjepa-table/1"
AUTO_INT_CATEGORIES = 64  # an integer column with at most this many distinct values is read as categorical


def _is_missing(v) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, pd.NA and NaT are not equal to themselves
    except TypeError:
        return False


def category_key(v) -> str:
    """The vocabulary key of a category value: integer-valued floats read like the integer (1.0 -> '1')."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return str(v)


def _kind(series, name: str, categorical, max_int_categories: int) -> str:
    import pandas as pd

    dtype = series.dtype
    if categorical != "auto":
        return "cat" if name in categorical else _numeric_kind(series, name)
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "cat"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype) \
            or pd.api.types.is_complex_dtype(dtype):
        what = "Complex data not supported: " if pd.api.types.is_complex_dtype(dtype) else ""
        raise UserError(f"{what}column {name!r} has dtype {dtype}, which cannot be encoded: convert it to numbers "
                        f"(e.g. a timestamp to seconds) or to strings, or drop it")
    if pd.api.types.is_integer_dtype(dtype):
        distinct = series.nunique(dropna=True)
        return "cat" if distinct <= max_int_categories and distinct <= max(2, len(series) // 2) else "num"
    if pd.api.types.is_numeric_dtype(dtype):
        return "num"
    _warn_if_mostly_numbers(series, name)
    return "cat"  # object / string columns


def _warn_if_mostly_numbers(series, name: str) -> None:
    """A text column whose values are nearly all numbers is most likely a numeric column with a typo in a few
    cells: read as categorical it becomes one category per distinct number, so say so."""
    import pandas as pd

    present = series.dropna()
    if len(present) < 10:
        return
    numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    text = present[numbers.isna()]
    if 0 < len(text) <= 0.05 * len(present) and numbers.nunique() > 10:
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(text.astype(str)))[:3])
        warn(f"column {name!r} is read as categorical ({present.nunique()} categories) because {len(text)} of its "
             f"{len(present)} values are not numbers ({examples}): fix those cells (empty for missing) to read it as "
             f"numbers, or list the column in data.categorical to keep it categorical")


def _numeric_kind(series, name: str) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype) \
            and not pd.api.types.is_complex_dtype(series.dtype):
        return "num"
    raise UserError(f"column {name!r} holds non-numeric values ({series.dtype}) but is not listed as "
                    f"categorical: add it to the categorical columns, or convert it to numbers")


def _check_hashable(series, name: str) -> None:
    try:
        set(series.dropna().tolist())
    except TypeError:
        raise UserError(f"column {name!r} holds unhashable values (e.g. lists or dicts), which cannot be encoded: "
                        f"flatten them into separate columns or convert them to strings") from None


def fit_schema(frame, *, categorical="auto", max_int_categories: int = AUTO_INT_CATEGORIES,
               n_bins: int = 16) -> dict:
    """Learn the schema of a pandas DataFrame (every column is a feature).

    Args:
        categorical: 'auto' (bool, category, object and string columns, and integer columns with at
            most ``max_int_categories`` distinct values that repeat: at most half as many as rows)
            or a list of column names.
        n_bins: quantile bins per numeric column for the piecewise-linear encoding.
    Returns a JSON-serialisable dict: columns, kinds ('num'/'cat'), categories (per column; [] for
    numeric), mean/std (per column; 0/1 for categorical), edges (quantile bin edges of the
    standardised values, per numeric column).
    """
    if frame.shape[1] == 0:
        raise UserError(f"the table is empty: 0 feature(s) (shape={frame.shape}) while a minimum of 1 is required; "
                        f"pass at least one feature column")
    if frame.shape[0] == 0:
        raise UserError(f"the table is empty: 0 sample(s) (shape={frame.shape}) while a minimum of 1 is required; "
                        f"pass at least one row")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise UserError(f"the table has duplicate column names {sorted({n for n in names if names.count(n) > 1})}: "
                        f"rename them")
    if categorical != "auto":
        categorical = {str(c) for c in categorical}
        unknown = sorted(categorical - set(names))
        if unknown:
            raise UserError(f"categorical columns {unknown} are not in the table (columns: {names[:20]}): fix the names")
    kinds, cats, means, stds, edges = [], [], [], [], []
    for name, col in zip(names, frame.columns):
        series = frame[col]
        kind = _kind(series, name, categorical, max_int_categories)
        kinds.append(kind)
        if kind == "cat":
            _check_hashable(series, name)
            cats.append(sorted({category_key(v) for v in series.tolist() if not _is_missing(v)}))
            means.append(0.0), stds.append(1.0), edges.append([])
            continue
        v = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(v).any():
            raise UserError(f"column {name!r} contains inf: replace it with NaN (missing) or a finite value")
        finite = v[~np.isnan(v)]
        if len(finite) == 0:
            raise UserError(f"column {name!r} has no values (every cell is missing): drop it")
        scale = float(np.abs(finite).max()) or 1.0   # values near float64's limit: their squares would overflow
        mu = float((finite / scale).mean()) * scale
        sd = float((finite / scale).std()) * scale
        sd = sd if sd > 1e-12 else 1.0
        z = (finite - mu) / sd
        qs = quantile_edges(z, n_bins) if len(z) else np.array([0.0])
        cats.append([]), means.append(mu), stds.append(sd), edges.append([float(e) for e in qs])
    return {"schema": SCHEMA, "columns": names, "kinds": kinds, "categories": cats, "mean": means, "std": stds,
            "edges": edges}


def quantile_edges(z: np.ndarray, n_bins: int) -> np.ndarray:
    """At most ``n_bins + 1`` increasing bin edges of the values ``z`` for the piecewise-linear encoding.

    The edges are ``z``'s quantiles at 0, 1/n_bins, ..., 1. Where values repeat (a column that is mostly
    0, such as Adult's capital-gain, 92 % zeros), equal quantiles merge and few bins are left; the edges
    lost that way are drawn again as quantiles of the values other than the most frequent one, so the
    rest of the range still gets bins (capital-gain: 2 -> 14 bins; repeats among the rest merge a few).
    """
    qs = np.unique(np.quantile(z, np.linspace(0, 1, n_bins + 1)))
    missing = n_bins + 1 - len(qs)
    if missing > 0:
        values, counts = np.unique(z, return_counts=True)
        rest = z[z != values[counts.argmax()]]
        if len(rest):
            extra = np.quantile(rest, np.linspace(0, 1, missing + 2)[1:-1])   # inner quantiles of the rest
            qs = np.unique(np.concatenate([qs, extra]))
    return qs


def check_columns(frame, schema: dict) -> None:
    """The frame must have the schema's columns, in any order (extra columns are an error too)."""
    names = [str(c) for c in frame.columns]
    want = schema["columns"]
    if names == want:
        return
    missing = [c for c in want if c not in names]
    extra = [c for c in names if c not in want]
    if missing or extra:
        raise UserError(f"the table's columns differ from those seen in fit: missing {missing[:10]}, unexpected "
                        f"{extra[:10]}: pass the same feature columns as in training")


def encode(frame, schema: dict) -> np.ndarray:
    """(n, F) float32: numeric columns standardised (NaN = missing); categorical columns as codes
    0..K-1, K for a category not seen in training, NaN for missing."""
    check_columns(frame, schema)
    by_name = {str(c): c for c in frame.columns}
    out = np.empty((len(frame), len(schema["columns"])), dtype=np.float32)
    for j, name in enumerate(schema["columns"]):
        series = frame[by_name[name]]
        if schema["kinds"][j] == "cat":
            _check_hashable(series, name)
            vocab = {c: i for i, c in enumerate(schema["categories"][j])}
            unknown = len(vocab)
            out[:, j] = [np.nan if _is_missing(v) else vocab.get(category_key(v), unknown) for v in series.tolist()]
            continue
        try:
            v = series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise UserError(f"column {name!r} was numeric in fit but holds non-numeric values now: "
                            f"pass numbers (NaN for missing)") from None
        if np.isinf(v).any():
            raise UserError(f"column {name!r} contains inf: replace it with NaN (missing) or a finite value")
        out[:, j] = (v - schema["mean"][j]) / schema["std"][j]
    return out


def as_frame(x, columns=None):
    """A pandas DataFrame from a DataFrame, a 2-D array or a list of rows (columns named '0', '1', ... if none)."""
    pd = require("pandas", "tabular", "tables")

    if isinstance(x, pd.DataFrame):
        return x
    if isinstance(x, pd.Series):
        raise UserError("got a single column (a Series): pass a 2-D table, e.g. series.to_frame()")
    if isinstance(x, (list, tuple)) and len({len(r) if hasattr(r, "__len__") else -1 for r in x}) > 1:
        raise UserError("got a ragged list of rows (rows of different lengths): give every row the same columns, "
                        "None or NaN for a missing value")
    try:
        a = np.asarray(x) if not hasattr(x, "toarray") else None
    except ValueError as e:
        raise UserError(f"cannot read the rows as one table ({e}): pass a DataFrame or a 2-D array") from None
    if a is None:
        raise UserError("sparse matrices are not supported: pass a dense array or a DataFrame")
    if a.ndim != 2:
        raise UserError(f"expected a 2-D table (rows x columns), got an array of shape {a.shape}: Reshape your data, "
                        f"e.g. x.reshape(-1, 1) for a single feature")
    return pd.DataFrame(a, columns=columns if columns is not None else [str(i) for i in range(a.shape[1])])
