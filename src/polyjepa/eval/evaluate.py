"""Probe a trained encoder against the raw input and a random-init encoder, the same way."""
from __future__ import annotations

import numpy as np

from ..config import EvalConfig
from ..data.prepare import Prepared
from ..diagnostics.rankme import rankme
from .embed import embed_array
from .probes import knn_probe, linear_probe


def probe_features(train_f: np.ndarray, test_f: np.ndarray, data: Prepared, cfg: EvalConfig, seed: int = 0) -> dict:
    """Linear and kNN probes plus RankMe of one representation (RankMe on the test set)."""
    out: dict = {"rankme": rankme(_torch(test_f if len(test_f) else train_f)), "dim": int(train_f.shape[1])}
    if data.y_train is not None and len(test_f):
        out["linear"] = linear_probe(train_f, data.y_train, test_f, data.y_test, C=cfg.probe_C, seed=seed)
        out["knn"] = {**knn_probe(train_f, data.y_train, test_f, data.y_test, k=cfg.knn_k), "k": cfg.knn_k}
    return out


def evaluate(encoder, data: Prepared, cfg: EvalConfig, *, random_encoder=None, seed: int = 0) -> dict:
    """{"probe": {linear, knn}, "rankme", "baselines": {"raw": ..., "random_init": ...}} for ``encoder``."""
    def feats(enc):
        return (embed_array(enc, data.x_train, pool=cfg.pool, layers=cfg.layers),
                embed_array(enc, data.x_test, pool=cfg.pool, layers=cfg.layers))

    ours = probe_features(*feats(encoder), data, cfg, seed)
    result = {"probe": {k: ours[k] for k in ("linear", "knn") if k in ours}, "rankme": ours["rankme"],
              "embedding_dim": ours["dim"], "baselines": {}}
    if cfg.baselines:
        raw = probe_features(raw_features(data.x_train), raw_features(data.x_test), data, cfg, seed)
        result["baselines"]["raw"] = raw
        if random_encoder is not None:
            result["baselines"]["random_init"] = probe_features(*feats(random_encoder), data, cfg, seed)
    return result


def raw_features(x: np.ndarray) -> np.ndarray:
    """The raw-input baseline: samples flattened, NaN (padding, missing values) read as 0."""
    return np.nan_to_num(x.reshape(len(x), -1), nan=0.0, posinf=0.0, neginf=0.0)


def _torch(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


class Monitor:
    """Label-free and cheap labelled health checks during training: RankMe and a kNN accuracy.

    The kNN uses two disjoint slices of the *training* set (a bank and queries), never the test set.
    Picklable, so that spawned training processes can carry it.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None, *, samples: int = 1024, pool: str = "mean",
                 layers: int = 1, k: int = 20):
        n = min(samples, len(x))
        q = min(len(x) - n, max(n // 2, 0))
        # A fixed random draw, not the first rows: data sets stored sorted by label (FSDD) would
        # otherwise put classes in the queries that the bank never saw.
        pick = np.random.default_rng(0).permutation(len(x))[:n + q]
        bank, query = np.sort(pick[:n]), np.sort(pick[n:])
        self.bank_x, self.bank_y = x[bank], (y[bank] if y is not None else None)
        self.query_x, self.query_y = x[query], (y[query] if y is not None else None)
        self.pool, self.layers, self.k = pool, layers, k

    def __call__(self, method) -> dict[str, float]:
        enc = method.encoder()
        bank = embed_array(enc, self.bank_x, pool=self.pool, layers=self.layers)
        out = {"rankme": rankme(_torch(bank)), "embedding_std": float(bank.std(0).mean())}
        if self.bank_y is not None and len(self.query_x):
            q = embed_array(enc, self.query_x, pool=self.pool, layers=self.layers)
            out["monitor_knn"] = knn_probe(bank, self.bank_y, q, self.query_y, k=self.k)["accuracy"]
        return out
