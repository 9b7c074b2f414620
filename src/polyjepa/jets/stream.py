"""Jets read lazily for data.stream=true: the particles of a jet .npz memory-mapped, a batch of jets read on access."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.lazy import IndexedSource, npz_array, npz_members
from ..errors import UserError
from .kinematics import check_particles

CHECK_JETS = 4096  # jets checked per chunk while opening, so memory holds one chunk


class NpzJets(IndexedSource):
    """The jets of an .npz in the jet format (:mod:`polyjepa.jets.data`): ``source[idx] -> (k, P, 4)`` float32
    (pT, eta, phi, E; padded rows zero), the leading ``max_particles`` slots of the stored (n, P, 4) array.

    ``particles`` (and ``mask``, when stored) are memory-mapped with :func:`polyjepa.data.lazy.npz_array` (a
    compressed archive, as ``save_jets`` writes, is inflated once into the user cache); opening checks every jet
    as the in-memory loader does, a chunk at a time, and each access reads a batch's rows. ``labels`` and
    ``split`` are small and read whole. ``rows`` orders the jets (the loader's shuffle)."""

    def __init__(self, path: str | Path, *, max_particles: int = 64):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"jet data {str(path)!r} does not exist: pass a .npz written by "
                            f"`python -m polyjepa.jets.generate` (or save_jets), or data.source=toy")
        members = npz_members(self.path)
        if "ak8_const" in members or "ak4_const" in members:
            raise UserError(f"{path} is the CMS PFNano file, whose jets are built from their constituents in memory: "
                            f"drop data.stream (the file holds a few hundred jets)")
        if "particles" not in members:
            raise UserError(f"{path} has arrays {sorted(members)} but no 'particles' (n, P, 4): store jets as "
                            f"particles/mask/labels (see polyjepa.jets.data)")
        self.has_mask = "mask" in members
        p = self._open()
        if p.dtype == object or not np.issubdtype(p.dtype, np.number) or p.ndim != 3 or p.shape[-1] != 4:
            check_particles(np.zeros((0,) + p.shape[1:], p.dtype) if p.ndim == 3 else p[:0], what=str(path))
        if len(p) == 0 or p.shape[1] == 0:
            raise UserError(f"{path} are empty (shape {p.shape}): give at least one jet with at least one particle")
        self.particles = min(int(max_particles), p.shape[1])
        self.sample_shape = (self.particles, 4)
        for a in range(0, len(p), CHECK_JETS):  # the in-memory checks, on the stored and on the kept particles
            rows = np.arange(a, min(a + CHECK_JETS, len(p)))
            try:
                self._read(rows, check=True)
            except UserError as e:
                raise UserError(f"{e} (among jets {a}..{rows[-1]})") from None
        self._rows = np.arange(len(p), dtype=np.int64)
        with np.load(self.path, allow_pickle=False) as z:  # small members only: labels and split
            self.labels_raw = z["labels"] if "labels" in members else None
            self.split = np.asarray(z["split"]).astype(str) if "split" in members else None

    def _open(self):
        self._map = npz_array(self.path, "particles")
        self._mask = npz_array(self.path, "mask") if self.has_mask else None
        return self._map

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_map", None)  # each DataLoader worker maps the file itself
        state.pop("_mask", None)
        return state

    def _read(self, rows: np.ndarray, check: bool = False) -> np.ndarray:
        if getattr(self, "_map", None) is None:
            self._open()
        order = np.argsort(rows, kind="stable")  # read the file forwards, then restore the batch's order
        r = rows[order]
        a = np.asarray(self._map[r])
        m = None if self._mask is None else np.asarray(self._mask[r])
        if check:
            check_particles(a, m, what=str(self.path))
        a, m = a[:, :self.particles], (a[:, :self.particles, 0] > 0 if m is None else m[:, :self.particles])
        if check:
            check_particles(a, m, what=str(self.path))
        out = np.empty((len(rows), *self.sample_shape), np.float32)
        out[order] = np.where(m[..., None], a, 0).astype(np.float32)
        return out

    def __repr__(self) -> str:
        return f"NpzJets({str(self.path)!r}, {len(self)} jets of {self.sample_shape})"


def open_jets(source, *, max_particles: int = 64, n: int = 3000, seed: int = 0, jets: str = "ak8",
              puppi: bool | None = None, test_fraction: float = 0.2, fitted: dict | None = None) -> NpzJets:
    """The ``jets`` loader's data.stream=true form for a jet .npz: the same jets, labels and split as
    :func:`polyjepa.jets.data.load_jets` (the official ``split`` as ``test_rows``; without one, the jets in the
    loader's shuffle by ``seed`` with its last ``test_fraction`` held out). ``data.source=toy`` (generated) and the
    CMS PFNano file are read into memory: drop data.stream for them."""
    if max_particles < 2:
        raise UserError(f"data.max_particles must be >= 2, got {max_particles}")
    if str(source) == "toy":
        raise UserError("data.source=toy generates its jets in memory: drop data.stream, or pass a jet .npz "
                        "(python -m polyjepa.jets.generate) to stream")
    stream = NpzJets(str(source), max_particles=max_particles)
    y = stream.labels_raw
    if y is not None:
        from ..data.sources import label_vector

        y = label_vector(y)
        if len(y) != len(stream):
            raise UserError(f"{source}: {len(y)} labels for {len(stream)} jets: store one label per jet")
    stream.test_rows = None
    if stream.split is not None:
        if len(stream.split) != len(stream):
            raise UserError(f"{source}: a split of {len(stream.split)} entries for {len(stream)} jets: give one "
                            f"'train' or 'test' per jet")
        stream.test_rows = np.flatnonzero(stream.split == "test")
    elif y is not None and len(stream) >= 10:
        order = np.random.default_rng(seed).permutation(len(stream))
        stream._rows, y = stream._rows[order], y[order]
        n_test = max(1, int(round(test_fraction * len(stream))))
        stream.test_rows = np.arange(len(stream) - n_test, len(stream))
    stream.labels = y
    stream.meta = {"features": ["pt", "eta", "phi", "energy"]}
    return stream
