"""The skip log of a run: one append-only text file in the run directory that every process reading the run's
data lazily (the main process, its DataLoader workers, the other ranks of a launch) appends a line to for each
file it skips, so that the count of skipped files and the ``max_bad`` limit cover the whole run."""
from __future__ import annotations

import os
from pathlib import Path

SKIP_LOG = "skipped.tsv"  # in the run directory: one line per skip, "path<TAB>reason"


def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def append_skip(log: str | Path, name: str, why: str) -> None:
    """Append one line ``name<TAB>why`` to ``log``. The line goes out in a single ``write`` on a descriptor opened
    with O_APPEND, which POSIX makes atomic for short writes, so lines of concurrent processes never interleave."""
    line = f"{_clean(name)}\t{_clean(why)}\n".encode("utf-8", "replace")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_skip_log(log: str | Path) -> dict[str, str]:
    """The distinct skipped files of ``log`` in the order first logged, each with its first reason ({} when the
    log does not exist)."""
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, why = line.partition("\t")
        if name and name not in out:
            out[name] = why
    return out


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
