"""Clip loaders: generated moving digits, clip arrays (.npz/.npy), and video files read with imageio."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..data.sources import X_KEYS, Y_KEYS, Loaded, label_vector, read_numpy, sample_labels
from ..errors import UserError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg"}


def load_moving_digits(source: str, *, frames: int = 8, frame_size: int = 64, digit_size: int = 28, digits: int = 1,
                       speed: tuple[float, float] = (1.0, 3.0), n_train: int = 4000, n_test: int = 1000,
                       test_digits: float = 0.2, seed: int = 0) -> Loaded:
    """Moving-digit clips made from the digit images in ``source`` (an MNIST-style .npz with images and
    labels, or 'digits' for scikit-learn's bundled 8x8 digits).

    The digit images are split once (``seed``) into a training pool and a ``test_digits`` fraction for
    the test pool, so train and test clips never share a digit image. The label is digit 0's class.
    Clips are (n, 1, frames, frame_size, frame_size) in [0, 1]. See :func:`moving_digits`.
    A ``source`` that holds clips (an array of them, a video or a folder of videos) is read as
    :func:`load_clips` reads it, so a moving-digits recipe or run also trains on or embeds one's own clips.
    """
    if _holds_clips(source):
        return load_clips(source, frames=frames)
    train, test, meta = moving_digit_split(source, frames=frames, frame_size=frame_size, digit_size=digit_size,
                                           digits=digits, speed=speed, n_train=n_train, n_test=n_test,
                                           test_digits=test_digits, seed=seed)
    name = "digits" if source == "digits" else Path(source).stem
    return Loaded(train.clips, train.labels[:, 0], f"moving-{name}", test.clips, test.labels[:, 0], meta)


def moving_digit_split(source: str, *, frames: int = 8, frame_size: int = 64, digit_size: int = 28, digits: int = 1,
                       speed: tuple[float, float] = (1.0, 3.0), n_train: int = 4000, n_test: int = 1000,
                       test_digits: float = 0.2, seed: int = 0):
    """(train MovingDigits, test MovingDigits, meta) from disjoint pools of ``source``'s digit images;
    the loader's clips with their velocities and positions (for motion probes)."""
    from .moving_digits import moving_digits

    images, labels, _ = _digit_images(source)
    if not 0 < test_digits < 1:
        raise UserError(f"data.test_digits must be a fraction in (0, 1), got {test_digits}")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test_pool = max(1, int(round(test_digits * len(images))))
    test_pool, train_pool = order[:n_test_pool], order[n_test_pool:]
    kw = dict(frames=frames, frame_size=frame_size, digit_size=digit_size, digits=digits, speed=tuple(speed))
    try:
        train = moving_digits(images[train_pool], labels[train_pool], n_train, seed=seed, **kw)
        test = moving_digits(images[test_pool], labels[test_pool], n_test, seed=seed + 1, **kw)
    except ValueError as e:
        raise UserError(f"cannot make moving digits from {source}: {e}") from None
    meta = {"layout": "CTHW", "generator": {**kw, "speed": list(kw["speed"]), "seed": seed, "n_train": n_train,
                                            "n_test": n_test, "test_digits": test_digits}}
    return train, test, meta


def _holds_clips(source: str) -> bool:
    """Whether ``source`` is clips rather than digit images: a video, a folder, a .npy, or an .npz whose
    array is (n, T, C, H, W) or (n, T, H, W) (more than one frame, no channel axis in either place)."""
    path = Path(source)
    if source == "digits" or not path.exists():
        return False
    if path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES | {".npy"}:
        return True
    if path.suffix.lower() != ".npz":
        return False
    with read_numpy(path) as z:
        xk = next((k for k in X_KEYS if k in z), None)
        shape = z[xk].shape if xk is not None else ()
    return len(shape) == 5 or (len(shape) == 4 and shape[1] not in (1, 3, 4) and shape[-1] not in (1, 3, 4))


def _digit_images(source: str) -> tuple[np.ndarray, np.ndarray, str]:
    if source == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images * (255 / 16)).astype(np.uint8), d.target.astype(np.int64), "digits"
    path = Path(source)
    if path.suffix != ".npz" or not path.exists():
        raise UserError(f"moving digits need an existing .npz of digit images with labels (e.g. "
                        f"../shared/data/mnist_t10k.npz) or 'digits', got {source!r}")
    with read_numpy(path) as z:
        xk = next((k for k in X_KEYS if k in z), None)
        yk = next((k for k in Y_KEYS if k in z), None)
        if xk is None or yk is None:
            raise UserError(f"{path} has arrays {list(z.keys())}: moving digits need images (under one of "
                            f"{', '.join(X_KEYS)}) and labels (under one of {', '.join(Y_KEYS)})")
        images, labels = z[xk], label_vector(z[yk])
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or labels.shape != (len(images),):
        hint = (f"; if these are clips of {images.shape[1]} frames, store them as (n, frames, 1, height, width)"
                if images.ndim == 4 else "")
        raise UserError(f"{path}: need (n, H, W) digit images and (n,) labels, or clips (n, frames, [channels,] "
                        f"height, width), got {images.shape} and {labels.shape}{hint}")
    return images, labels.astype(np.int64), path.stem


