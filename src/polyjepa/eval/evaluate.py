"""Probe a trained encoder against the raw input and a random-init encoder, the same way."""
from __future__ import annotations

import numpy as np

from ..config import EvalConfig
from ..data.prepare import Prepared
from ..diagnostics.rankme import rankme
from ..errors import UserError
from .embed import embed_array
from .probes import knn_probe, linear_probe, probe_score


def probe_features(train_f: np.ndarray, test_f: np.ndarray, data: Prepared, cfg: EvalConfig, seed: int = 0) -> dict:
    """Linear and kNN probes plus RankMe of one representation (RankMe on the test set)."""
    out: dict = {"rankme": rankme(_torch(test_f if len(test_f) else train_f)), "dim": int(train_f.shape[1])}
    if data.y_train is not None and len(test_f):
        out["linear"] = linear_probe(train_f, data.y_train, test_f, data.y_test, C=cfg.probe_C, seed=seed)
        out["knn"] = {**knn_probe(train_f, data.y_train, test_f, data.y_test, k=cfg.knn_k), "k": cfg.knn_k}
    return out


def evaluate(encoder, data: Prepared, cfg: EvalConfig, *, random_encoder=None, seed: int = 0) -> dict:
    """{"probe": {linear, knn}, "rankme", "baselines": {"raw": ..., "random_init": ...}} for ``encoder``.

    With ``cfg.cache_baselines`` the baselines are read from, or written to, the baseline cache
    (:mod:`polyjepa.eval.cache`), keyed by the data's contents, the probe settings and the random-init
    encoder's weights. Also returns ``seconds`` (per representation) and ``cached`` (the baselines read back).
    """
    import time

    from . import cache

    def feats(enc):
        out = (embed_array(enc, data.x_train, pool=cfg.pool, layers=cfg.layers),
               embed_array(enc, data.x_test, pool=cfg.pool, layers=cfg.layers))
        if not all(np.isfinite(f).all() for f in out):
            raise UserError("the encoder's embeddings hold NaN or inf: its weights are broken (a run that diverged, "
                            "or data far outside the training scale); resume the run with a lower train.lr, or check "
                            "the data's scale")
        return out

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    ours = probe_features(*feats(encoder), data, cfg, seed)
    seconds["pretrained"] = time.perf_counter() - t
    result = {"probe": {k: ours[k] for k in ("linear", "knn") if k in ours}, "rankme": ours["rankme"],
              "embedding_dim": ours["dim"], "baselines": {}, "seconds": seconds, "cached": []}
    if not cfg.baselines:
        return result
    probe = {"C": cfg.probe_C, "knn_k": cfg.knn_k, "seed": seed}
    data_digest = cache.array_digest(data.x_train, data.y_train, data.x_test, data.y_test) \
        if cfg.cache_baselines else ""
    jobs = {"raw": (None, lambda: (raw_features(data.x_train), raw_features(data.x_test)))}
    if random_encoder is not None:
        jobs["random_init"] = ({**probe, "pool": cfg.pool, "layers": cfg.layers}, lambda: feats(random_encoder))
    for kind, (settings, features) in jobs.items():
        t = time.perf_counter()
        key = None
        if cfg.cache_baselines:
            key = cache.baseline_key(kind, data_digest, settings or probe,
                                     cache.module_digest(random_encoder) if kind == "random_init" else None)
            hit = cache.read(key)
            if hit is not None:
                result["baselines"][kind] = hit
                result["cached"].append(kind)
                seconds[kind] = time.perf_counter() - t
                continue
        result["baselines"][kind] = probe_features(*features(), data, cfg, seed)
        if key is not None:
            cache.write(key, result["baselines"][kind])
        seconds[kind] = time.perf_counter() - t
    return result


FINITE_CHECK_BYTES = 1 << 24  # the finiteness check looks at this many bytes of samples (at least one) at a time


def raw_features(x: np.ndarray) -> np.ndarray:
    """The raw-input baseline: samples flattened, NaN and inf (padding, missing values) read as 0.

    A sample with every value finite is returned flattened as it is: a view of ``x`` when it is contiguous, not
    a copy, so the evaluation sample is not held twice. When any value is NaN or inf (padded series, tables with
    missing values) the whole flattened sample is copied with those values zeroed (``x`` itself is shared with
    the other representations and is never changed)."""
    flat = x.reshape(len(x), int(np.prod(x.shape[1:])))
    step = max(1, FINITE_CHECK_BYTES // max(1, flat.itemsize * flat.shape[1]))
    if all(np.isfinite(flat[i:i + step]).all() for i in range(0, len(flat), step)):  # a chunk's mask at a time
        return flat
    return np.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)


