"""The ``av_clips`` loader's lazy form (``data.stream=true``): each video is decoded once, one at a time, into a
uint8 cache of its clips and a small cache of their spectrograms in the user cache; side a then reads a batch's
clips from the memory-mapped cache, and a later opening decodes nothing.

A file's entry is three files named by a hash of the video's (and its beside-audio file's) path, size and
modification time and of the decoding options: ``<stem>-<hash>.npy`` the clips (k, T, H, W, 3) uint8,
``<stem>-<hash>.mel.npy`` their log-mels (k, n_mels, F) float32, and ``<stem>-<hash>.json`` (written last) the
clip count, the audio samples per clip and the per-channel pixel sums. Each is written under a temporary name
and renamed when complete, so an interrupted decoding is never read back.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.lazy import IndexedSource, filled_npy
from . import clips as _clips

CACHE_VERSION = 1


def _stamp(path: Path | None) -> dict | None:
    if path is None:
        return None
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def entry_name(video: Path, audio: Path | None, options: dict) -> str:
    """``<stem>-<hash>``: the cache entry of a (video, audio) pair decoded with ``options``."""
    key = json.dumps({"video": _stamp(video), "audio": _stamp(audio), "options": options, "version": CACHE_VERSION},
                     sort_keys=True)
    return f"{video.stem}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _read_entry(folder: Path, name: str, options: dict) -> _clips.FileClips | None:
    """The cached share of a file, or None when the entry is missing or incomplete (then it is decoded again)."""
    meta = folder / f"{name}.json"
    if not meta.exists():
        return None
    try:
        info = json.loads(meta.read_text())
        count = int(info["count"])
        share = _clips.FileClips(count, int(info["samples"]), None, [int(v) for v in info["sums"]],
                                 [int(v) for v in info["squares"]])
        if count:
            clips = folder / f"{name}.npy"
            shape = np.load(clips, mmap_mode="r", allow_pickle=False).shape
            if shape != (count, options["frames"], options["size"], options["size"], 3):
                return None
            share.mels = np.load(folder / f"{name}.mel.npy", allow_pickle=False)
            if share.mels.shape[:2] != (count, options["n_mels"]) or share.mels.dtype != np.float32:
                return None
            share.clips = clips
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return share


def _write_entry(folder: Path, name: str, share: _clips.FileClips) -> _clips.FileClips:
    folder.mkdir(parents=True, exist_ok=True)
    clips = folder / f"{name}.npy"
    if share.count:
        with filled_npy(clips, share.clips.shape, np.uint8) as mm:
            mm[...] = share.clips
        with filled_npy(folder / f"{name}.mel.npy", share.mels.shape, np.float32) as mm:
            mm[...] = share.mels
    info = {"count": share.count, "samples": share.samples, "sums": share.sums, "squares": share.squares}
    meta = folder / f"{name}.json"
    tmp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(info))
        tmp.replace(meta)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    share.clips = clips if share.count else None
    return share


def cached_shares(files: list[tuple[Path, Path | None]], options: dict,
                  cache: str | os.PathLike | None = None) -> list[_clips.FileClips]:
    """Each (video, audio) pair's share of the pairs (:class:`polyjepa.paired.clips.FileClips`) with ``clips`` the
    path of its cached clips: read from ``cache`` (default: the user cache's ``av_clips`` folder) when there, else
    decoded by :func:`polyjepa.paired.clips.file_clips` (one file in memory at a time) and cached. A file that
    cannot be read stops the opening with the in-memory loader's error naming it."""
    from ..eval.cache import cache_dir

    folder = Path(cache) if cache is not None else cache_dir() / "av_clips"
    shares = []
    for video, audio in files:
        name = entry_name(video, audio, options)
        share = _read_entry(folder, name, options)
        if share is None:
            share = _write_entry(folder, name, _clips.file_clips(video, audio, **options))
        shares.append(share)
    return shares


class AVClipSource(IndexedSource):
    """The clips of ``av_clips`` as ``source[idx] -> (k, 3, T, H, W)`` float32, read from the files' cached
    (k_f, T, H, W, 3) uint8 clips (``paths``, None for a file without clips; ``counts`` clips each) in file
    order, divided by 255 and standardised per channel once :meth:`set_normalisation` is given the statistics.
    A boolean mask selects items as it does an array's rows. It pickles without its maps (a DataLoader worker
    maps the files itself)."""

    def __init__(self, paths: list[Path | None], counts: list[int], *, frames: int, size: int):
        self.paths = [None if p is None else Path(p) for p in paths]
        self.sample_shape = (3, int(frames), int(size), int(size))
        self._rows = np.array([(f, j) for f, k in enumerate(counts) for j in range(k)], np.int64).reshape(-1, 2)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_maps", None)
        return state

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, (np.ndarray, torch.Tensor)) and str(idx.dtype) in ("bool", "torch.bool"):
            idx = np.flatnonzero(np.asarray(idx))
        return super().__getitem__(idx)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        maps = self.__dict__.setdefault("_maps", {})
        raw = np.empty((len(rows), *self.sample_shape[1:], 3), np.uint8)     # (k, T, H, W, 3)
        for k, (f, j) in enumerate(rows.tolist()):
            if f not in maps:
                maps[f] = np.load(self.paths[f], mmap_mode="r", allow_pickle=False)
            raw[k] = maps[f][j]
        return _clips.clips_to_float(raw)

    def __repr__(self) -> str:
        return f"AVClipSource({len(self)} clips of {self.sample_shape} from {len(self.paths)} files)"
