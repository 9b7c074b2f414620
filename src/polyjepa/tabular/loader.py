"""Read tables (CSV/TSV, optionally gzipped; Parquet; DataFrames; scikit-learn's bundled tables) into
encoded arrays with their schema."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded
from ..errors import UserError
from .schema import AUTO_INT_CATEGORIES, encode, fit_schema

BUNDLED = ("breast_cancer", "wine", "iris", "diabetes")
MAX_CLASSES = 100  # a target with more distinct values than this (and non-integer values) is read as regression


def read_table(source, sep: str | None = None):
    """A pandas DataFrame from a DataFrame, a bundled name, or a .csv/.tsv/.txt(.gz) or .parquet path."""
    try:
        import pandas as pd
    except ImportError:
        raise UserError("tables need pandas: pip install 'polyjepa[tabular]'") from None
    if isinstance(source, pd.DataFrame):
        return source
    source = str(source)
    if source in BUNDLED:
        import sklearn.datasets as ds

        return getattr(ds, f"load_{source}")(as_frame=True).frame
    path = Path(source)
    if not path.exists():
        raise UserError(f"data path {source!r} does not exist: pass a .csv/.tsv(.gz) or .parquet file, or one of "
                        f"{', '.join(BUNDLED)}")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zip"):
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    try:
        if kind in (".parquet", ".pq"):
            from importlib.util import find_spec

            if find_spec("pyarrow") is None:
                raise UserError("reading Parquet needs pyarrow: pip install 'polyjepa[parquet]'")
            return pd.read_parquet(path)
        if kind in (".csv", ".tsv", ".txt", ".tab"):
            return pd.read_csv(path, sep=sep if sep is not None else ("\t" if kind in (".tsv", ".tab") else ","))
    except UserError:
        raise
    except Exception as e:  # parser errors, bad compression, corrupt files
        raise UserError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    raise UserError(f"cannot read {path}: use a .csv, .tsv (optionally .gz) or .parquet file")


def split_target(frame, target: str | None):
    """(features, target series or None); target None takes a column named 'target' if there is one."""
    if target is None:
        target = "target" if "target" in frame.columns else None
    if target is None:
        return frame, None
    if target not in frame.columns:
        raise UserError(f"target column {target!r} is not in the table (columns: {list(frame.columns)[:20]}): "
                        f"set data.target to one of them, or data.target=null for no labels")
    return frame.drop(columns=[target]), frame[target]


def encode_labels(y, classes: list[str] | None = None, regression: bool | None = None
                  ) -> tuple[np.ndarray | None, list[str] | None]:
    """Integer class labels and the class names; (float64 values, None) for a continuous (regression) target."""
    import pandas as pd

    if y.isna().any():
        raise UserError(f"the target column {y.name!r} has {int(y.isna().sum())} missing values: drop those rows")
    if classes is None:
        values = y.to_numpy()
        if regression is None:
            regression = pd.api.types.is_float_dtype(y.dtype) and not np.all(np.mod(values, 1) == 0) \
                or y.nunique() > MAX_CLASSES and pd.api.types.is_numeric_dtype(y.dtype)
        if regression:
            if not pd.api.types.is_numeric_dtype(y.dtype):
                raise UserError(f"the target column {y.name!r} is not numeric, but the run regressed a number: "
                                f"pass the same target column as in training")
            values = values.astype(np.float64)
            if not np.isfinite(values).all():
                raise UserError(f"the target column {y.name!r} has infinite values: drop those rows")
            return values, None
        classes = sorted({str(v) for v in y.tolist()}, key=lambda s: (len(s), s))
    index = {c: i for i, c in enumerate(classes)}
    keys = [str(v) for v in y.tolist()]
    unseen = sorted({k for k in keys if k not in index})
    if unseen:
        raise UserError(f"the target has classes {unseen[:5]} that training did not have: drop those rows")
    return np.array([index[k] for k in keys], dtype=np.int64), classes


def load_table(source, *, target: str | None = None, train_rows: int | None = None, categorical=None,
               sep: str | None = None, n_bins: int = 16, max_int_categories: int = AUTO_INT_CATEGORIES,
               fitted: dict | None = None) -> Loaded:
    """Load a table for the tabular recipes: features encoded by the schema (see ``schema.encode``).

    Args:
        source: a .csv/.tsv(.gz) or .parquet path, a pandas DataFrame, or a bundled table
            (breast_cancer, wine, iris, diabetes).
        target: the label column (default: a column named 'target' if present; null: no labels).
            A continuous target (regression: non-integer floats, or numbers with more distinct values
            than a class column has) comes back as float64 values, which the probes regress (R^2).
        train_rows: the first ``train_rows`` rows are the training split and the rest the official
            test split (e.g. 32561 for Adult); otherwise the split is drawn.
        categorical: column names to treat as categorical (default: inferred, see ``fit_schema``).
        fitted: the meta of a trained run: its schema is reused (same columns, categories, statistics).
    """
    frame = read_table(source, sep)
    if fitted and target is not None and target not in frame.columns:
        target = None  # embedding new, unlabelled rows of a trained run's table
    features, y = split_target(frame, target)
    name = source if isinstance(source, str) else "dataframe"
    if fitted and "kinds" in fitted:
        schema = fitted
    else:
        fit_rows = features if train_rows is None else features.iloc[:train_rows]
        schema = fit_schema(fit_rows, categorical="auto" if categorical in (None, "auto") else list(categorical),
                            max_int_categories=max_int_categories, n_bins=n_bins)
    x = encode(features, schema)
    fitted_task = (fitted or {}).get("task")
    labels, classes = (None, None) if y is None else encode_labels(
        y, (fitted or {}).get("classes"), None if fitted_task is None else fitted_task == "regression")
    task = None if labels is None else "regression" if classes is None else "classification"
    meta = {**schema, "target": None if y is None else str(y.name), "classes": classes, "task": task}
    if train_rows is None:
        return Loaded(x, labels, Path(name).name, meta=meta)
    if not 0 < train_rows < len(x):
        raise UserError(f"data.train_rows={train_rows} must be between 1 and {len(x) - 1} (the table has {len(x)} rows)")
    y_tr, y_te = (None, None) if labels is None else (labels[:train_rows], labels[train_rows:])
    return Loaded(x[:train_rows], y_tr, Path(name).name, x_test=x[train_rows:], y_test=y_te, meta=meta)
