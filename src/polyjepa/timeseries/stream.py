"""Series read lazily: rows of a memory-mapped .npy, of an .npz member, or of the cache a CSV/TSV file is parsed
into (:mod:`polyjepa.timeseries.csvseries`), and annotated epochs of EDF(+) files read record by record, so that
memory holds a batch of windows, not the recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.lazy import IndexedSource
from ..errors import UserError, warn
from .edf import ANNOTATION_LABEL, parse_tal
from .series import padding_defects

INDEX_BYTES = 1 << 22  # data records read per chunk while indexing an EDF file's annotations: about 4 MB


class NpySeries(IndexedSource):
    """The series of an (n, L) or (n, C, L) .npy file, memory-mapped: ``source[idx] -> (k, C, L)`` float32.

    Only the rows a batch asks for are read. ``length`` pads every series at its end with NaN to that many
    steps, as the in-memory ``series`` loader does for a run trained on longer series. ``key`` names an array
    of an .npz archive instead (:func:`polyjepa.data.lazy.npz_array`: a stored member mapped in place, a
    compressed one inflated once into the user cache). ``name`` is the file the series came from, when ``path``
    is a cache built from it.
    """

    def __init__(self, path: str | Path, *, length: int | None = None, key: str | None = None,
                 name: str | Path | None = None):
        self.path, self.key = Path(path), key
        self.name = str(name if name is not None else (f"{path}[{key}]" if key else path))
        a = self._open()
        if a.ndim not in (2, 3) or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise UserError(f"{self.name} holds a {a.dtype} array of shape {a.shape}: series must be numbers of shape "
                            f"(n, length) or (n, channels, length)")
        if np.iscomplexobj(a):
            raise UserError(f"{self.name} is complex: pass real-valued series (np.abs or .real)")
        n, c, steps = (a.shape[0], 1, a.shape[1]) if a.ndim == 2 else a.shape
        if n == 0 or c == 0 or steps < 2:
            raise UserError(f"{self.name} has shape {a.shape}: it needs at least one series, one channel and 2 steps")
        if length is not None and steps > length:
            raise UserError(f"{self.name} has series of {steps} steps but the model takes at most {length}: crop them")
        self.steps = steps
        self.sample_shape = (c, int(length or steps))
        self._rows = np.arange(n, dtype=np.int64)

    def _open(self) -> np.ndarray:
        if self.key is not None:
            from ..data.lazy import npz_array

            return npz_array(self.path, self.key)
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except Exception as e:
            raise UserError(f"cannot memory-map {self.path} ({type(e).__name__}: {e}): data.stream=true reads an "
                            f"uncompressed .npy written by numpy.save") from None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_map", None)  # each DataLoader worker maps the file itself
        return state

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if getattr(self, "_map", None) is None:
            self._map = self._open()
        order = np.argsort(rows, kind="stable")  # read the file forwards, then restore the batch's order
        a = np.asarray(self._map[rows[order]], dtype=np.float32).reshape(len(rows), self.sample_shape[0], self.steps)
        out = np.full((len(rows), *self.sample_shape), np.nan, np.float32)
        out[order, :, :self.steps] = a
        bad = np.isinf(a).any(axis=(1, 2))
        if bad.any():
            raise UserError(f"{self.name} contains inf in series {sorted(set(rows[order][bad].tolist()))[:5]}: "
                            f"remove or clip them")
        # the in-memory loader's rules (check_series), for the rows read: NaN only as end padding, 2 real steps
        inside, n_real = padding_defects(a)
        if inside.any():
            raise UserError(f"{self.name} has NaN inside series {sorted(set(rows[order][inside].tolist()))[:5]}: NaN "
                            f"may only pad a series at its end in every channel; impute missing values first")
        if (n_real < 2).any():
            raise UserError(f"{self.name} has series shorter than 2 steps "
                            f"({sorted(set(rows[order][n_real < 2].tolist()))[:5]}): drop them")
        return out

    def __repr__(self) -> str:
        return f"NpySeries({self.name!r}, {len(self)} series of {self.sample_shape})"


def edf_layout(path: Path) -> dict:
    """The header of an EDF(+) file, as the partial reads need it: record count and size, samples per record
    of the ordinary signals (one rate), their columns in a record, and their scaling (EDF specification)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            ns = int(head[252:256])
            rest = f.read(256 * ns)
        n_records, record_s = int(head[236:244]), float(head[244:252])
        if ns < 1 or len(rest) < 256 * ns:
            raise ValueError(f"a header of {ns} signals cut short")

        def fields(start: int, width: int) -> list[str]:
            return [rest[start + i * width:start + (i + 1) * width].decode("latin-1").strip() for i in range(ns)]

        at = 16 * ns
        labels = fields(0, 16)
        at += (80 + 8) * ns  # transducer, physical dimension
        pmin, pmax = fields(at, 8), fields(at + 8 * ns, 8)
        dmin, dmax = fields(at + 16 * ns, 8), fields(at + 24 * ns, 8)
        nsamp = np.array([int(v) for v in fields(at + 32 * ns + 80 * ns, 8)])
        size = path.stat().st_size
    except (OSError, ValueError, IndexError) as e:
        raise UserError(f"cannot read {path} as EDF ({e}): pass an .edf file") from None
    header, per_record = 256 + 256 * ns, int(nsamp.sum())
    if per_record < 1:
        raise UserError(f"cannot read {path} as EDF (records of no samples): pass an .edf file")
    if n_records < 0:
        n_records = (size - header) // (2 * per_record)
    if size < header + 2 * n_records * per_record:
        raise UserError(f"{path} is truncated: its header gives {n_records} data records of {2 * per_record} bytes "
                        f"but the file holds {max(size - header, 0)} bytes after the header: re-download or "
                        f"re-export it")
    sig = [i for i in range(ns) if labels[i] != ANNOTATION_LABEL]
    if not sig:
        raise UserError(f"{path} holds annotations only, no signals: pass the EDF file with the recordings")
    rates = {int(nsamp[i]) for i in sig}
    if len(rates) != 1:
        raise UserError(f"{path} has signals at different rates {sorted(rates)}: resample them to one rate first")
    starts = np.concatenate([[0], np.cumsum(nsamp)])
    spr = int(nsamp[sig[0]])
    scale = np.array([(float(pmax[i]) - float(pmin[i])) / (float(dmax[i]) - float(dmin[i])) for i in sig])
    return {"header": header, "per_record": per_record, "n_records": n_records, "spr": spr, "fs": spr / record_s,
            "labels": [labels[i] for i in sig], "columns": starts[sig][:, None] + np.arange(spr)[None],
            "annotation_columns": [(int(starts[i]), int(starts[i + 1])) for i in range(ns)
                                   if labels[i] == ANNOTATION_LABEL],
            "dmin": np.array([float(dmin[i]) for i in sig], np.float32)[:, None],
            "pmin": np.array([float(pmin[i]) for i in sig], np.float32)[:, None],
            "scale": scale.astype(np.float32)[:, None]}


