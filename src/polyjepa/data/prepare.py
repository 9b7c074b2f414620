"""Split and normalise a data set the same way for training, probing and embedding."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DataConfig
from ..errors import UserError
from .sources import load_images


@dataclass
class Prepared:
    """Normalised train/test arrays (test empty when the data have no labels) and the statistics used."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    mean: list[float]
    std: list[float]
    name: str


def normalise(x: np.ndarray, mean, std) -> np.ndarray:
    """Per-channel standardisation of (n, C, ...) arrays."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - np.asarray(mean, np.float32).reshape(shape)) / np.asarray(std, np.float32).reshape(shape)).astype(np.float32)


def prepare(cfg: DataConfig, stats: dict | None = None) -> Prepared:
    """Load ``cfg.source``, subsample, split (stratified by label) and normalise with train statistics.

    ``stats`` ({"mean", "std"}) reuses a trained run's statistics so embeddings match training.
    """
    data = load_images(cfg.source)
    x, y = data.x, data.y
    from sklearn.model_selection import train_test_split

    def strat(labels):
        return labels if labels is not None and np.bincount(labels).min() >= 2 else None

    if cfg.max_samples is not None and cfg.max_samples < len(x):
        keep, _ = train_test_split(np.arange(len(x)), train_size=cfg.max_samples, random_state=cfg.split_seed,
                                   stratify=strat(y))
        x, y = x[np.sort(keep)], (y[np.sort(keep)] if y is not None else None)
    if y is None:
        x_train, x_test, y_train, y_test = x, x[:0], None, None
    else:
        test_size = int(cfg.test_size) if cfg.test_size >= 1 else float(cfg.test_size)
        try:
            x_train, x_test, y_train, y_test = train_test_split(
                x, y, test_size=test_size, random_state=cfg.split_seed, stratify=strat(y))
        except ValueError as e:
            raise UserError(f"cannot split {len(x)} samples with data.test_size={cfg.test_size}: {e}") from None
    if stats is None:
        axes = (0,) + tuple(range(2, x_train.ndim))
        mean = x_train.mean(axis=axes).astype(float).tolist()
        std = np.maximum(x_train.std(axis=axes), 1e-6).astype(float).tolist()
    else:
        mean, std = stats["mean"], stats["std"]
        if len(mean) != x.shape[1]:
            raise UserError(f"the data have {x.shape[1]} channels but the run was trained on {len(mean)}")
    return Prepared(normalise(x_train, mean, std), y_train, normalise(x_test, mean, std), y_test, mean, std, data.name)
