"""EEG (EDF) and audio (WAV) larger than is comfortable in memory: the lazy path (data.stream=true) vs in memory.

    python benchmarks/streaming_modalities.py [--edf-files 4] [--edf-hours 1.0] [--clips 400] [--clip-seconds 30]
                                              [--steps 10] [--reads 30] [--modes edf,audio] [--folder DIR]

Generates, under ``--folder`` (default: a temporary folder), a folder of EDF+ files (``--edf-files`` recordings
of ``--edf-hours`` hours, 32 channels at 256 Hz, 16-bit, 1-s records, an annotation T0/T1/T2 every 4 s) and a
folder of 16-bit mono WAV clips (``--clips`` of ``--clip-seconds`` s at 22,050 Hz, tones and noise, 4 class
sub-folders). Then, each in a fresh process with 1 torch thread and no DataLoader workers (so that one process
holds everything a path reads), prepares the data as ``polyjepa pretrain RECIPE --data FOLDER`` does, with and
without ``data.stream=true`` (recipes eegjepa and ajepa), reads ``--reads`` random batches, and trains the
recipe's model for ``--steps`` steps. The lazy audio path runs twice: its first opening decodes the clips into
the spectrogram cache (a fresh one under ``--folder``), later runs reuse it. Each path runs ``--repeats`` times,
interleaved. Reports the time to get ready (index + statistics, or load + normalise),
batch reads per second, training samples/s, and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _memory import (fresh_cache, generate, interleaved, lazy_against_memory, prepare_read_train,
                     report, representative, scratch_folder)

FS, CHANNELS, CLIP_RATE = 256, 32, 22050
RECIPES = {"edf": ("eegjepa", ["tokenizer.patch_size=128", "encoder.depth=2", "train.batch_size=32"]),
           "audio": ("ajepa", ["train.batch_size=32", "train.max_epochs=null"])}


def write_edf_folder(root: Path, files: int, hours: float, seed: int = 0) -> None:
    """``files`` EDF+ recordings (32 channels at 256 Hz, 1-s records, annotations every 4 s) under ``root``."""
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records, ann_len, ns = int(hours * 3600), 32, CHANNELS + 1

    def f(vals, w):
        return "".join(str(v).ljust(w)[:w] for v in vals).encode("latin-1")

    for k in range(files):
        labels = [f"EEG{c:02d}" for c in range(CHANNELS)] + ["EDF Annotations"]
        head = (f(["0"], 8) + f(["x"], 80) + f(["x"], 80) + f(["01.01.01"], 8) + f(["00.00.00"], 8)
                + f([256 * (ns + 1)], 8) + f(["EDF+C"], 44) + f([records], 8) + f([1], 8) + f([ns], 4))
        head += (f(labels, 16) + f([""] * ns, 80) + f(["uV"] * ns, 8) + f([-3276.8] * CHANNELS + [-1], 8)
                 + f([3276.7] * CHANNELS + [1], 8) + f([-32768] * CHANNELS + [-32768], 8)
                 + f([32767] * CHANNELS + [32767], 8) + f([""] * ns, 80) + f([FS] * CHANNELS + [ann_len], 8)
                 + f([""] * ns, 32))
        freqs = rng.uniform(1, 40, CHANNELS)[:, None]
        with open(root / f"S{k:03d}.edf", "wb") as out:
            out.write(head)
            for r0 in range(0, records, 60):  # a minute of records at a time
                r1 = min(r0 + 60, records)
                t = np.arange(r0 * FS, r1 * FS) / FS
                x = 400 * np.sin(2 * np.pi * freqs * t) + rng.normal(0, 200, (CHANNELS, len(t)))
                digital = np.clip(np.rint(x * 10), -32768, 32767).astype("<i2")        # 0.1 uV per step
                block = digital.reshape(CHANNELS, r1 - r0, FS).transpose(1, 0, 2)      # (records, C, FS)
                for r in range(r0, r1):
                    tal = f"+{r}\x14\x14\x00" + (f"+{r}\x154\x14T{(r // 4) % 3}\x14\x00" if r % 4 == 0 else "")
                    out.write(block[r - r0].tobytes() + tal.encode("latin-1").ljust(2 * ann_len, b"\x00"))


def write_wav_folder(root: Path, clips: int, seconds: float, seed: int = 0) -> None:
    """``clips`` 16-bit mono WAV clips of ``seconds`` s (a tone per class plus noise) in 4 class sub-folders."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CLIP_RATE)) / CLIP_RATE
    for i in range(clips):
        c = i % 4
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        wave = 0.3 * np.sin(2 * np.pi * (220 * (c + 1) + rng.uniform(-20, 20)) * t) + 0.05 * rng.normal(size=t.size)
        sf.write(root / f"class{c}" / f"{i:05d}.wav", wave.astype(np.float32), CLIP_RATE, subtype="PCM_16")


