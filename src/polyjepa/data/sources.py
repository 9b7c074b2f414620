"""Load image data sets into arrays: the bundled sets (scikit-learn digits, a 6,000-image MNIST sample),
.npz/.npy files, folders of images."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
X_KEYS = ("images", "x", "X", "data", "inputs")
Y_KEYS = ("labels", "y", "targets", "target")
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
# Image sets that install with the package, by name (see bundled/README.md for sources and licences).
BUNDLED = {"digits": "scikit-learn's 8x8 digits, 1,797 images",
           "mnist6k": "MNIST, 6,000 28x28 images drawn (seed 0) from the 10,000-image test set"}


@dataclass
class Loaded:
    """What a data loader returns, for any modality.

    x: (n, ...) float32 samples (images (n, C, H, W); series (n, C, L); tables (n, F); ...).
    y: optional labels (n,), used only by probes: int64 classes, or float64 values for a continuous target.
    x_test, y_test: an official test split, when the data set has one (else the split is drawn).
    meta: JSON-serialisable facts the model needs from the data (e.g. category counts); stored in
        the run and handed back to the loader (as ``fitted``) and to the assembler.
    """

    x: np.ndarray
    y: np.ndarray | None
    name: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    meta: dict = field(default_factory=dict)




def load_images(source: str, size: int | tuple[int, int] | None = None) -> Loaded:
    """Load a bundled set by name (:data:`BUNDLED`), a .npz/.npy file, or a folder of images.

    A .npz needs an image array under one of images/x/X/data/inputs and may have labels under
    labels/y/targets/target, and an official split as a string array ``split`` ('test' rows are held out).
    Arrays may be (n, H, W), (n, C, H, W) or (n, H, W, C) with C in 1, 3, 4; integer pixels are scaled by
    1/255 (1/16 for digits). A folder holds images directly or one sub-folder per class (the class is the label); if any of its images has colour, all are read as RGB.
    ``size`` (``data.size``: an int or [H, W]) scales every image to cover that size, keeping its
    aspect ratio, and crops the centre; without it a folder's images must all have one size.
    """
    size = _check_size(size)
    if source == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return Loaded(resize_center(d.images[:, None].astype(np.float32) / 16.0, size), d.target.astype(np.int64),
                      "digits")
    if source in BUNDLED:
        loaded = _load_npz(BUNDLED_DIR / f"{source}.npz")
        loaded.x, loaded.name = resize_center(loaded.x, size), source
        return loaded
    path = Path(source)
    if not path.exists():
        raise UserError(f"data path {source!r} does not exist: pass an existing .npz/.npy file, a folder of "
                        f"images, or a bundled set ({', '.join(BUNDLED)})")
    if path.is_dir():
        return _load_folder(path, size)
    if path.suffix == ".npz":
        loaded = _load_npz(path)
        loaded.x = resize_center(loaded.x, size)
        if loaded.x_test is not None:
            loaded.x_test = resize_center(loaded.x_test, size)
        return loaded
    if path.suffix == ".npy":
        return Loaded(resize_center(to_nchw(read_numpy(path), str(path)), size), None, path.name)
    if path.suffix == ".tar":
        raise UserError(f"{source!r} is a tar shard: shards are read lazily, with data.stream=true")
    raise UserError(f"cannot read {source!r}: use a .npz or .npy file, a folder of images, or a bundled set "
                    f"({', '.join(BUNDLED)})")


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in hw):
        raise UserError(f"data.size must be a positive int or [height, width], got {size!r}")
    return int(hw[0]), int(hw[1])


def resize_center(x: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(n, C, H, W) float images scaled (bilinear, antialiased) to cover ``size``, then centre-cropped to it."""
    if size is None or tuple(x.shape[2:]) == size:
        return x
    import torch
    import torch.nn.functional as F

    (h, w), (th, tw) = x.shape[2:], size
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    out = F.interpolate(torch.from_numpy(np.ascontiguousarray(x)), size=(nh, nw), mode="bilinear",
                        align_corners=False, antialias=True)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(out[:, :, top:top + th, left:left + tw].numpy())


def label_vector(y):
    """Labels as a 1-D array: a column (n, 1), as MATLAB or HDF5 exports store them, is flattened."""
    y = np.asarray(y)
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def labels_or_targets(*ys) -> list[np.ndarray]:
    """Class labels (int64, codes shared across the arrays) or, for a continuous target, float64 values.

    A target is continuous when every value is a number (numeric arrays, or strings that parse as
    numbers, as CSV cells do) and at least one is not a whole number: probes then report R^2 and RMSE.
    Integer labels are kept as they are; anything else (whole-number floats such as UCR's 1.0/2.0,
    names) becomes class codes. NaN or inf labels are an error.
    """
    ys = [np.asarray(y) for y in ys]
    both, cuts = np.concatenate(ys), np.cumsum([len(y) for y in ys])[:-1]
    if both.dtype.kind in "iu":
        return [y.astype(np.int64) for y in ys]
    if both.dtype.kind == "f" and not np.isfinite(both).all():
        raise UserError(f"{int((~np.isfinite(both)).sum())} of {len(both)} labels are NaN or inf: drop those "
                        f"samples or give them a label")
    try:
        values = both.astype(np.float64) if both.dtype.kind in "fbUS" else None
    except ValueError:  # names
        values = None
    if values is not None and np.isfinite(values).all() and (values != np.round(values)).any():
        return np.split(values, cuts)
    return np.split(np.unique(both, return_inverse=True)[1].astype(np.int64), cuts)


def sample_labels(y, n: int, what: str, noun: str) -> np.ndarray:
    """One label per sample (``label_vector`` of ``y``, checked against ``n`` samples), as ``labels_or_targets``
    gives them: class codes or a continuous target."""
    y = label_vector(y)
    if y.shape != (n,):
        raise UserError(f"{what}: labels have shape {y.shape} but there are {n} {noun}s: store one label per {noun}")
    return labels_or_targets(y)[0]