def _torch(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


SPECTRUM_FILE = "spectrum.jsonl"


def lidar_score(encoder, x: np.ndarray, *, pool: str = "mean", layers: int = 1, views=None, n_views: int = 4,
                seed: int = 0) -> float | None:
    """LiDAR of ``encoder``'s embeddings of ``n_views`` augmented views of each image in ``x`` (n, C, H, W).

    ``views`` is a :class:`polyjepa.multiview.ViewMaker` (its photometric settings are kept, with
    ``n_views`` whole-size crops and no local ones); None uses crops of scale 0.3-1 with jitter.
    The views are drawn from ``seed`` alone, so scores at different steps see the same views.
    None for inputs that are not images.
    """
    import copy

    import torch

    from ..diagnostics.lidar import lidar
    from ..multiview.views import ViewMaker

    if x.ndim != 4 or len(x) < 2:
        return None
    maker = copy.copy(views) if views is not None else ViewMaker(n_global=n_views)
    maker.n_global, maker.n_local, maker.global_size = n_views, 0, None
    v = maker(torch.from_numpy(np.ascontiguousarray(x)), torch.Generator().manual_seed(seed))["global"]  # (q, n, ...)
    emb = embed_array(encoder, v.flatten(0, 1), pool=pool, layers=layers)
    emb = torch.from_numpy(emb).reshape(n_views, len(x), -1).transpose(0, 1)
    return lidar(emb)


class Monitor:
    """Label-free and cheap labelled health checks during training.

    Every call embeds a fixed slice of the training set and records RankMe, the mean per-feature std,
    LiDAR (``lidar_samples`` images x ``lidar_views`` views; images only), the number of covariance
    eigenvalues above 1e-3 of the largest, a kNN accuracy (R^2 for a continuous target; two disjoint
    slices of the *training* set, never the test set), and ``collapse`` (1 when RankMe < ``min_rankme`` or the std < ``min_std``;
    the alarm is also printed). Told the step and run directory (``uses_step``), it appends the
    whole spectrum to ``run_dir/spectrum.jsonl``. Picklable, so spawned training processes can carry it.
    """

    uses_step = True

    def __init__(self, x: np.ndarray, y: np.ndarray | None, *, samples: int = 1024, pool: str = "mean",
                 layers: int = 1, k: int = 20, lidar_samples: int = 256, lidar_views: int = 4,
                 min_rankme: float = 2.0, min_std: float = 1e-3):
        n = min(samples, len(x))
        q = min(len(x) - n, max(n // 2, 0))
        # A fixed random draw, not the first rows: data sets stored sorted by label (FSDD) would
        # otherwise put classes in the queries that the bank never saw.
        pick = np.random.default_rng(0).permutation(len(x))[:n + q]
        bank, query = np.sort(pick[:n]), np.sort(pick[n:])
        self.bank_x, self.bank_y = x[bank], (y[bank] if y is not None else None)
        self.query_x, self.query_y = x[query], (y[query] if y is not None else None)
        self.pool, self.layers, self.k = pool, layers, k
        self.lidar_samples, self.lidar_views = lidar_samples, lidar_views
        self.min_rankme, self.min_std = min_rankme, min_std
        self.alarms: list[str] = []
        self.initial_rankme: float | None = None     # the first reading (the untrained encoder, at step 0)
        self._spectrum_opened = False

    def __call__(self, method, *, step: int | None = None, run_dir=None) -> dict[str, float]:
        from ..diagnostics.spectrum import collapse_alarm, covariance_spectrum, rankme_floor, spectrum_summary

        enc = method.encoder()
        bank = embed_array(enc, self.bank_x, pool=self.pool, layers=self.layers)
        out = {"rankme": rankme(_torch(bank)), "embedding_std": float(bank.std(0).mean())}
        eigenvalues = covariance_spectrum(_torch(bank))
        out["eig_above_1e-3"] = float(spectrum_summary(eigenvalues)["n_above"])
        if self.lidar_samples and self.lidar_views >= 2:
            score = lidar_score(enc, self.bank_x[:self.lidar_samples], pool=self.pool, layers=self.layers,
                                views=getattr(method, "views", None), n_views=self.lidar_views)
            if score is not None:
                out["lidar"] = score
        if self.bank_y is not None and len(self.query_x):
            q = embed_array(enc, self.query_x, pool=self.pool, layers=self.layers)
            out["monitor_knn"] = probe_score(knn_probe(bank, self.bank_y, q, self.query_y, k=self.k))
        if self.initial_rankme is None:
            self.initial_rankme = out["rankme"]
        floor = rankme_floor(self.initial_rankme, self.min_rankme)
        alarm = collapse_alarm(out["rankme"], out["embedding_std"], min_rankme=floor, min_std=self.min_std)
        out["collapse"] = float(alarm is not None)
        if alarm:
            message = f"polyjepa: {alarm} at step {step}" if step is not None else f"polyjepa: {alarm}"
            self.alarms.append(message)
            _say(message)
        if run_dir is not None and step is not None:
            self._record_spectrum(run_dir, step, eigenvalues)
        return out

    def _record_spectrum(self, run_dir, step: int, eigenvalues) -> None:
        import json
        from pathlib import Path

        path = Path(run_dir) / SPECTRUM_FILE
        if not self._spectrum_opened:
            # A resumed run re-records the steps after its checkpoint: drop what a killed run wrote there.
            rows = path.read_text().splitlines() if path.exists() else []
            kept = [r for r in rows if _row_step(r) is not None and _row_step(r) < step]
            from ..train.checkpoint import atomic_write_text

            atomic_write_text(path, "".join(r + "\n" for r in kept))
            self._spectrum_opened = True
        with open(path, "a") as f:
            f.write(json.dumps({"step": step, "eigenvalues": [float(f"{v:.6g}") for v in eigenvalues.tolist()]}) + "\n")


def _row_step(line: str) -> int | None:
    import json

    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _say(message: str) -> None:
    import sys

    try:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:
        print(message, file=sys.stderr)
