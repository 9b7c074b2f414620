"""The fresh-process harness of the memory benchmarks (imported as ``_memory`` from beside them).

A memory benchmark runs each way of reading its data (a *mode*: lazy, in memory, ...) in a fresh Python process, so
that a process's peak resident memory belongs to that way alone. The parent runs the modes interleaved (other jobs on
the machine slow single runs, and interleaving spreads that over the modes), reads the JSON line each child prints
last, keeps one run per mode with the highest peak memory of all its runs, prints a Markdown table and saves the
result. The children import this module too, so nothing heavy is imported at its top.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable

from _runs import print_table


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory (MB) of this process so far, or with ``children`` that of its largest ended child (the
    DataLoader workers it waited for)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Trained:
    """What :func:`prepare_read_train` measured in a child, with the prepared data and the trained method."""
    prepared: Any
    method: Any
    ready_seconds: float
    rss_ready_mb: float
    reads_per_second: float
    samples_per_second: float
    peak_rss_mb: float
    looked: Any = None


def prepare_read_train(cfg, *, batch: int, reads: int, steps: int,
                       look: Callable[[Any], Any] | None = None) -> Trained:
    """In a child, with 1 torch thread: prepare ``cfg``'s data as ``polyjepa pretrain`` does (timed, then the peak
    RSS), read ``reads`` random batches of ``batch`` training samples (timed), call ``look`` on the training samples
    (its answer is kept), and train the recipe's model (seed 0) for ``steps`` steps of ``batch`` with the library's
    loop: no DataLoader workers, fp32, no checkpoints."""
    import numpy as np
    import torch

    from polyjepa.build import build_method
    from polyjepa.config import DataConfig, TrainConfig, dataclass_from, part_kwargs
    from polyjepa.data.prepare import prepare
    from polyjepa.runner import train_method

    torch.set_num_threads(1)
    t = time.perf_counter()  # after the imports: "RSS when ready" counts them, the ready time does not
    prepared = prepare(dataclass_from(cfg, "data", DataConfig), None, part_kwargs(cfg, "data"))
    ready = time.perf_counter() - t
    rss_ready = peak_rss_mb()
    x = prepared.x_train
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(reads):
        x[np.sort(rng.choice(len(x), batch, replace=False))]
    read_s = time.perf_counter() - t
    looked = look(x) if look is not None else None
    method = build_method(cfg, tuple(x.shape[1:]), seed=0, meta=prepared.meta)
    tc = TrainConfig(batch_size=batch, max_steps=steps, checkpoint_every=0, monitor_every=0, num_workers=0,
                     threads=1, precision="32-true")
    with tempfile.TemporaryDirectory() as run:
        rec = train_method(method, x, train=tc, run_dir=run, progress=False)
    return Trained(prepared=prepared, method=method, ready_seconds=ready, rss_ready_mb=rss_ready,
                   reads_per_second=reads / read_s, samples_per_second=rec["samples_per_second"],
                   peak_rss_mb=peak_rss_mb(), looked=looked)



def scratch_folder(args, prefix: str) -> tempfile.TemporaryDirectory | None:
    """Point ``args.folder`` at a new temporary folder when none was given; returns that folder (to clean up when
    done) or None."""
    if args.folder is not None:
        return None
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    args.folder = tmp.name
    return tmp


def generate(path: Path, write: Callable[[], None]) -> None:
    """Make ``path`` with ``write`` (its parent folder first) unless it exists, and say how long that took."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    write()
    print(f"generated {path} in {time.perf_counter() - t:.0f} s", flush=True)


def fresh_cache(base: Path) -> None:
    """Point the library's cache (``POLYJEPA_CACHE``, inherited by the children) at a new folder under ``base``, so
    that the first lazy opening fills it and later ones reuse it."""
    os.environ["POLYJEPA_CACHE"] = str(base / f"cache-{time.time_ns()}")


def run_child(args: list[str], what: str) -> dict:
    """Run this Python on ``args`` in a fresh process and return the JSON of the last line it prints; a failed run
    prints the end of its stderr and ends the script with one line naming ``what``."""
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"the {what} run failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(repeats: int, modes: Callable[[int], Iterable[Hashable]], command: Callable[[Any], list[str]],
                describe: Callable[[dict], str] | None = None,
                label: Callable[[Any], str] = str) -> dict[Any, list[dict]]:
    """Each mode's runs, in order: ``repeats`` rounds, round ``rep`` running each of ``modes(rep)`` once in a fresh
    process on ``command(mode)``. With ``describe``, each run is printed as it ends, as ``label(mode)``, the round
    and ``describe(measurements)``."""
    runs: dict[Any, list[dict]] = {}
    for rep in range(repeats):
        for mode in modes(rep):
            r = run_child(command(mode), label(mode))
            runs.setdefault(mode, []).append(r)
            if describe is not None:
                print(f"{label(mode)} (run {rep + 1}): {describe(r)}", flush=True)
    return runs


