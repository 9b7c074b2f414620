"""A small reader of EDF/EDF+ files (signals and the annotation channel) and epochs around annotations."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..data.sources import Loaded
from ..errors import UserError

ANNOTATION_LABEL = "EDF Annotations"


def _fields(block: bytes, ns: int, width: int) -> tuple[list[str], bytes]:
    vals = [block[i * width:(i + 1) * width].decode("latin-1").strip() for i in range(ns)]
    return vals, block[ns * width:]


def read_edf(path: str | Path) -> dict:
    """Read an EDF(+) file.

    Returns {"signals": (C, n) float32 physical values of the ordinary signals (all at one rate),
    "fs": samples per second, "labels": C names, "annotations": [(onset s, duration s, text), ...]}.
    Physical = (digital - dmin) * (pmax - pmin) / (dmax - dmin) + pmin (EDF specification, Kemp 1992).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        ns = int(raw[252:256])
        n_records, record_s = int(raw[236:244]), float(raw[244:252])
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} as EDF ({e}): pass an .edf file") from None
    rest = raw[256:256 + 256 * ns]
    labels, rest = _fields(rest, ns, 16)
    _, rest = _fields(rest, ns, 80)  # transducer
    _, rest = _fields(rest, ns, 8)   # physical dimension
    pmin, rest = _fields(rest, ns, 8)
    pmax, rest = _fields(rest, ns, 8)
    dmin, rest = _fields(rest, ns, 8)
    dmax, rest = _fields(rest, ns, 8)
    _, rest = _fields(rest, ns, 80)  # prefiltering
    nsamp, _ = _fields(rest, ns, 8)
    nsamp = np.array([int(v) for v in nsamp])
    header = 256 + 256 * ns
    per_record = int(nsamp.sum())
    if n_records < 0:
        n_records = (len(raw) - header) // (2 * per_record)
    if len(raw) < header + 2 * n_records * per_record:
        raise UserError(f"{path} is truncated: its header gives {n_records} data records of {2 * per_record} bytes "
                        f"but the file holds {max(len(raw) - header, 0)} bytes after the header: "
                        f"re-download or re-export it")
    if not any(lab != ANNOTATION_LABEL for lab in labels):
        raise UserError(f"{path} holds annotations only, no signals: pass the EDF file with the recordings")
    data = np.frombuffer(raw, dtype="<i2", count=n_records * per_record, offset=header).reshape(n_records, per_record)
    starts = np.concatenate([[0], np.cumsum(nsamp)])
    is_ann = [lab == ANNOTATION_LABEL for lab in labels]
    sig_idx = [i for i in range(ns) if not is_ann[i]]
    rates = {int(nsamp[i]) for i in sig_idx}
    if len(rates) != 1:
        raise UserError(f"{path} has signals at different rates {sorted(rates)}: resample them to one rate first")
    signals = np.empty((len(sig_idx), n_records * nsamp[sig_idx[0]]), np.float32)
    for row, i in enumerate(sig_idx):
        d = data[:, starts[i]:starts[i + 1]].reshape(-1).astype(np.float32)
        scale = (float(pmax[i]) - float(pmin[i])) / (float(dmax[i]) - float(dmin[i]))
        signals[row] = (d - float(dmin[i])) * scale + float(pmin[i])
    annotations = []
    for i in (i for i in range(ns) if is_ann[i]):
        text = data[:, starts[i]:starts[i + 1]].tobytes().decode("latin-1")
        annotations += parse_tal(text)
    return {"signals": signals, "fs": nsamp[sig_idx[0]] / record_s, "labels": [labels[i] for i in sig_idx],
            "annotations": annotations}


_TAL = re.compile(r"([+-]\d+(?:\.\d*)?)(?:\x15(\d+(?:\.\d*)?))?\x14([^\x00]*)")


def parse_tal(text: str) -> list[tuple[float, float, str]]:
    """Time-stamped annotation lists (EDF+): '+onset[\\x15duration]\\x14text\\x14...\\x00' -> (onset, duration, text)
    for every non-empty text (the empty one is a record's time stamp)."""
    out = []
    for m in _TAL.finditer(text):
        onset, duration = float(m.group(1)), float(m.group(2) or 0.0)
        for label in m.group(3).split("\x14"):
            if label:
                out.append((onset, duration, label))
    return out


def load_edf_epochs(source: str, *, seconds: float = 4.0, rest: str = "T0", fitted: dict | None = None) -> Loaded:
    """Epochs of ``seconds`` from each annotation's onset in an EDF file or every .edf in a folder;
    label 0 for ``rest`` (PhysioNet motor imagery: T0) and 1 for any other annotation (T1/T2)."""
    length = (fitted or {}).get("length")
    path = Path(source)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".edf") if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise UserError(f"{source} is neither an .edf file nor a folder with .edf files")
    xs, ys, fs0, labels0 = [], [], None, None
    for f in files:
        rec = read_edf(f)
        fs, sig = rec["fs"], rec["signals"]
        if fs0 is None:
            fs0, labels0 = fs, rec["labels"]
        elif fs != fs0 or rec["labels"] != labels0:
            raise UserError(f"{f} has other channels or rate than {files[0]}: give files of one montage")
        n = int(length or round(seconds * fs))
        if n < 2:
            raise UserError(f"data.seconds={seconds} gives epochs of {n} samples at {fs:g} Hz: use epochs of at "
                            f"least 2 samples (e.g. data.seconds=4)")
        for onset, _, text in rec["annotations"]:
            start = int(round(onset * fs))
            if start + n <= sig.shape[1]:
                xs.append(sig[:, start:start + n])
                ys.append(0 if text == rest else 1)
    if not xs:
        raise UserError(f"no annotated epochs of {seconds} s found in {source}")
    return Loaded(np.stack(xs).astype(np.float32), np.array(ys, np.int64), path.name,
                  meta={"length": int(xs[0].shape[1]), "fs": float(fs0), "channels": len(labels0)})
