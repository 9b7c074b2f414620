"""WFDB beat windows read lazily for data.stream=true: the record's format-212 signal file memory-mapped, each
window decoded from its own bytes on access; the annotations (small) read whole."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.lazy import IndexedSource
from ..errors import UserError
from .wfdb import BEAT_CODES, read_annotations, record_files


def _decode_groups(b: np.ndarray) -> np.ndarray:
    """Format 212 byte groups (k, 3) uint8 -> the 2k samples they hold, in file order (int32)."""
    b = b.astype(np.int32)
    s0 = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    s1 = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    flat = np.stack([s0, s1], 1).reshape(-1)
    return np.where(flat >= 2048, flat - 4096, flat)


class WfdbBeats(IndexedSource):
    """Windows of ``window`` samples centred on every annotated beat of a format-212 WFDB record, read on access:
    ``source[idx] -> (k, leads, window)`` float32 in physical units, labelled 0 for normal (N) beats and 1 for
    the others, in time order: the windows, labels and values of
    :func:`polyjepa.timeseries.wfdb.load_wfdb_beats`. Opening reads the header and the annotation file and
    checks the signal file's size and first samples; an access decodes only the 3-byte groups a window spans."""

    def __init__(self, record: str | Path, *, window: int = 256, annotator: str = "atr"):
        if window < 2:
            raise UserError(f"data.window must be at least 2 samples, got {window}")
        record = Path(record)
        h, self.dat = record_files(record)
        sigs, hea, self.record = h["signals"], record.with_suffix(".hea"), record
        self.leads, n = len(sigs), h["n"]
        held = self.dat.stat().st_size // 3 * 2 // self.leads
        if held < n:
            raise UserError(f"{self.dat} holds {held} samples per signal but its header {hea.name} says {n}: the "
                            f"file is truncated; re-download the record")
        first = self._frames(0, 1)[:, 0]
        for s, d in zip(sigs, first):
            if s["first"] is not None and int(d) != s["first"]:
                raise UserError(f"{record}: first sample {int(d)} differs from the header's {s['first']}: the file "
                                f"is corrupt")
        self.gain = np.array([s["gain"] for s in sigs], np.float32)[:, None]
        self.base = np.array([s["baseline"] for s in sigs], np.float32)[:, None]
        ann = record.with_suffix(f".{annotator}")
        if not ann.exists():
            raise UserError(f"{ann} does not exist: beat windows need the record's annotation file")
        at, codes = read_annotations(ann)
        keep = np.isin(codes, list(BEAT_CODES)) & (at - window // 2 >= 0) & (at - window // 2 + window <= n)
        at, codes = at[keep], codes[keep]
        if len(at) == 0:
            raise UserError(f"{record}: no annotated beat has a whole window of {window} samples inside the record "
                            f"({n} samples): lower data.window")
        self.window, self.fs, self.names = int(window), h["fs"], [s["name"] for s in sigs]
        self.sample_shape = (self.leads, self.window)
        self._rows = (at - window // 2).astype(np.int64)  # each window's first sample
        self.labels = (codes != 1).astype(np.int64)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_map", None)  # each DataLoader worker maps the file itself
        return state

    def _frames(self, start: int, count: int) -> np.ndarray:
        """Digital samples (leads, count) of frames ``start..start+count``, decoded from their bytes only."""
        if getattr(self, "_map", None) is None:
            self._map = np.memmap(self.dat, dtype=np.uint8, mode="r")
        f0, f1 = start * self.leads, (start + count) * self.leads  # flat sample range, two samples per 3 bytes
        g0, g1 = f0 // 2, (f1 + 1) // 2
        raw = np.asarray(self._map[3 * g0:3 * g1])
        if len(raw) != 3 * (g1 - g0):
            raise UserError(f"{self.dat} was cut short after it was opened: re-copy it and run again")
        flat = _decode_groups(raw.reshape(-1, 3))[f0 - 2 * g0:f0 - 2 * g0 + f1 - f0]
        return flat.reshape(count, self.leads).T

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.sample_shape), np.float32)
        for k, start in enumerate(rows.tolist()):
            out[k] = ((self._frames(start, self.window) - self.base) / self.gain).astype(np.float32)
        return out

    def __repr__(self) -> str:
        return f"WfdbBeats({str(self.record)!r}, {len(self)} beats of {self.sample_shape})"


def open_wfdb_beats(source, *, window: int = 256, annotator: str = "atr", fitted: dict | None = None,
                    seed: int = 0) -> WfdbBeats:
    """The ``wfdb_beats`` loader's data.stream=true form: beat windows decoded from the signal file on access."""
    stream = WfdbBeats(str(source), window=int((fitted or {}).get("length", window)), annotator=annotator)
    stream.meta = {"length": stream.window, "fs": stream.fs, "leads": stream.names}
    return stream