def part_labels(ys, ns, what: str, noun: str) -> list[np.ndarray]:
    """:func:`sample_labels` of the parts of one data set (train, test) coded together, so that a class has one
    code in every part (coded apart, 'sofa' was 1 in a train part holding 'chair' and 0 in a test part without)."""
    ys = [label_vector(y) for y in ys]
    for y, n in zip(ys, ns):
        if y.shape != (n,):
            raise UserError(f"{what}: labels have shape {y.shape} but there are {n} {noun}s: store one label per "
                            f"{noun}")
    return labels_or_targets(*ys)


def read_numpy(path: Path):
    """``np.load`` without unpickling; a file that is not NumPy's, a corrupt one or one holding object
    arrays gets one line that says which and how to re-create it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if not (head.startswith(b"PK") or head == b"\x93NUMPY"):
        raise UserError(f"{path} is not a NumPy file (.npy or .npz archive): write it with numpy.save / numpy.savez")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # zip or header corruption, pickled object arrays
        hint = " (no object arrays: polyjepa does not unpickle)" if "pickle" in str(e) else ""
        raise UserError(f"cannot read {path}: {type(e).__name__}: {e}; re-create it with numpy.save / "
                        f"numpy.savez{hint}") from None


def read_npz(path: Path, what: str = "these data"):
    """:func:`read_numpy` for data that live in an .npz archive of named arrays: a single .npy array is one
    clear line instead of an error on its first key."""
    z = read_numpy(path)
    if isinstance(z, np.ndarray):
        raise UserError(f"{path} is a single .npy array but {what} need an .npz archive of named arrays: write them "
                        f"with numpy.savez")
    return z


def _load_npz(path: Path) -> Loaded:
    z = read_numpy(path)
    with z:
        keys = list(z.keys())
        xk = next((k for k in X_KEYS if k in keys), None)
        if xk is None:
            raise UserError(f"{path} has arrays {keys} but no images: store them under one of {', '.join(X_KEYS)}")
        yk = next((k for k in Y_KEYS if k in keys), None)
        x = to_nchw(z[xk], f"{path}[{xk}]")
        y = z[yk] if yk else None
        split = z["split"] if "split" in keys else None
    y = None if y is None else sample_labels(y, len(x), str(path), "image")
    if split is None:
        return Loaded(x, y, path.name)
    test = official_test_rows(split, len(x), str(path))
    return Loaded(x[~test], None if y is None else y[~test], path.name, x_test=x[test],
                  y_test=None if y is None else y[test])


def official_test_rows(split, n: int, what: str) -> np.ndarray:
    """(n,) bool: the rows a ``split`` array marks 'test' (the data set's official test split); every other
    row ('train', 'val', ...) is for training."""
    split = np.asarray(split).astype(str)
    if split.shape != (n,) or not (split == "test").any() or (split == "test").all():
        raise UserError(f"{what}: its 'split' array (shape {split.shape}, values {sorted(set(split.ravel()))[:4]}) "
                        f"must name each of the {n} samples 'train' or 'test', with some of each: fix or drop it")
    return split == "test"


def _load_folder(path: Path, size: tuple[int, int] | None = None) -> Loaded:
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {path}")
    classes = sorted({p.parent.relative_to(path).as_posix() for p in files})
    labelled = len(classes) > 1 or classes[0] != "."
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except Exception as e:
            raise UserError(f"cannot read image {f}: {e}; remove or replace the file") from None
    mode = "L" if all(im.mode in ("L", "1", "LA", "I", "I;16") for im in images) else "RGB"
    arrays = [np.asarray(im.convert(mode), dtype=np.float32) / 255.0 for im in images]
    if size is not None:
        arrays = [resize_center(to_nchw(a[None], str(f)), size)[0] for a, f in zip(arrays, files)]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UserError(f"images under {path} have different sizes {sorted(shapes)[:3]}...: set data.size=[H,W] "
                        f"(e.g. data.size=32) to scale and centre-crop them to one size")
    x = to_nchw(np.stack(arrays), str(path))
    y = np.array([classes.index(p.parent.relative_to(path).as_posix()) for p in files]) if labelled else None
    return Loaded(x, y, path.name)


def to_nchw(a: np.ndarray, what: str) -> np.ndarray:
    """Validate an image array and return it as float32 (n, C, H, W), integers scaled to [0, 1]."""
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise UserError(f"{what} has dtype {a.dtype}: images must be a numeric array")
    if np.iscomplexobj(a):
        raise UserError(f"{what} is complex ({a.dtype}): images must be real numbers; store np.abs(x) or x.real, "
                        f"or the two parts as channels")
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4:
        if a.shape[1] not in (1, 3, 4) and a.shape[-1] in (1, 3, 4):
            a = a.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{what} has shape {a.shape}: images must be (n, H, W), (n, C, H, W) or (n, H, W, C)")
    if len(a) == 0:
        raise UserError(f"{what} is empty: it needs at least one image")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / (255.0 if a.max() > 1 else 1.0)
    with np.errstate(over="ignore"):
        wide = a
        a = a.astype(np.float32)
    if not np.isfinite(a).all():
        if np.isfinite(wide).all():
            raise UserError(f"{what} has values beyond float32's range (|x| > 3.4e38, largest {np.abs(wide).max():.3g}): "
                            f"rescale them, e.g. divide by their maximum")
        bad = int((~np.isfinite(a)).reshape(len(a), -1).any(1).sum())
        raise UserError(f"{what} contains NaN or inf in {bad} images: remove or impute them first")
    return np.ascontiguousarray(a)
