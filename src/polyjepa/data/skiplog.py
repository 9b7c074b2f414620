"""The skip log of a run: every process reading the run's data lazily (the main process, its DataLoader workers,
the other ranks of a launch, on any node) notes each file it skips, so that the count of skipped files and the
``max_bad`` limit cover the whole run.

Each process appends to a file of its own (``skipped.parts/HOST-PID.tsv`` beside the log), so no two processes
ever write one file: appends from several machines to one file on a network file system can overwrite each
other. Readers combine the parts in the order the skips happened; at the end of the run :func:`merge_skip_log`
writes them into the one ``skipped.tsv``."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

SKIP_LOG = "skipped.tsv"  # in the run directory: one line per skipped file, "path<TAB>reason"


def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def parts_dir(log: str | Path) -> Path:
    """The folder of the per-process parts of ``log``."""
    log = Path(log)
    return log.with_name(f"{log.stem}.parts")


def append_skip(log: str | Path, name: str, why: str) -> None:
    """Note that file ``name`` was skipped because ``why``: one line ``time<TAB>name<TAB>why`` appended, in a
    single ``write``, to this process's own part of ``log``."""
    line = f"{time.time_ns()}\t{_clean(name)}\t{_clean(why)}\n".encode("utf-8", "replace")
    folder = parts_dir(log)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{socket.gethostname()}-{os.getpid()}.tsv", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def read_skip_log(log: str | Path) -> dict[str, str]:
    """The distinct skipped files of ``log`` (its merged file, then its parts in the order the skips happened),
    each with its first reason ({} when nothing was logged)."""
    log = Path(log)
    entries = [(-1, *line.partition("\t")[::2]) for line in _lines(log)]
    folder = parts_dir(log)
    if folder.is_dir():
        for part in sorted(folder.glob("*.tsv")):
            for line in _lines(part):
                stamp, name, why = (line.split("\t", 2) + ["", ""])[:3]
                if stamp.isdigit() and name:   # a line still being written elsewhere is read next time
                    entries.append((int(stamp), name, why))
    out: dict[str, str] = {}
    for _, name, why in sorted(entries, key=lambda e: e[0]):
        if name and name not in out:
            out[name] = why
    return out


def merge_skip_log(log: str | Path) -> None:
    """Write the distinct skipped files of ``log`` and its parts into ``log`` (atomically), then remove the parts;
    called once no other process writes (at the end of a run)."""
    import shutil

    from ..train.checkpoint import atomic_write_text

    log, folder = Path(log), parts_dir(log)
    if not folder.is_dir():
        return
    seen = read_skip_log(log)
    atomic_write_text(log, "".join(f"{name}\t{why}\n" for name, why in seen.items()))
    shutil.rmtree(folder, ignore_errors=True)


def skip_summary(log: str | Path, first: int = 10) -> dict | None:
    """``{"count", "first"}`` of the distinct files in ``log`` (``first``: up to ``first`` paths, in the order
    they were skipped), or None when nothing was skipped."""
    seen = read_skip_log(log)
    if not seen:
        return None
    return {"count": len(seen), "first": list(seen)[:first]}


def attach_skip_log(sources, log: str | Path) -> None:
    """Make every lazy source in ``sources`` append its skips to ``log`` from now on, and log the files each has
    already skipped (while opening, splitting, or computing statistics); arrays and sources that skip nothing
    are left as they are."""
    log = Path(log)
    for src in sources:
        if not hasattr(src, "skipped"):
            continue
        reasons = getattr(src, "skip_reasons", {})
        logged = read_skip_log(log)
        for name in list(src.skipped):
            if str(name) not in logged:
                append_skip(log, str(name), reasons.get(str(name), "could not be read"))
        src.skip_log = log
