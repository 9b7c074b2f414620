"""TabularEmbedder: a scikit-learn transformer that fits T-JEPA on a table and returns row embeddings."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from ..errors import UserError, require
from .schema import AUTO_INT_CATEGORIES, as_frame, encode, fit_schema

POOLS = ("mean", "mean+std", "tokens", "tokens+input")


def _feature_names(estimator, X, reset: bool) -> None:
    """scikit-learn's own feature-name bookkeeping (sets feature_names_in_; checks names and order)."""
    try:
        from sklearn.utils.validation import _check_feature_names
    except ImportError:  # scikit-learn < 1.6: a method of BaseEstimator
        estimator._check_feature_names(X, reset=reset)
        return
    _check_feature_names(estimator, X, reset=reset)


def _frame(X):
    """A DataFrame of X; arrays of Python objects get numeric columns where the values are numbers."""
    pd = require("pandas", "tabular", "tables")

    if isinstance(X, pd.DataFrame):
        return X
    frame = as_frame(X)
    return frame.infer_objects() if (frame.dtypes == object).any() else frame


class TabularEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Self-supervised row embeddings of a table (T-JEPA with regularisation tokens), as a scikit-learn transformer.

    ``fit(X)`` learns the table's schema (numeric and categorical columns, categories, statistics)
    and trains a T-JEPA encoder on X alone (y is ignored); ``transform(X)`` returns (n, d) float32
    embeddings. X is a pandas DataFrame or a 2-D array; NaN/None mark missing values; categories
    not seen in fit map to an "unknown" token.

    Args:
        categorical: 'auto' (bool, category, object and string columns, and integer columns with at
            most 64 distinct, repeating values) or a list of column names (DataFrames) / indices (arrays).
        dim, depth, heads: the transformer encoder (token width, blocks, heads).
        n_reg_tokens: T-JEPA regularisation tokens.
        numeric: 'ple' (piecewise-linear over ``n_bins`` quantile bins) or 'linear' (x * w + b).
        pool: 'tokens+input' (the encoder's tokens side by side, then the tokenizer's tokens they
            started from: d = 2 * (n_reg_tokens + n_columns) * dim), 'tokens' (the encoder's tokens
            only, as T-JEPA evaluates: half that), 'mean' (d = dim) or 'mean+std' (2 dim). Pretraining
            makes the tokens predictable from other columns and drops some of each column's own detail;
            the tokenizer's tokens keep it (Adult, MLP over 3 seeds: 0.8604 'tokens', 0.8635
            'tokens+input'; 'mean' is about 2 points under 'tokens'; see docs/tables.md).
        max_epochs, min_steps, max_steps: training length: ``max_epochs`` epochs over X, but at least
            ``min_steps`` and at most ``max_steps`` optimiser steps (embeddings come from the EMA
            target, which barely moves in a few dozen steps; max_steps=0 leaves the encoder at its
            random initialisation: a baseline).
        batch_size, lr: AdamW with warm-up and cosine decay.
        var_weight, cov_weight: an optional VCR regulariser on the pooled context embedding (off by
            default: on Adult it lowered every probe, while the regularisation tokens alone did not collapse).
        invariance_weight, corruption: an optional invariance term (off by default): VICReg, times
            ``invariance_weight``, between the mean tokens of two SCARF-corrupted views of each row
            (``corruption`` of the entries replaced by other rows' values).
        random_state: seed of the weights, data order and masks (None: a random one).
        threads: torch threads while fitting/transforming (None: torch's setting).

    Attributes:
        schema_: the learnt schema (JSON-serialisable); method_: the trained JEPA (embeddings come from
        its EMA target encoder); n_features_in_, feature_names_in_ (DataFrames with string column names);
        loss_curve_: the training loss per step.
    (Thimonier et al., T-JEPA, 2024.)
    """

    def __init__(self, *, categorical="auto", dim: int = 32, depth: int = 2, heads: int = 2, n_reg_tokens: int = 1,
                 numeric: str = "ple", n_bins: int = 16, pool: str = "tokens+input", max_epochs: int = 20,
                 min_steps: int = 500, max_steps: int = 3000, batch_size: int = 128, lr: float = 1e-3, var_weight: float = 0.0,
                 cov_weight: float = 0.0, invariance_weight: float = 0.0, corruption: float = 0.6, random_state=0,
                 threads: int | None = None):
        self.categorical = categorical
        self.dim = dim
        self.depth = depth
        self.heads = heads
        self.n_reg_tokens = n_reg_tokens
        self.numeric = numeric
        self.n_bins = n_bins
        self.pool = pool
        self.max_epochs = max_epochs
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.var_weight = var_weight
        self.cov_weight = cov_weight
        self.invariance_weight = invariance_weight
        self.corruption = corruption
        self.random_state = random_state
        self.threads = threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = self.random_state is None
        return tags

    def _check_params(self) -> None:
        """Refuse settings that would train nothing or fail deep inside torch, naming the argument."""
        for name, low in (("dim", 1), ("depth", 1), ("heads", 1), ("n_reg_tokens", 0), ("n_bins", 1),
                          ("max_epochs", 0), ("min_steps", 0), ("max_steps", 0), ("batch_size", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise UserError(f"{name} must be an integer >= {low}, got {v!r}")
        for name in ("lr", "var_weight", "cov_weight", "invariance_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 \
                    or (name == "lr" and v == 0):
                raise UserError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {v!r}")
        if self.dim % self.heads:
            raise UserError(f"dim={self.dim} must be a multiple of heads={self.heads}")

    def _config(self, n_features: int):
        from ..config import load_recipe

        if self.pool not in POOLS:
            raise UserError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        overrides = [f"tokenizer.n_reg_tokens={self.n_reg_tokens}", f"tokenizer.numeric={self.numeric}",
                     f"encoder.dim={self.dim}", f"encoder.depth={self.depth}", f"encoder.heads={self.heads}",
                     f"predictor.dim={max(16, self.dim // 2)}", "predictor.depth=1",
                     f"predictor.heads={2 if self.dim // 2 % 2 == 0 else 1}"]
        cfg = load_recipe("tjepa", overrides)
        if self.var_weight or self.cov_weight:
            cfg.regularizer = {"name": "vcr", "var_weight": float(self.var_weight), "cov_weight": float(self.cov_weight)}
        else:
            cfg.regularizer = None
        if self.invariance_weight:
            cfg.invariance = {"name": "table_vicreg", "weight": float(self.invariance_weight),
                              "rate": float(self.corruption)}
        return cfg

    def _columns(self, frame):
        if self.categorical in ("auto", None):
            return "auto"
        names = list(frame.columns)
        out = []
        for c in self.categorical:
            if isinstance(c, (int, np.integer)) and c not in names and 0 <= c < len(names):
                out.append(names[c])  # a column index into an array
            else:
                out.append(c)
        return out

    def fit(self, X, y=None):
        """Learn the schema of X and train the encoder on X (y is ignored). Returns self."""
        import torch

        from ..build import build_method
        from ..config import TrainConfig
        from ..train.inmemory import fit_in_memory

        self._check_params()
        frame = _frame(X)
        _feature_names(self, X, reset=True)
        n, F = frame.shape
        self.schema_ = fit_schema(frame, categorical=self._columns(frame), max_int_categories=AUTO_INT_CATEGORIES,
                                  n_bins=self.n_bins)
        if n < 2:
            raise UserError("got 1 sample: fitting needs at least 2 rows (the regulariser uses batch statistics)")
        if F < 2:
            raise UserError("got 1 feature(s): T-JEPA predicts some columns from others, so it needs at least 2 "
                            "feature columns")
        self.n_features_in_ = F
        x = encode(frame, self.schema_)
        seed = int(np.random.RandomState(self.random_state).randint(2**31 - 1)) if self.random_state is None \
            else int(self.random_state) if isinstance(self.random_state, (int, np.integer)) \
            else int(self.random_state.randint(2**31 - 1))
        cfg = self._config(F)
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            method = build_method(cfg, (F,), seed, self.schema_)
            bs = min(self.batch_size, n)
            total = max(0, min(max(self.max_epochs * (n // bs), self.min_steps), self.max_steps))
            train = TrainConfig(batch_size=bs, max_steps=total, lr=self.lr, start_lr=0.2 * self.lr, final_lr=1e-6,
                                warmup=0.1, weight_decay=(0.0, 0.0), grad_clip=1.0)
            losses = fit_in_memory(method, x, train, seed=seed)["losses"]
        finally:
            torch.set_num_threads(threads)
        self.method_ = method.eval()
        self.loss_curve_ = losses
        reg, cols = self.n_reg_tokens, F
        self._n_features_out = {"mean": self.dim, "mean+std": 2 * self.dim, "tokens": (reg + cols) * self.dim,
                                "tokens+input": 2 * (reg + cols) * self.dim}[self.pool]
        return self

    def transform(self, X) -> np.ndarray:
        """(n, d) float32 embeddings of the rows of X (same columns as in fit)."""
        import torch
        from sklearn.utils.validation import check_is_fitted

        from ..eval.embed import embed_array

        check_is_fitted(self, "method_")
        frame = _frame(X)
        try:
            _feature_names(self, X, reset=False)
        except ValueError as e:
            raise UserError(f"{' '.join(str(e).split())} Pass the same feature columns as in fit.") from None
        if frame.shape[1] != self.n_features_in_:
            raise UserError(f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting "
                            f"{self.n_features_in_} features as input: pass the columns used in fit")
        if not hasattr(self, "feature_names_in_") or frame is not X:  # array in fit or now: columns by position
            frame = frame.set_axis(self.schema_["columns"], axis=1)
        x = encode(frame, self.schema_)
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return embed_array(self.method_.encoder(), x, pool=self.pool, layers=1)
        finally:
            torch.set_num_threads(threads)