def load_clips(source: str, *, frames: int | None = None, frame_step: int = 1, size: int | None = None,
               grayscale: bool = False) -> Loaded:
    """Clips from a .npz/.npy array, one video file, or a folder of videos (one sub-folder per class).

    Arrays are (n, frames, channels, height, width), (n, frames, height, width, channels) or
    (n, frames, height, width), under one of images/x/X/data/inputs, optional labels beside them.
    Videos are read with imageio (``pip install 'polyjepa[video]'``; PyAV decodes mp4/avi/mkv/webm,
    Pillow reads GIFs) and cut into non-overlapping clips of ``frames`` frames taken every
    ``frame_step`` frames, optionally resized to ``size`` x ``size`` and made grayscale. Integer
    pixels are scaled to [0, 1]. Returns clips (n, C, T, H, W).
    """
    path = Path(source)
    if not path.exists():
        raise UserError(f"clip source {source!r} does not exist: pass a .npz/.npy of clips, a video file or a "
                        f"folder of videos")
    if path.suffix in (".npz", ".npy"):
        if path.suffix == ".npy":
            return Loaded(to_ncthw(read_numpy(path), str(path)), None, path.name, meta={"layout": "CTHW"})
        with read_numpy(path) as z:
            xk = next((k for k in X_KEYS if k in z), None)
            if xk is None:
                raise UserError(f"{path} has arrays {list(z.keys())} but no clips: store them under one of "
                                f"{', '.join(X_KEYS)}")
            yk = next((k for k in Y_KEYS if k in z), None)
            x, y = to_ncthw(z[xk], f"{path}[{xk}]"), (z[yk] if yk else None)
        y = None if y is None else sample_labels(y, len(x), str(path), "clip")
        return Loaded(x, y, path.name, meta={"layout": "CTHW"})
    if frames is None:
        raise UserError("reading videos needs a clip length: set data.frames (e.g. data.frames=16)")
    if int(frames) < 1 or int(frame_step) < 1:
        raise UserError(f"data.frames={frames} and data.frame_step={frame_step} must both be 1 or more")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise UserError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {path}")
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        files = [path]
    else:
        raise UserError(f"cannot read {source!r}: use a .npz/.npy of clips, a video "
                        f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder of videos")
    classes = sorted({p.parent.relative_to(path).as_posix() for p in files}) if path.is_dir() else ["."]
    labelled = len(classes) > 1 or classes[0] != "."
    clips, labels = [], []
    for f in files:
        video = read_video(f, size=size, grayscale=grayscale)             # (T, H, W, C) uint8
        span = frames * frame_step
        for start in range(0, len(video) - span + 1, span):
            clips.append(video[start:start + span:frame_step])
            labels.append(classes.index(f.parent.relative_to(path).as_posix()) if labelled else -1)
    if not clips:
        raise UserError(f"the videos in {source} are shorter than one clip of {frames} frames every {frame_step}: "
                        f"lower data.frames or data.frame_step")
    shapes = {c.shape for c in clips}
    if len(shapes) > 1:
        raise UserError(f"videos in {source} have different frame sizes {sorted(shapes)[:3]}: set data.size to resize")
    x = to_ncthw(np.stack(clips), str(source))
    y = np.asarray(labels, np.int64) if labelled else None
    return Loaded(x, y, path.name, meta={"layout": "CTHW"})


def read_video(path: Path, *, size: int | None = None, grayscale: bool = False) -> np.ndarray:
    """All frames of a video as (T, H, W, C) uint8 via imageio (its pyav plugin, or Pillow for GIFs)."""
    try:
        import imageio.v3 as iio
    except ImportError:
        raise UserError("reading video files needs imageio and PyAV: pip install 'polyjepa[video]'") from None
    try:
        with warnings.catch_warnings():  # imageio probes its deprecated plugins on files it cannot place
            warnings.simplefilter("ignore", DeprecationWarning)
            v = np.asarray(iio.imread(path, index=None))
    except Exception as e:  # codec or container problems come from many libraries
        raise UserError(f"cannot read video {path}: {type(e).__name__}: {e}; re-encode it (e.g. to H.264 mp4) or "
                        f"install PyAV (pip install 'polyjepa[video]')") from None
    if v.ndim == 3:   # (T, H, W) grayscale
        v = v[..., None]
    if v.ndim != 4:
        raise UserError(f"video {path} decoded to shape {v.shape}, not (frames, height, width, channels)")
    v = v[..., :3]
    if size is not None or grayscale:
        from PIL import Image

        out = []
        for frame in v:
            im = Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1 else frame)
            im = im.convert("L") if grayscale else im
            im = im.resize((size, size), Image.BILINEAR) if size is not None else im
            a = np.asarray(im)
            out.append(a[..., None] if a.ndim == 2 else a)
        v = np.stack(out)
    return v


def to_ncthw(a: np.ndarray, what: str) -> np.ndarray:
    """Validate clips given as (n, T, C, H, W), (n, T, H, W, C) or (n, T, H, W); return float32 (n, C, T, H, W)."""
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise UserError(f"{what} has dtype {a.dtype}: clips must be a numeric array")
    if a.ndim == 4:
        a = a[:, :, None]
    elif a.ndim == 5:
        if a.shape[2] not in (1, 3, 4):
            if a.shape[-1] in (1, 3, 4):
                a = a.transpose(0, 1, 4, 2, 3)
            else:
                raise UserError(f"{what} has shape {a.shape}: clips must be (n, frames, channels, height, width) "
                                f"with 1, 3 or 4 channels (or channels last); found no channel axis")
    else:
        raise UserError(f"{what} has shape {a.shape}: clips must be (n, frames, channels, height, width), "
                        f"(n, frames, height, width, channels) or (n, frames, height, width)")
    if len(a) == 0:
        raise UserError(f"{what} is empty: it needs at least one clip")
    if a.shape[1] < 2:
        raise UserError(f"{what} has {a.shape[1]} frame(s) per clip: video methods need at least 2 frames; "
                        f"for single images use data.loader=images")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / (255.0 if a.max() > 1 else 1.0)
    a = np.ascontiguousarray(a.astype(np.float32).transpose(0, 2, 1, 3, 4))
    if not np.isfinite(a).all():
        raise UserError(f"{what} contains NaN or inf: remove or impute them first")
    return a
