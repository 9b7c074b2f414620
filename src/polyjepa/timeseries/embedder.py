"""TimeSeriesEmbedder: a scikit-learn transformer that pretrains a series JEPA on X and embeds series."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..data.prepare import channel_stats, normalise
from ..errors import UserError
from .series import check_series


def downsample(x: np.ndarray, stride: int) -> np.ndarray:
    """(n, C, L) -> (n, C, ceil(L / stride)): the mean of each window of ``stride`` steps, NaN (padding)
    ignored; a window with no data stays NaN, so trailing padding stays trailing."""
    if stride <= 1:
        return x
    n, c, length = x.shape
    pad = -length % stride
    w = np.concatenate([x, np.full((n, c, pad), np.nan, x.dtype)], axis=2).reshape(n, c, -1, stride)
    finite = np.isfinite(w)
    count = finite.sum(-1)
    total = np.where(finite, w, 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(x.dtype)


class TimeSeriesEmbedder(TransformerMixin, BaseEstimator):
    """Self-supervised series embeddings: ``fit(X)`` pretrains a recipe on X (no labels),
    ``transform(X)`` returns one row per series.

    With the defaults a row is the learned encoder's features followed by random-kernel features
    (``RandomKernelFeatures``, fitted on X without labels): 4,998 PPV features (MiniRocket's
    transform), the mean positive value behind each of them (MultiRocket's MPV), and the max and min of
    each kernel and dilation on the series and on its first difference (ROCKET's max pooling); on the development collection the kernel features carry most
    of the accuracy (docs/timeseries.md). The
    training budget follows the data (``series_budget``): steps grow with the number of series,
    long series are averaged down to at most 256 steps for the encoder, the encoder's depth fits
    the series length, and training stops early once the loss stops improving.

    Args:
        recipe: a bundled series recipe or a YAML path. The default ``tsvicreg`` (VICReg on two crops
            of each series, TS2Vec's dilated CNN, max over time) is the best measured on the UCR sets
            (docs/timeseries.md); ``tsjepa`` (TS-JEPA, a transformer) and ``tsjepa-conv`` (JEPA on the CNN) are
            the masked-prediction alternatives.
        max_steps: training steps (None: the budget rule's, or the recipe's with ``budget="recipe"``).
        batch_size: training batch (None: the budget's or the recipe's, capped at the number of series).
        pool: how token features become one row (None: the recipe's ``eval.pool``).
        patch_size: steps per token (None: the recipe's, which picks at most 64 tokens per series).
        overrides: further ``section.key=value`` recipe overrides, e.g. ``("encoder.depth=2",)``; they
            win over the budget rule's choices.
        threads: torch threads while fitting (None: torch's default).
        random_state: seed of initialisation, batches, masks and random kernels.
        kernels: random-kernel PPV features appended to the learned ones (None: 4,998 with the default
            recipe ``tsvicreg``, 0 with the others; 0 turns them off; at least 84 otherwise).
        extremes: with kernels, also the max and min of each kernel and dilation on the series and
            its first difference (4 x 84 x the number of dilations, at most 10,752 features).
        mpv: with kernels, also the mean positive value (the mean excess over the bias where the
            convolution exceeds it) behind each PPV feature: as many features again as ``kernels``.
        budget: ``"auto"`` (the data-scaled rule above) or ``"recipe"`` (the recipe's steps, batch and
            encoder, every series at full length, no early stop).
        early_stop: with ``budget="auto"``, stop when the loss plateaus (``loss_plateaued`` over a
            window of a fifth of the planned steps).
        learned: False skips pretraining and returns the random-kernel features alone.
    X: (n, length) or (n, channels, length) numbers; shorter series NaN-padded at the end
    (``polyjepa.timeseries.pad_series``). ``transform`` takes series of the fitted shape (NaN-pad
    shorter ones to the fitted length). Per-channel statistics of the fit data standardise every input.
    """

    def __init__(self, recipe: str = "tsvicreg", *, max_steps: int | None = None, batch_size: int | None = None,
                 pool: str | None = None, patch_size: int | None = None, overrides: tuple = (),
                 threads: int | None = None, random_state: int = 0, kernels: int | None = None,
                 budget: str = "auto", early_stop: bool = True, learned: bool = True, extremes: bool = True,
                 mpv: bool = True):
        self.recipe = recipe
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.pool = pool
        self.patch_size = patch_size
        self.overrides = overrides
        self.threads = threads
        self.random_state = random_state
        self.kernels = kernels
        self.budget = budget
        self.early_stop = early_stop
        self.learned = learned
        self.extremes = extremes
        self.mpv = mpv

    def _config(self, auto: tuple = ()):
        from ..config import load_recipe

        extra = list(auto) + list(self.overrides)
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
        from .budget import loss_plateaued, series_budget
        from .kernels import RandomKernelFeatures

        for name in ("max_steps", "batch_size", "patch_size", "threads"):
            v = getattr(self, name)
            low = 2 if name == "batch_size" else 0 if name == "max_steps" else 1
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low):
                raise UserError(f"{name} must be None or an integer >= {low}, got {v!r}")
        if self.budget not in ("auto", "recipe"):
            raise UserError(f"budget must be 'auto' or 'recipe', got {self.budget!r}")
        k = self.kernels
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or 0 < k < 84 or k < 0):
            raise UserError(f"kernels must be None, 0 or an integer >= 84, got {k!r}")
        x = check_series(X, "X", min_length=2)
        if len(x) < 2:
            raise UserError("X has 1 sample: TimeSeriesEmbedder needs at least 2 series to learn from")
        seed = int(self.random_state) if self.random_state is not None else 0
        mean, std = channel_stats(x)  # float64, NaN is padding
        self.mean_, self.std_ = np.asarray(mean), np.asarray(std)
        x = self._standardise(x)
        self.n_channels_, self.length_ = int(x.shape[1]), int(x.shape[2])
        self.n_features_in_ = self.n_channels_ * self.length_  # = columns of an (n, length) X
        n_kernels = (4998 if self.recipe == "tsvicreg" else 0) if k is None else int(k)
        self.kernels_ = None
        t0 = time.perf_counter()
        if n_kernels:
            self.kernels_ = RandomKernelFeatures(n_features=n_kernels, extremes=bool(self.extremes), mpv=bool(self.mpv),
                                                 seed=seed).fit(torch.from_numpy(x))
        record = {"steps": 0, "stopped_early": False, "losses": []}
        self.encoder_, self.stride_ = None, 1
        if self.learned:
            record = self._fit_encoder(x, seed, build_method, EvalConfig, TrainConfig, dataclass_from,
                                       fit_in_memory, loss_plateaued, series_budget)
        elif not n_kernels:
            raise UserError("learned=False with kernels=0 leaves no features: pass kernels >= 84 or learned=True")
        record["train_seconds"] = time.perf_counter() - t0
        self.train_record_ = record
        return self

    def _fit_encoder(self, x, seed, build_method, EvalConfig, TrainConfig, dataclass_from, fit_in_memory,
                     loss_plateaued, series_budget) -> dict:
        import torch

        auto, plan = (), None
        if self.budget == "auto":
            plan = series_budget(len(x), int(x.shape[-1]))
            if self._config().get("encoder", {}).get("name") == "dilated_conv":
                auto = (f"encoder.depth={plan.depth}", f"encoder.hidden={plan.hidden}", f"encoder.dim={plan.dim}")
            self.stride_ = plan.stride
            x = downsample(x, plan.stride)
        cfg = self._config(auto)
        method = build_method(cfg, x.shape[1:], seed, {"length": int(x.shape[-1])})
        patch = method.backbone.tokenizer.patch_size
        if (np.isfinite(x).any(1).sum(1) < 2 * patch).any():
            raise UserError(f"X has series shorter than two patches of {patch} steps: drop them or pass a smaller "
                            f"patch_size")
        train = dataclass_from(cfg, "train", TrainConfig)
        train.batch_size = min(int(self.batch_size or (plan.batch_size if plan else train.batch_size)), len(x))
        if self.max_steps is not None:
            train.max_steps = int(self.max_steps)
        elif plan is not None:
            train.max_steps = plan.steps
        stop = None
        if plan is not None and self.early_stop and train.max_steps:
            window = max(5, train.max_steps // 5)
            stop = lambda losses: loss_plateaued(losses, window=window)  # noqa: E731
        threads = torch.get_num_threads()
        try:
            if self.threads:
                torch.set_num_threads(int(self.threads))
            record = fit_in_memory(method, x, train, seed=seed, stop=stop)
        finally:
            torch.set_num_threads(threads)
        record["planned_steps"] = int(train.max_steps or 0)
        record["budget"] = None if plan is None else dict(vars(plan))
        self.encoder_ = method.encoder().eval()
        self.pool_ = self.pool or dataclass_from(cfg, "eval", EvalConfig).pool
        self.layers_ = dataclass_from(cfg, "eval", EvalConfig).layers
        return record

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return normalise(x, self.mean_, self.std_)

    def transform(self, X) -> np.ndarray:
        """(n, [channels,] length) -> (n, F) float32 embeddings."""
        from ..eval.embed import embed_array

        import torch

        check_is_fitted(self, "train_record_")
        x = check_series(X, "X", min_length=1)
        if x.shape[1] != self.n_channels_:
            raise UserError(f"X has {x.shape[1]} channels but the embedder was fitted on {self.n_channels_}: "
                            f"pass series with the fitted channels")
        if x.shape[2] != self.length_:
            raise UserError(f"X has {x.shape[1] * x.shape[2]} features, but TimeSeriesEmbedder is expecting "
                            f"{self.n_features_in_} features as input: it was fitted on series of {self.length_} steps; "
                            f"NaN-pad shorter series to that length (pad_series(X, length={self.length_})), crop longer ones")
        x = self._standardise(x)
        parts = []
        if self.encoder_ is not None:
            short = downsample(x, self.stride_)
            width = getattr(self.encoder_, "dim", 320)
            batch = int(max(1, min(256, (1 << 24) // max(1, width * short.shape[-1]))))  # bounds (B, D, L) activations
            parts.append(embed_array(self.encoder_, short, pool=self.pool_, layers=self.layers_, batch_size=batch))
        if self.kernels_ is not None:
            with torch.no_grad():
                parts.append(self.kernels_.transform(torch.from_numpy(np.ascontiguousarray(x))).numpy())
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # NaN is allowed only as trailing padding (see pad_series)
        tags.requires_fit = True
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # embeddings are float32 whatever the input
        return tags