def edf_annotations(path: Path, layout: dict) -> list[tuple[float, float, str]]:
    """The EDF+ annotations of a file, its annotation channel read a chunk of records at a time."""
    if not layout["annotation_columns"]:
        return []
    out, per = [], layout["per_record"]
    chunk = max(1, INDEX_BYTES // (2 * per))
    texts = {c: [] for c in layout["annotation_columns"]}
    with open(path, "rb") as f:
        for r0 in range(0, layout["n_records"], chunk):
            k = min(chunk, layout["n_records"] - r0)
            f.seek(layout["header"] + 2 * per * r0)
            data = np.frombuffer(f.read(2 * per * k), dtype="<i2").reshape(k, per)
            for a, b in texts:
                texts[(a, b)].append(data[:, a:b].tobytes())
    for parts in texts.values():  # each annotation channel in turn, as the in-memory reader does
        out += parse_tal(b"".join(parts).decode("latin-1"))
    return out


class EdfEpochs(IndexedSource):
    """Epochs of ``seconds`` from each annotation's onset in an EDF(+) file or every .edf of a folder, read on
    access: ``source[idx] -> (k, C, L)`` float32 in physical units, labelled 0 for ``rest`` and 1 otherwise.

    Opening indexes the files once (headers, and the annotation channel a chunk at a time); each access then
    reads only the data records an epoch spans. The epochs, their order and their values are those of
    :func:`polyjepa.timeseries.edf.load_edf_epochs`. A file that cannot be read as EDF (a bad header, cut
    short) is skipped with a warning naming it, listed in ``skipped`` and appended to ``skip_log`` (a run's skip
    log, see :mod:`polyjepa.data.skiplog`) when given; files of another montage or rate than the first are an
    error.
    """

    def __init__(self, source: str | Path, *, seconds: float = 4.0, rest: str = "T0", length: int | None = None,
                 skip_log: str | Path | None = None):
        path = Path(source)
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".edf") if path.is_dir() else [path]
        if not files or not files[0].exists():
            raise UserError(f"{source} is neither an .edf file nor a folder with .edf files")
        self.root, self.files, self.layouts, self.skipped = path, [], [], []
        self.skip_log, self.skip_reasons = (None if skip_log is None else Path(skip_log)), {}
        rows, labels, first = [], [], None
        for f in files:
            try:
                layout = edf_layout(f)
                annotations = edf_annotations(f, layout)
            except (UserError, OSError, ValueError) as e:
                warn(f"skipping an EDF file: {e}")
                self.skipped.append(str(f))
                self.record_skip(str(f), f"cannot be read as EDF: {e}")
                continue
            if first is None:
                first = (f, layout["fs"], layout["labels"])
            elif layout["fs"] != first[1] or layout["labels"] != first[2]:
                raise UserError(f"{f} has other channels or rate than {first[0]}: give files of one montage")
            n = int(length or round(seconds * layout["fs"]))
            if n < 2:
                raise UserError(f"data.seconds={seconds} gives epochs of {n} samples at {layout['fs']:g} Hz: use "
                                f"epochs of at least 2 samples (e.g. data.seconds=4)")
            total = layout["n_records"] * layout["spr"]
            for onset, _, text in annotations:
                start = int(round(onset * layout["fs"]))
                if start + n <= total:
                    rows.append((len(self.files), start))
                    labels.append(0 if text == rest else 1)
            self.files.append(f)
            self.layouts.append(layout)
        if first is None:
            raise UserError(f"no file of {source} can be read as EDF")
        if not rows:
            raise UserError(f"no annotated epochs of {seconds} s found in {source}")
        self.fs, self.channel_names, self.length = float(first[1]), first[2], n
        self.sample_shape = (len(first[2]), n)
        self._rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.sample_shape), np.float32)
        n = self.length
        for k, (fi, start) in enumerate(rows.tolist()):
            lay = self.layouts[fi]
            spr, per = lay["spr"], lay["per_record"]
            r0, r1 = start // spr, (start + n - 1) // spr + 1
            with open(self.files[fi], "rb") as f:
                f.seek(lay["header"] + 2 * per * r0)
                raw = f.read(2 * per * (r1 - r0))
            if len(raw) != 2 * per * (r1 - r0):
                raise UserError(f"{self.files[fi]} was cut short after it was indexed: re-copy it and run again")
            data = np.frombuffer(raw, dtype="<i2").reshape(r1 - r0, per)
            d = data[:, lay["columns"]].transpose(1, 0, 2).reshape(len(lay["columns"]), -1)  # (C, records * spr)
            d = d[:, start - r0 * spr:start - r0 * spr + n].astype(np.float32)
            out[k] = (d - lay["dmin"]) * lay["scale"] + lay["pmin"]
        return out

    def __repr__(self) -> str:
        return f"EdfEpochs({str(self.root)!r}, {len(self)} epochs of {self.sample_shape} from {len(self.files)} files)"


