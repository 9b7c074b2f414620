"""A small reader of WFDB records (format 212 signals, MIT annotation files) and beat windows."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded
from ..errors import UserError

# MIT annotation codes that mark a beat (as in the PhysioBank annotation table); 1 = N (normal).
BEAT_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25, 30, 31, 34, 35, 38, 41})
SKIP, NUM, SUB, CHN, AUX = 59, 60, 61, 62, 63


def read_header(path: Path) -> dict:
    """Parse ``<record>.hea``: sampling rate, length, and per signal file, format, gain, ADC zero, first value, name."""
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UserError(f"{path} has no record line: it is not a WFDB header")
    rec = lines[0]
    n_sig, fs, n = int(rec[1]), float(rec[2].split("/")[0]), int(rec[3])
    signals = []
    for f in lines[1:1 + n_sig]:
        fmt = f[1].split("x")[0].split(":")[0].split("+")[0]
        gain = float(f[2].split("(")[0].split("/")[0]) if len(f) > 2 else 200.0
        zero = int(f[4]) if len(f) > 4 else 0
        baseline = int(f[2].split("(")[1].split(")")[0]) if len(f) > 2 and "(" in f[2] else zero
        signals.append({"file": f[0], "format": fmt, "gain": gain or 200.0, "baseline": baseline,
                        "first": int(f[5]) if len(f) > 5 else None, "name": f[8] if len(f) > 8 else f"sig{len(signals)}"})
    return {"fs": fs, "n": n, "signals": signals}


def decode_212(raw: bytes, n_signals: int) -> np.ndarray:
    """Format 212: two 12-bit two's-complement samples in three bytes, frames interleaved -> (n_signals, n) int."""
    b = np.frombuffer(raw, dtype=np.uint8)[: len(raw) // 3 * 3].reshape(-1, 3).astype(np.int32)
    s0 = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    s1 = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    flat = np.stack([s0, s1], 1).reshape(-1)
    flat = np.where(flat >= 2048, flat - 4096, flat)
    n = len(flat) // n_signals
    return flat[: n * n_signals].reshape(n, n_signals).T


def record_files(record: str | Path) -> tuple[dict, Path]:
    """The header (:func:`read_header`) and signal file of a format-212 record whose signals share one file: one
    clear error when the header or the signal file is missing or the format is another."""
    record = Path(record)
    hea = record.with_suffix(".hea")
    if not hea.exists():
        raise UserError(f"{hea} does not exist: pass a WFDB record path without extension (e.g. .../mitbih/100)")
    h = read_header(hea)
    sigs = h["signals"]
    if {s["format"] for s in sigs} != {"212"} or len({s["file"] for s in sigs}) != 1:
        raise UserError(f"{hea}: only format-212 records with all signals in one file are supported "
                        f"(install the wfdb package for others)")
    dat = record.parent / sigs[0]["file"]
    if not dat.exists():
        raise UserError(f"{dat} does not exist: the record's signal file must sit beside {hea.name}")
    return h, dat


def read_record(record: str | Path) -> tuple[np.ndarray, float, list[str]]:
    """(signals (C, n) float32 in physical units, sampling rate, names) of a format-212 record."""
    h, dat = record_files(record)
    sigs, hea = h["signals"], Path(record).with_suffix(".hea")
    digital = decode_212(dat.read_bytes(), len(sigs))[:, : h["n"]]
    if digital.shape[1] < h["n"]:
        raise UserError(f"{dat} holds {digital.shape[1]} samples per signal but its header {hea.name} says {h['n']}: "
                        f"the file is truncated; re-download the record")
    for s, d in zip(sigs, digital):
        if s["first"] is not None and int(d[0]) != s["first"]:
            raise UserError(f"{record}: first sample {int(d[0])} differs from the header's {s['first']}: the file is corrupt")
    gain = np.array([s["gain"] for s in sigs], np.float32)[:, None]
    base = np.array([s["baseline"] for s in sigs], np.float32)[:, None]
    return ((digital - base) / gain).astype(np.float32), h["fs"], [s["name"] for s in sigs]


def read_annotations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(sample indices, annotation codes) of an MIT-format annotation file (e.g. ``100.atr``)."""
    raw = Path(path).read_bytes()
    if len(raw) % 2:
        raise UserError(f"{path} has an odd number of bytes: it is truncated or not an MIT annotation file; "
                        f"re-download it")
    w = np.frombuffer(raw, dtype="<u2")
    samples, codes, t, i = [], [], 0, 0
    while i < len(w):
        code, value = int(w[i]) >> 10, int(w[i]) & 0x3FF
        i += 1
        if code == 0 and value == 0:
            break
        if code == SKIP:  # a 32-bit interval follows: high word first
            if i + 2 > len(w):
                raise UserError(f"{path} ends inside an annotation: it is truncated; re-download it")
            t += (int(w[i]) << 16) | int(w[i + 1])
            if t >= 2**31:
                t -= 2**32
            i += 2
        elif code == AUX:  # `value` bytes of text, padded to an even count
            i += (value + 1) // 2
        elif code in (NUM, SUB, CHN):
            pass
        else:
            t += value
            samples.append(t)
            codes.append(code)
    return np.array(samples, np.int64), np.array(codes, np.int64)


def load_wfdb_beats(source: str, *, window: int = 256, annotator: str = "atr", fitted: dict | None = None) -> Loaded:
    """Windows of ``window`` samples centred on every annotated beat of a WFDB record, labelled 0 for
    normal (N) and 1 for any other beat; x is (n_beats, leads, window), in time order."""
    window = int((fitted or {}).get("length", window))
    if window < 2:
        raise UserError(f"data.window must be at least 2 samples, got {window}")
    sig, fs, names = read_record(source)
    ann = Path(source).with_suffix(f".{annotator}")
    if not ann.exists():
        raise UserError(f"{ann} does not exist: beat windows need the record's annotation file")
    at, codes = read_annotations(ann)
    keep = np.isin(codes, list(BEAT_CODES)) & (at - window // 2 >= 0) & (at - window // 2 + window <= sig.shape[1])
    at, codes = at[keep], codes[keep]
    if len(at) == 0:
        raise UserError(f"{source}: no annotated beat has a whole window of {window} samples inside the record "
                        f"({sig.shape[1]} samples): lower data.window")
    idx = (at - window // 2)[:, None] + np.arange(window)[None]        # (n, window)
    x = sig[:, idx].transpose(1, 0, 2)                                  # (n, C, window)
    return Loaded(np.ascontiguousarray(x), (codes != 1).astype(np.int64), Path(source).name,
                  meta={"length": window, "fs": fs, "leads": names})