def representative(rs: list[dict], *, pick: str, highest: Iterable[str], lowest: Iterable[str] = (),
                   drop: Iterable[str] = (), add: dict | None = None) -> dict:
    """One mode's runs ``rs`` as one: the run picked by training samples/s (``pick``: ``"fastest"``, or
    ``"median"``, the lower middle), without its ``drop`` keys, with ``add``, the highest value over the runs of each
    ``highest`` key (peak memory), the lowest of each ``lowest`` key, and every run's samples/s."""
    if pick == "fastest":
        best = max(rs, key=lambda r: r["samples_per_second"])
    elif pick == "median":
        best = sorted(rs, key=lambda r: r["samples_per_second"])[(len(rs) - 1) // 2]
    else:
        raise ValueError(f"pick {pick!r}: choose 'fastest' or 'median'")
    return {**{k: v for k, v in best.items() if k not in drop}, **(add or {}),
            **{k: max(r[k] for r in rs) for k in highest}, **{k: min(r[k] for r in rs) for k in lowest},
            "samples_per_second_runs": [r["samples_per_second"] for r in rs]}


def lazy_against_memory(lazy_mb: float, memory_mb: float, lazy_speed: float, memory_speed: float, *,
                        what: str = "peak RSS", times: bool = True) -> str:
    """A note comparing the lazy path's peak memory and training speed with the in-memory path's (``times``: with
    the ratio of the memories)."""
    ratio = f" (x{memory_mb / lazy_mb:.1f})" if times else ""
    return (f"{what} {lazy_mb:.0f} MB lazy vs {memory_mb:.0f} MB in memory{ratio}; training samples/s "
            f"{lazy_speed / memory_speed:.2f} of the in-memory path's")


def print_rows(columns: list[str], rows: list[list]) -> None:
    """Print ``columns`` and ``rows`` as a Markdown table after a blank line, every column left-aligned."""
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


def report(name: str, *, title: str, columns: list[str], rows: list[list], notes: list[str], started: float,
           extra: dict) -> None:
    """Print the table and the notes, save them as the result ``name`` (seconds since ``started``, a
    ``time.perf_counter()``) and say where it went."""
    print_rows(columns, rows)
    print("\n" + "\n".join(notes))
    from polyjepa.results import save_result

    path = save_result(name, title=title, columns=columns, rows=rows, seconds=time.perf_counter() - started,
                       notes=notes, extra=extra)
    print(f"wrote {path}")


# The child of the embed benchmarks: embeds argv[2] with the encoder saved in argv[1] into argv[3], lazily when
# argv[4] is "lazy", argv[5] rows a batch; it samples its anonymous resident memory (RssAnon: the process's own
# memory, without the pages of memory-mapped files) every 20 ms, and also reports its peak RSS, which counts them.
EMBED_CHILD = """
import json, resource, sys, threading, time, torch
torch.set_num_threads(1)
import numpy as np
from polyjepa.export.pretrained import PretrainedEncoder


def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


peak = {"anon": 0.0}
done = threading.Event()


def sample():
    while not done.is_set():
        peak["anon"] = max(peak["anon"], anon_mb())
        time.sleep(0.02)


enc = PretrainedEncoder.from_pretrained(sys.argv[1])
before = anon_mb()
watch = threading.Thread(target=sample, daemon=True)
watch.start()
t = time.perf_counter()
emb = enc.embed(sys.argv[2], out=sys.argv[3], stream=sys.argv[4] == "lazy", batch_size=int(sys.argv[5]))
seconds = time.perf_counter() - t
done.set()
watch.join()
print(json.dumps({"seconds": seconds, "rows": int(emb.shape[0]), "width": int(emb.shape[1]),
                  "anon_before_mb": before, "anon_peak_mb": max(peak["anon"], anon_mb()),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

EMBED_COLUMNS = ["process memory before embedding (MiB)", "peak process memory (MiB)",
                 "peak RSS with mapped file pages (MiB)", "seconds"]


def embed_each_way(folder: Path, data: Path, batch: int) -> dict[str, dict]:
    """Embed ``data`` with the encoder saved in ``folder/encoder``, lazily then in memory, each once in a fresh
    process, into ``folder/emb-<mode>.npy``; returns each way's measurements."""
    runs = interleaved(1, lambda rep: ("lazy", "memory"),
                       lambda mode: ["-c", EMBED_CHILD, str(folder / "encoder"), str(data),
                                     str(folder / f"emb-{mode}.npy"), mode, str(batch)])
    return {mode: rs[0] for mode, rs in runs.items()}


def embed_rows(runs: dict[str, dict], middle: list) -> list[list]:
    """The table's rows: each way, its rows embedded, the ``middle`` cells, then the :data:`EMBED_COLUMNS`."""
    return [[f"{m} (stream={m == 'lazy'})", r["rows"], *middle, round(r["anon_before_mb"]), round(r["anon_peak_mb"]),
             round(r["peak_mb"]), round(r["seconds"], 1)] for m, r in runs.items()]


def largest_difference(folder: Path, block: int = 50_000) -> float:
    """The largest absolute difference between the lazy and the in-memory embeddings under ``folder``, read
    ``block`` rows at a time."""
    import numpy as np

    lazy, memory = np.load(folder / "emb-lazy.npy", mmap_mode="r"), np.load(folder / "emb-memory.npy", mmap_mode="r")
    return max(float(np.abs(lazy[i:i + block] - memory[i:i + block]).max()) for i in range(0, len(lazy), block))


def embed_report(name: str, *, title: str, columns: list[str], rows: list[list], built: str, batch: int, data: str,
                 diff: float, started: float) -> None:
    """Print what was built, the table and the outputs' largest difference; save the result ``name`` (seconds since
    ``started``, a ``time.perf_counter()``), its notes naming the encoder ``built``, the ``batch``, the memory
    measured and the ``data``."""
    from polyjepa.results import save_result

    print(f"built: {built}")
    print_table(title, columns, rows)
    print(f"largest difference between the two outputs: {diff:.2e}")
    save_result(name, columns=columns, rows=rows, title=title, seconds=time.perf_counter() - started,
                notes=[built + f"; batch {batch}; each way in a fresh process, 1 thread",
                       "process memory: anonymous resident memory (RssAnon, sampled every 20 ms); the RSS column also "
                       "counts the pages of the memory-mapped input and output files, which the kernel can drop",
                       f"{data}; largest difference between the two outputs {diff:.2e}"])
