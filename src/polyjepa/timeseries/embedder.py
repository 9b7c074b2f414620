"""TimeSeriesEmbedder: a scikit-learn transformer that pretrains a series JEPA on X and embeds series."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..data.prepare import channel_stats, normalise
from ..errors import UserError
from .series import check_series


class TimeSeriesEmbedder(TransformerMixin, BaseEstimator):
    """Self-supervised series embeddings: ``fit(X)`` pretrains a recipe on X (no labels),
    ``transform(X)`` returns one row per series.

    Args:
        recipe: a bundled series recipe or a YAML path. The default ``tsvicreg`` (VICReg on two crops
            of each series, TS2Vec's dilated CNN, max over time) is the best measured on the UCR sets
            (docs/timeseries.md); ``tsjepa`` (TS-JEPA, a transformer) and ``tsjepa-conv`` (JEPA on the CNN) are
            the masked-prediction alternatives.
        max_steps: training steps (None: the recipe's).
        batch_size: training batch (None: the recipe's, capped at the number of series).
        pool: how token features become one row (None: the recipe's ``eval.pool``).
        patch_size: steps per token (None: the recipe's, which picks at most 64 tokens per series).
        overrides: further ``section.key=value`` recipe overrides, e.g. ``("encoder.depth=2",)``.
        threads: torch threads while fitting (None: torch's default).
        random_state: seed of initialisation, batches and masks.
    X: (n, length) or (n, channels, length) numbers; shorter series NaN-padded at the end
    (``polyjepa.timeseries.pad_series``). ``transform`` takes series of the fitted shape (NaN-pad
    shorter ones to the fitted length). Per-channel statistics of the fit data standardise every input.
    """

    def __init__(self, recipe: str = "tsvicreg", *, max_steps: int | None = None, batch_size: int | None = None,
                 pool: str | None = None, patch_size: int | None = None, overrides: tuple = (),
                 threads: int | None = None, random_state: int = 0):
        self.recipe = recipe
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.pool = pool
        self.patch_size = patch_size
        self.overrides = overrides
        self.threads = threads
        self.random_state = random_state

    def _config(self):
        from ..config import load_recipe

        extra = list(self.overrides)
        if self.patch_size is not None:
            extra.append(f"tokenizer.patch_size={int(self.patch_size)}")
        return load_recipe(self.recipe, extra)

    def fit(self, X, y=None):
        """Pretrain on X (labels are ignored); returns self."""
        import time

        import torch

        from ..build import build_method
        from ..config import EvalConfig, TrainConfig, dataclass_from
        from ..train.inmemory import fit_in_memory

        for name in ("max_steps", "batch_size", "patch_size", "threads"):
            v = getattr(self, name)
            low = 2 if name == "batch_size" else 0 if name == "max_steps" else 1
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low):
                raise UserError(f"{name} must be None or an integer >= {low}, got {v!r}")
        x = check_series(X, "X", min_length=2)
        if len(x) < 2:
            raise UserError("X has 1 sample: TimeSeriesEmbedder needs at least 2 series to learn from")
        cfg = self._config()
        seed = int(self.random_state) if self.random_state is not None else 0
        mean, std = channel_stats(x)  # float64, NaN is padding
        self.mean_, self.std_ = np.asarray(mean), np.asarray(std)
        x = self._standardise(x)
        method = build_method(cfg, x.shape[1:], seed, {"length": int(x.shape[-1])})
        patch = method.backbone.tokenizer.patch_size
        if (np.isfinite(x).any(1).sum(1) < 2 * patch).any():
            raise UserError(f"X has series shorter than two patches of {patch} steps: drop them or pass a smaller "
                            f"patch_size")
        train = dataclass_from(cfg, "train", TrainConfig)
        train.batch_size = min(int(self.batch_size or train.batch_size), len(x))
        if self.max_steps is not None:
            train.max_steps = int(self.max_steps)
        threads = torch.get_num_threads()
        t0 = time.perf_counter()
        try:
            if self.threads:
                torch.set_num_threads(int(self.threads))
            record = fit_in_memory(method, x, train, seed=seed)
        finally:
            torch.set_num_threads(threads)
        record["train_seconds"] = time.perf_counter() - t0
        self.encoder_ = method.encoder().eval()
        self.pool_ = self.pool or dataclass_from(cfg, "eval", EvalConfig).pool
        self.layers_ = dataclass_from(cfg, "eval", EvalConfig).layers
        self.n_channels_, self.length_ = int(x.shape[1]), int(x.shape[2])
        self.n_features_in_ = self.n_channels_ * self.length_  # = columns of an (n, length) X
        self.train_record_ = record
        return self

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return normalise(x, self.mean_, self.std_)

    def transform(self, X) -> np.ndarray:
        """(n, [channels,] length) -> (n, F) float32 embeddings."""
        from ..eval.embed import embed_array

        check_is_fitted(self, "encoder_")
        x = check_series(X, "X", min_length=1)
        if x.shape[1] != self.n_channels_:
            raise UserError(f"X has {x.shape[1]} channels but the embedder was fitted on {self.n_channels_}: "
                            f"pass series with the fitted channels")
        if x.shape[2] != self.length_:
            raise UserError(f"X has {x.shape[1] * x.shape[2]} features, but TimeSeriesEmbedder is expecting "
                            f"{self.n_features_in_} features as input: it was fitted on series of {self.length_} steps; "
                            f"NaN-pad shorter series to that length (pad_series(X, length={self.length_})), crop longer ones")
        return embed_array(self.encoder_, self._standardise(x), pool=self.pool_, layers=self.layers_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # NaN is allowed only as trailing padding (see pad_series)
        tags.requires_fit = True
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # embeddings are float32 whatever the input
        return tags
