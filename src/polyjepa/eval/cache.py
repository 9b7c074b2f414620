"""A cache of baseline probe results, keyed by a content hash of the data, the probe settings and the encoder.

The raw-input and random-init baselines of a data set do not depend on the training run, so a second run on the
same data (another recipe's sweep, ``polyjepa probe``, a benchmark re-run) reads them instead of embedding and
probing again. The key is a SHA-256 over the arrays' bytes, dtypes and shapes, the probe settings, the probe
code's version and scikit-learn's, and for the random-init baseline the encoder's weights and read-out; any
change to any of them is a miss. Entries are small JSON files written atomically (no pickle), in
``$POLYJEPA_CACHE`` or else the user cache folder (``$XDG_CACHE_HOME/polyjepa`` or ``~/.cache/polyjepa``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

# Bump when the probes' computation changes, so that no result of the old code is read back.
PROBE_VERSION = 3  # 1: L-BFGS stopped at 200 iterations / tol 1e-3; 2: tol 1e-4 within 1000; 3: within 5000


def cache_dir() -> Path:
    """Where cached baselines live: ``$POLYJEPA_CACHE``, else ``$XDG_CACHE_HOME/polyjepa``, else ``~/.cache/polyjepa``."""
    env = os.environ.get("POLYJEPA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "polyjepa"


def _update_array(h, a: np.ndarray | None) -> None:
    if a is None:
        h.update(b"none")
        return
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.size:  # (an empty array has no bytes, and memoryview cannot cast it)
        h.update(memoryview(a.reshape(-1)).cast("B"))


def array_digest(*arrays: np.ndarray | None) -> str:
    """SHA-256 of the arrays' contents, dtypes and shapes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        _update_array(h, a)
    return h.hexdigest()


def module_digest(module) -> str:
    """SHA-256 of a module's state (parameter and buffer names, dtypes, shapes and values)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def baseline_key(kind: str, data_digest: str, probe: dict, encoder_digest: str | None = None) -> str:
    """The cache key of one baseline ``kind`` (``raw``, ``random_init``) of data ``data_digest``."""
    try:
        import sklearn
        sk = sklearn.__version__
    except ImportError:
        sk = None
    record = {"kind": kind, "data": data_digest, "probe": probe, "encoder": encoder_digest,
              "probe_version": PROBE_VERSION, "sklearn": sk, "numpy": np.__version__}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def read(key: str) -> dict | None:
    """The cached result of ``key``, or None (also for an unreadable entry, which is recomputed)."""
    path = cache_dir() / "baselines" / f"{key}.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry.get("result") if isinstance(entry, dict) and entry.get("key") == key else None


def write(key: str, result: dict) -> None:
    """Store ``result`` under ``key`` atomically; a cache folder that cannot be written is skipped silently."""
    folder = cache_dir() / "baselines"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": key, "result": result}))
        tmp.replace(folder / f"{key}.json")
    except OSError:
        pass
