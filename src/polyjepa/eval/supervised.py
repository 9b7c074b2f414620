"""Supervised reference: the same encoder trained end to end with labels, at a given budget.

A self-supervised encoder's probe is only as good as what the architecture can learn from this much
data in this much time. ``supervised_reference`` trains a fresh encoder plus a linear head with
cross-entropy (AdamW, warm-up + cosine) and reports test accuracy, so a benchmark can print the
probe next to this ceiling, measured on the same split.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .embed import embed_array


def supervised_reference(encoder: nn.Module, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                         *, epochs: float = 8, max_minutes: float | None = None, batch_size: int = 128,
                         lr: float = 1e-3, weight_decay: float = 0.05, warmup: float = 0.05, pool: str = "mean",
                         layers: int = 1, seed: int = 0) -> dict[str, float]:
    """Train ``encoder`` (changed in place) + a linear head on (x, y); accuracy on (x_test, y_test).

    Args:
        encoder: a module with ``embed(x, pool=, layers=)`` (a ``Backbone``), usually a fresh random init.
        epochs: passes over x (fractions allowed). With ``max_minutes``, the step count is also cut to
            what fits the budget at the speed of the first 10 steps, so the schedule still ends at 0.
        pool, layers: the readout the head sees, as for the probes.
    Returns:
        {"accuracy", "train_accuracy" (last epoch's running accuracy), "steps", "seconds"}.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "iub":
        raise UserError("supervised_reference needs integer class labels (a classification data set)")
    n_classes = int(max(y.max(), np.asarray(y_test).max())) + 1
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long)
    with torch.no_grad():
        dim = encoder.embed(xt[:2], pool=pool, layers=layers).shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(dim, n_classes)
    params = [p for m in (encoder, head) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    per_epoch = max(len(xt) // batch_size, 1)
    total = max(int(round(epochs * per_epoch)), 1)
    start, step, correct, seen = time.time(), 0, 0, 0
    encoder.train()
    while step < total:
        order = torch.randperm(len(xt), generator=gen)
        correct = seen = 0
        for i in range(per_epoch):
            if max_minutes is not None:
                elapsed = time.time() - start
                if step == 10:  # fit the schedule to the budget
                    total = min(total, max(int(60 * max_minutes * step / max(elapsed, 1e-9)), step + 1))
                if elapsed > 60 * max_minutes:
                    total = step
            if step >= total:
                break
            t = step / total
            scale = t / warmup if t < warmup else 0.5 * (1 + math.cos(math.pi * (t - warmup) / (1 - warmup)))
            for group in opt.param_groups:
                group["lr"] = lr * scale
            idx = order[i * batch_size:(i + 1) * batch_size]
            logits = head(encoder.embed(xt[idx], pool=pool, layers=layers))
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += int((logits.argmax(1) == yt[idx]).sum())
            seen += len(idx)
            step += 1
    seconds = time.time() - start
    encoder.eval()
    with torch.no_grad():
        pred = head(torch.from_numpy(embed_array(encoder, x_test, pool=pool, layers=layers))).argmax(1)
    acc = float((pred.numpy() == np.asarray(y_test)).mean())
    return {"accuracy": acc, "train_accuracy": correct / max(seen, 1), "steps": step, "seconds": seconds}
