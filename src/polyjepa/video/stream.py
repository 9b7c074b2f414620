"""A folder of videos read lazily: each video is decoded once into a memory-mapped uint8 cache, and each access
reads the frames of one batch's clips from it, so memory holds a batch of clips, not the decoded videos."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..data.lazy import IndexedSource
from ..errors import UserError, warn
from .sources import VIDEO_SUFFIXES, read_video

CACHE_VERSION = 1


def _fingerprint(path: Path, options: dict) -> str:
    st = path.stat()
    key = json.dumps({"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "options": options, "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def decoded(path: Path, *, size: int | None, grayscale: bool, cache: Path) -> Path:
    """The .npy of ``path``'s frames (T, H, W, C) uint8 as :func:`read_video` decodes them, written once under
    ``cache`` (keyed by the file's path, size, modification time and the options; written under a temporary
    name and renamed, so an interrupted decoding is never read back)."""
    out = cache / f"{path.stem}-{_fingerprint(path, {'size': size, 'grayscale': grayscale})}.npy"
    if not out.exists():
        video = read_video(path, size=size, grayscale=grayscale)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(video))
            tmp.replace(out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return out


class VideoFolderStream(IndexedSource):
    """The clips of a video file or a folder of videos as ``source[idx] -> (k, C, T, H, W)`` float32, read on access.

    The clips, their order and their values are :func:`polyjepa.video.sources.load_clips`'s for videos:
    non-overlapping clips of ``frames`` frames taken every ``frame_step`` frames, optionally resized to ``size``
    and made grey, pixels scaled to [0, 1]; one sub-folder per class gives labels. Opening decodes each video
    once into ``cache`` (default: the user cache's ``videos`` folder; a second opening reuses it) and keeps
    the frame count; an access memory-maps the cached frames and copies those of its clips. A video that cannot
    be decoded is skipped with a warning naming it, listed in ``skipped`` and appended to ``skip_log`` (a run's
    skip log, see :mod:`polyjepa.data.skiplog`) when given.
    """

    def __init__(self, source: str | Path, *, frames: int, frame_step: int = 1, size: int | None = None,
                 grayscale: bool = False, cache: str | os.PathLike | None = None,
                 skip_log: str | os.PathLike | None = None):
        from ..eval.cache import cache_dir

        path = Path(source)
        if int(frames) < 1 or int(frame_step) < 1:
            raise UserError(f"data.frames={frames} and data.frame_step={frame_step} must both be 1 or more")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            files = [path]
        else:
            raise UserError(f"data.stream=true for clips reads a video or a folder of videos "
                            f"({', '.join(sorted(VIDEO_SUFFIXES))}), not {str(source)!r}: drop data.stream to read "
                            f"an array of clips into memory")
        if not files:
            raise UserError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {path}")
        folder = Path(cache) if cache is not None else cache_dir() / "videos"
        classes = sorted({p.parent.relative_to(path).as_posix() for p in files}) if path.is_dir() else ["."]
        labelled = len(classes) > 1 or classes[0] != "."
        self.root, self.frames, self.frame_step = path, int(frames), int(frame_step)
        self.files, self.decoded, self.skipped = [], [], []
        self.skip_log, self.skip_reasons = (None if skip_log is None else Path(skip_log)), {}
        rows, labels, shapes, top = [], [], set(), 0
        span = self.frames * self.frame_step
        for f in files:
            try:
                npy = decoded(f, size=size, grayscale=grayscale, cache=folder)
            except UserError as e:
                warn(f"skipping a video: {' '.join(str(e).split())}")  # decoders' messages run over lines
                self.skipped.append(str(f))
                self.record_skip(str(f), " ".join(str(e).split()))
                continue
            v = np.load(npy, mmap_mode="r")
            starts = range(0, len(v) - span + 1, span)
            if len(starts):
                shapes.add(v.shape[1:])
                top = max(top, int(v[:len(starts) * span:self.frame_step].max()))  # the clips' pixels, read once
            for start in starts:
                rows.append((len(self.files), start))
                labels.append(classes.index(f.parent.relative_to(path).as_posix()) if labelled else -1)
            self.files.append(f)
            self.decoded.append(npy)
            del v
        if not rows:
            if not self.files:
                raise UserError(f"no video in {source} can be read")
            raise UserError(f"the videos in {source} are shorter than one clip of {frames} frames every {frame_step}: "
                            f"lower data.frames or data.frame_step")
        if len(shapes) > 1:
            raise UserError(f"videos in {source} have different frame sizes {sorted(shapes)[:3]}: set data.size to "
                            f"resize")
        h, w, c = shapes.pop()
        if self.frames < 2:
            raise UserError(f"{source} gives {self.frames} frame(s) per clip: video methods need at least 2 frames; "
                            f"for single images use data.loader=images")
        self.scale = 255.0 if top > 1 else 1.0  # load_clips scales integer pixels when any exceeds 1
        self.sample_shape = (c, self.frames, h, w)
        self._rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64) if labelled else None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_maps", None)  # each DataLoader worker maps the cached files itself
        return state

    def _read(self, rows: np.ndarray) -> np.ndarray:
        maps = self.__dict__.setdefault("_maps", {})
        out = np.empty((len(rows), *self.sample_shape), np.float32)
        span = self.frames * self.frame_step
        for k, (fi, start) in enumerate(rows.tolist()):
            if fi not in maps:
                maps[fi] = np.load(self.decoded[fi], mmap_mode="r")
            clip = np.asarray(maps[fi][start:start + span:self.frame_step])         # (T, H, W, C) uint8
            out[k] = (clip.astype(np.float32) / self.scale).transpose(3, 0, 1, 2)
        return out

    def __repr__(self) -> str:
        return (f"VideoFolderStream({str(self.root)!r}, {len(self)} clips of {self.sample_shape} from "
                f"{len(self.files)} videos)")


def open_clips(source, *, frames: int | None = None, frame_step: int = 1, size: int | None = None,
               grayscale: bool = False, fitted: dict | None = None, seed: int = 0) -> VideoFolderStream:
    """The ``clips`` loader's data.stream=true form for videos: decoded once into a cache, clips read on access."""
    if frames is None:
        raise UserError("reading videos needs a clip length: set data.frames (e.g. data.frames=16)")
    stream = VideoFolderStream(str(source), frames=frames, frame_step=frame_step, size=size, grayscale=grayscale)
    stream.meta = {"layout": "CTHW"}
    return stream
