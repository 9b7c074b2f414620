"""How much to train a series embedder, decided from the data's shape alone, and when to stop early."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SeriesBudget:
    """A training budget: ``steps`` of ``batch_size`` series, series downsampled by ``stride`` steps
    (the mean of each window) to ``length``, and an encoder of ``depth`` dilated blocks of ``hidden``
    channels with ``dim`` output features."""

    steps: int
    batch_size: int
    stride: int
    length: int
    depth: int
    hidden: int
    dim: int


def series_budget(n_series: int, length: int, *, epochs: float = 10.0, batch_size: int = 16,
                  min_steps: int = 20, max_steps: int = 60, max_length: int = 256,
                  max_depth: int = 10, hidden: int = 32, dim: int = 128) -> SeriesBudget:
    """The budget rule: a pure function of (number of series, series length).

    - ``stride = ceil(length / max_length)``: longer series are averaged over windows of ``stride``
      steps, so the encoder never sees more than ``max_length`` steps (cost per step is bounded);
    - ``depth``: the fewest dilated blocks whose receptive field (about ``2 ** (depth + 2)`` steps)
      covers the downsampled series, between 3 and ``max_depth``, at ``hidden`` channels and ``dim``
      outputs (narrower than TS2Vec's 64 / 320: the random-kernel features carry breadth);
    - ``steps``: ``epochs`` passes over the series, between ``min_steps`` and ``max_steps``, so the
      training cost grows with the data like a random-kernel transform's and is capped.
    """
    if n_series < 1 or length < 1:
        raise ValueError(f"n_series and length must be >= 1, got {n_series}, {length}")
    stride = max(1, math.ceil(length / max_length))
    short = math.ceil(length / stride)
    depth = min(max_depth, max(3, math.ceil(math.log2(max(short, 2))) - 2))
    batch = max(2, min(batch_size, n_series))
    steps = min(max_steps, max(min_steps, math.ceil(epochs * n_series / batch)))
    return SeriesBudget(steps=steps, batch_size=batch, stride=stride, length=short, depth=depth, hidden=hidden, dim=dim)


def loss_plateaued(losses: list[float], *, window: int, tol: float = 0.01) -> bool:
    """True when the mean loss of the last ``window`` steps is within ``tol`` (relative) of the mean
    of the ``window`` steps before them: the objective stopped improving. Needs ``2 * window`` losses."""
    if window < 1 or len(losses) < 2 * window:
        return False
    last = sum(losses[-window:]) / window
    before = sum(losses[-2 * window:-window]) / window
    return before - last <= tol * max(abs(before), 1e-12)