def child(kind: str, mode: str, folder: str, steps: int, reads: int) -> dict:
    """Prepare, read and train in this process; returns the measurements."""
    from polyjepa.config import load_recipe

    recipe, overrides = RECIPES[kind]
    cfg = load_recipe(recipe, overrides + [f"data.source={folder}", f"data.stream={mode == 'lazy'}"])
    batch = int(cfg.train.batch_size)
    run = prepare_read_train(cfg, batch=batch, reads=reads, steps=steps)
    x = run.prepared.x_train
    return {"kind": kind, "mode": mode, "type": type(x).__name__, "n_train": len(x),
            "n_test": len(run.prepared.x_test), "sample_shape": list(x.shape[1:]), "batch": batch,
            "ready_seconds": run.ready_seconds, "rss_ready_mb": run.rss_ready_mb,
            "reads_per_second": run.reads_per_second, "samples_per_second": run.samples_per_second,
            "peak_rss_mb": run.peak_rss_mb, "model_parameters": sum(p.numel() for p in run.method.parameters())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edf-files", type=int, default=4)
    ap.add_argument("--edf-hours", type=float, default=1.0)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--clip-seconds", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--modes", default="edf,audio")
    ap.add_argument("--folder", default=None, help="where to generate the data (kept; reused when it exists)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each path, interleaved; the table takes each path's fastest training run (other "
                         "jobs on the machine slow single runs) and its highest peak memory")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.folder, args.steps, args.reads)))
        return 0

    started = time.perf_counter()
    tmp = scratch_folder(args, "streaming-modalities-")
    base = Path(args.folder)
    folders = {"edf": base / f"edf-{args.edf_files}x{args.edf_hours}h",
               "audio": base / f"wav-{args.clips}x{args.clip_seconds}s"}
    fresh_cache(base)  # the first opening decodes
    sizes = {}
    for kind in args.modes.split(","):
        folder = folders[kind]
        generate(folder, lambda: write_edf_folder(folder, args.edf_files, args.edf_hours) if kind == "edf"
                 else write_wav_folder(folder, args.clips, args.clip_seconds))
        sizes[kind] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20

    def round_of(rep: int) -> list[tuple[str, str]]:
        # audio's lazy path decodes the clips into a cache when first opened; later runs reuse the cache
        return [(kind, mode) for kind in args.modes.split(",")
                for mode in (("lazy-first", "lazy", "memory") if kind == "audio" and rep == 0 else ("lazy", "memory"))]

    runs = interleaved(
        args.repeats, round_of,
        lambda km: [__file__, "--child", km[0], km[1].removesuffix("-first"), "--folder", str(folders[km[0]]),
                    "--steps", str(args.steps), "--reads", str(args.reads)],
        lambda r: f"ready in {r['ready_seconds']:.1f} s, {r['reads_per_second']:.1f} batch reads/s, "
                  f"{r['samples_per_second']:.1f} training samples/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"({r['type']}, {r['n_train']} train samples of {r['sample_shape']})",
        label=" ".join)
    results = [representative(rs, pick="fastest", add={"path": mode}, highest=("peak_rss_mb", "rss_ready_mb"),
                              lowest=("ready_seconds",)) for (kind, mode), rs in runs.items()]

    cols = ["data", "path", "on disk (MB)", "train samples", "ready (s)", "batch reads/s", "training samples/s",
            "RSS when ready (MB)", "peak RSS (MB)"]
    what = {"edf": "EEG, EDF+ (eegjepa)", "audio": "audio, WAV (ajepa)"}
    label = {"lazy-first": "lazy (data.stream=true), first opening: decodes into the cache",
             "lazy": "lazy (data.stream=true)", "memory": "in memory"}
    rows = [[what[r["kind"]], f"{label[r['path']]}: {r['type']}",
             round(sizes[r["kind"]]), r["n_train"], round(r["ready_seconds"], 1), round(r["reads_per_second"], 1),
             round(r["samples_per_second"], 1), round(r["rss_ready_mb"]), round(r["peak_rss_mb"])] for r in results]
    notes = [f"EDF: {args.edf_files} recordings of {args.edf_hours} h, {CHANNELS} channels at {FS} Hz; epochs of 4 s "
             f"at every annotation; audio: {args.clips} WAV clips of {args.clip_seconds} s at {CLIP_RATE} Hz",
             f"each path in a fresh process, 1 torch thread, no DataLoader workers, fp32; {args.reads} random "
             f"batches read, then {args.steps} training steps of the recipe's model (batch 32); {args.repeats} "
             f"interleaved run(s) of each path: the fastest run's samples/s and ready time, the highest peak memory"]
    by = {(r["kind"], r["path"]): r for r in results}
    for kind in ("edf", "audio"):
        if (kind, "lazy") in by and (kind, "memory") in by:
            lz, mem = by[(kind, "lazy")], by[(kind, "memory")]
            notes.append(f"{kind}: " + lazy_against_memory(lz["peak_rss_mb"], mem["peak_rss_mb"],
                                                           lz["samples_per_second"], mem["samples_per_second"]))
    report("streaming_modalities", title="EEG and audio larger than memory: data.stream=true vs in memory",
           columns=cols, rows=rows, notes=notes, started=started,
           extra={"results": results, "args": vars(args) | {"folder": None}})
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