def open_series(source, *, length: int | None = None, fitted: dict | None = None, seed: int = 0) -> NpySeries:
    """The ``series`` loader's data.stream=true form, with the files :func:`polyjepa.timeseries.data.load_series`
    reads: an .npy memory-mapped; an .npz's series array memory-mapped (labels read whole); a CSV/TSV file (one
    series per row) or a UCR 2018 ``NAME_TRAIN.tsv`` (with ``NAME_TEST.tsv`` beside it as the official test
    split, ``test_rows``) parsed once, a block of rows at a time, into a memory-mapped cache. The series, labels
    (class codes, or float targets when the numbers are not all whole), padding and split are the in-memory
    loader's."""
    from ..data.sources import label_vector, labels_or_targets
    from .data import _ucr_pair

    path = Path(str(source))
    length = (fitted or {}).get("length", length)
    if not path.is_file() or path.suffix not in (".npy", ".npz", ".csv", ".tsv", ".txt"):
        what = "a bundled data set, read into memory" if not path.exists() else "not a series file"
        raise UserError(f"data.stream=true for series memory-maps an .npy file (or reads an .npz, .csv or UCR .tsv "
                        f"lazily), not {str(source)!r} ({what}): pass such a file, or drop data.stream")
    labels, test_rows = None, None
    if path.suffix == ".npy":
        stream = NpySeries(path, length=length)
    elif path.suffix == ".npz":
        from ..data.lazy import npz_members
        from .data import X_KEYS, Y_KEYS

        keys = npz_members(path)
        xk = next((k for k in X_KEYS if k in keys), None)
        if xk is None:
            raise UserError(f"{path} has arrays {keys} but no series: store them under one of {', '.join(X_KEYS)}")
        stream = NpySeries(path, length=length, key=xk)
        yk = next((k for k in Y_KEYS if k in keys), None)
        if yk is not None:
            from ..data.sources import read_numpy

            with read_numpy(path) as z:  # only this member is read
                labels = labels_or_targets(label_vector(z[yk]))[0]
    else:
        from .csvseries import csv_series_cache

        test_file = _ucr_pair(path)
        files = [path] if test_file is None else [path, test_file]
        label_first = path.name.upper().endswith(("_TRAIN.TSV", "_TEST.TSV"))
        cache, ys = csv_series_cache(files, label_first=label_first)
        stream = NpySeries(cache, length=length, name=path)
        if ys[0] is not None:
            labels = labels_or_targets(*ys) if len(ys) > 1 else labels_or_targets(ys[0])
            if len(ys) > 1:
                test_rows = np.arange(len(ys[0]), len(ys[0]) + len(ys[1]), dtype=np.int64)
            labels = np.concatenate(labels)
    if labels is not None and len(labels) != len(stream):
        raise UserError(f"{source}: {len(labels)} labels for {len(stream)} series: store one label per series")
    stream.labels, stream.test_rows = labels, test_rows
    stream.meta = {"length": stream.sample_shape[-1]}
    return stream


def open_edf_epochs(source, *, seconds: float = 4.0, rest: str = "T0", fitted: dict | None = None,
                    seed: int = 0) -> EdfEpochs:
    """The ``edf_epochs`` loader's data.stream=true form: epochs read from the files on access."""
    stream = EdfEpochs(str(source), seconds=seconds, rest=rest, length=(fitted or {}).get("length"))
    stream.meta = {"length": stream.length, "fs": stream.fs, "channels": len(stream.channel_names)}
    return stream
