"""A trained encoder with the preprocessing it needs, saved as safetensors + JSON and loaded without the run."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import UserError

FORMAT = "polyjepa-encoder/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
NPY_LOADERS = ("images", "series", "points", "clips")  # loaders that read a .npy file of samples as given


class PretrainedEncoder(nn.Module):
    """A trained encoder and the preprocessing that ``polyjepa embed`` applies before it.

    ``embed(data)`` gives, for the same data, exactly what ``polyjepa embed RUN_DIR`` writes. ``forward``
    is the part that exports (ONNX, ``torch.export``): the data loader's output (per sample ``input_shape``,
    float32; for images pixels in [0, 1], channels first) is standardised with the training statistics
    (folded into the module) and pooled as the run's ``eval.pool`` / ``eval.layers`` read it.

    Shapes:
        forward(x (B, *input_shape)) -> (B, F); embed(data) -> (n, F) numpy float32.

    Build one with ``from_run(RUN_DIR)`` or ``from_pretrained(DIR_OR_HUB_ID)``; write one with
    ``save_pretrained(DIR)`` (``config.json`` + ``model.safetensors``) or ``push_to_hub(REPO_ID)``.
    """

    def __init__(self, encoder: nn.Module, config: dict):
        super().__init__()
        self.encoder = encoder.eval()
        self.config = config
        mean, std = _stats(config)
        shape = (1, -1) + (1,) * (len(config["input_shape"]) - 1)
        self.register_buffer("mean", None if mean is None else torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", None if std is None else torch.tensor(std, dtype=torch.float32).view(shape))

    # ---- what it is
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config["input_shape"])

    @property
    def pool(self) -> str:
        return self.config["embedding"]["pool"]

    @property
    def layers(self) -> int:
        return int(self.config["embedding"]["layers"])

    @property
    def dim(self) -> int:
        """Width F of an embedding."""
        return int(self.config["embedding"]["dim"])

    @property
    def recipe(self) -> dict:
        return self.config["recipe"]

    def __repr__(self) -> str:  # one line; ``self.encoder`` prints the layers
        return (f"PretrainedEncoder(recipe={self.recipe.get('name')!r}, input_shape={self.input_shape}, "
                f"pool={self.pool!r}, layers={self.layers}, dim={self.dim})")

    # ---- build and load
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike) -> PretrainedEncoder:
        """The encoder of a run directory as ``polyjepa embed`` reads it (the last checkpoint)."""
        from ..config import EvalConfig, dataclass_from
        from ..runner import load_run_method, open_run

        run_dir, cfg, info = open_run(run_dir)
        method, cfg, info = load_run_method(run_dir, cfg, info)
        from omegaconf import OmegaConf

        eval_cfg = dataclass_from(cfg, "eval", EvalConfig)
        encoder = method.encoder()
        recipe = OmegaConf.to_container(cfg, resolve=True)
        config = {"format": FORMAT, "polyjepa_version": __version__, "recipe": recipe,
                  "input_shape": list(info["input_shape"]), "seed": info["seed"], "meta": info.get("meta", {}),
                  "mean": info.get("mean"), "std": info.get("std"), "trained_on": _data_name(info.get("data")),
                  "embedding": {"pool": eval_cfg.pool, "layers": eval_cfg.layers, "dim": 0,
                                "encoder": getattr(method, "embed_from", "online")}}
        self = cls(encoder, config)
        self.config["embedding"]["dim"] = int(self._probe_width())
        return self

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, revision: str | None = None,
                        token: str | None = None) -> PretrainedEncoder:
        """Load from a folder written by ``save_pretrained``, or from a Hugging Face Hub repository id
        (``owner/name``, downloaded with ``huggingface_hub``: ``pip install 'polyjepa[hub]'``)."""
        path = Path(name_or_path)
        if not path.exists():
            from .hub import download

            path = download(str(name_or_path), revision=revision, token=token)
        return cls._load_folder(path)

    @classmethod
    def _load_folder(cls, path: Path) -> PretrainedEncoder:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        config = read_config(path)
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise UserError(f"{path} has {CONFIG_NAME} but no {WEIGHTS_NAME}: copy the whole folder that "
                            f"save_pretrained wrote, or save it again")
        encoder = build_encoder(config)
        try:
            state = load_file(weights)
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"cannot read {weights}: {' '.join(str(e).split())}: the file is corrupt or not "
                            f"safetensors; save the encoder again") from None
        own = encoder.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or wrong:
            what = "; ".join(f"{n}: {', '.join(ks[:3])}{' ...' if len(ks) > 3 else ''}"
                             for n, ks in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                             if ks)
            raise UserError(f"{weights} does not fit the encoder that {path / CONFIG_NAME} describes ({what}): "
                            f"keep the two files of one save_pretrained together")
        encoder.load_state_dict(state)
        return cls(encoder, config)

    # ---- write
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a short model card into ``directory``."""
        from safetensors.torch import save_file

        from ..train.checkpoint import atomic_write_text

        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise UserError(f"{directory} is a file: name a folder to save the encoder in")
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{WEIGHTS_NAME}.tmp"
        save_file({k: v.detach().contiguous().cpu() for k, v in self.encoder.state_dict().items()}, tmp,
                  metadata={"format": FORMAT})
        tmp.replace(directory / WEIGHTS_NAME)
        atomic_write_text(directory / CONFIG_NAME, json.dumps(self.config, indent=1))
        if not (directory / CARD_NAME).exists():
            atomic_write_text(directory / CARD_NAME, model_card(self.config))
        return directory

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload polyjepa encoder") -> str:
        """Upload the saved files to a Hugging Face Hub model repository (created if needed); returns its URL."""
        from .hub import upload

        with tempfile.TemporaryDirectory(prefix="polyjepa-hub-") as tmp:
            self.save_pretrained(tmp)
            return upload(Path(tmp), repo_id, private=private, token=token, commit_message=commit_message)

    # ---- use
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) loader output -> (B, F) embeddings (standardised here as in training)."""
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return self.encoder.embed(x, pool=self.pool, layers=self.layers)

    def load(self, data) -> np.ndarray:
        """The data loader's output for ``data``, before standardisation: (n, *input_shape) float32.

        ``data`` is what ``polyjepa embed --data`` takes (a path, a bundled data set name; a pandas
        DataFrame for tables), or an array / tensor of samples as a ``.npy`` file of that loader holds
        them (images (n, H, W), (n, C, H, W) or (n, H, W, C), integer pixels scaled; series (n, L) or
        (n, C, L); point clouds (n, P, 3); clips); for tables an (n, F) array of the training columns in order.
        An official test part (a data set that has one) follows the training part, as in ``polyjepa embed``.
        """
        from ..config import DataConfig, dataclass_from, part_kwargs
        from ..data.prepare import load_data
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(self.recipe)
        data_cfg = dataclass_from(cfg, "data", DataConfig)
        with _as_source(data, data_cfg.loader, self.config.get("meta") or {}) as source:
            data_cfg.source = source
            loaded = load_data(data_cfg, part_kwargs(cfg, "data"), self.config.get("meta") or {})
        x = loaded.x if loaded.x_test is None else np.concatenate([loaded.x, loaded.x_test])
        if tuple(x.shape[1:]) != self.input_shape:
            raise UserError(f"the data have per-sample shape {tuple(x.shape[1:])} but the encoder was trained on "
                            f"{self.input_shape}: use data of the training shape")
        return x

    def preprocess(self, data) -> np.ndarray:
        """What the encoder itself takes: ``load(data)`` standardised with the training statistics."""
        from ..data.prepare import normalise

        mean, std = _stats(self.config)
        return normalise(self.load(data), mean, std)

    def embed(self, data, *, batch_size: int = 256, out: str | os.PathLike | None = None,
              stream: bool | None = None) -> np.ndarray:
        """(n, F) float32 embeddings of ``data`` (see ``load``), equal to ``polyjepa embed`` on the same data.

        ``stream`` chooses how the data are read. ``None`` (the default) follows the run: an encoder trained
        with ``data.stream=true`` reads a path lazily through its loader's lazy form (a folder of images or tar
        shards, an ``.npy`` of series, EDF files, audio, videos, LiDAR sweeps: ``batch_size`` samples at a time in
        the source's order, an official test part after the rest; a Parquet or Arrow IPC table: ``batch_size``
        rows at a time in file order, encoded with the run's fitted schema); a loader without one, an array, a
        DataFrame, a table in another format (CSV) or an images path that is a file is read into memory. ``True``
        insists on the lazy form (one line when there is none); ``False`` reads the data into memory. Read lazily,
        a file that cannot be read is an error naming it, since its rows would be missing.

        ``out`` (a path ending in ``.npy``) writes the embeddings into that file through a memory map, batch by
        batch, and returns the written file memory-mapped read-only: with a lazy source, memory then holds one
        batch whatever the data's size. The file appears only when complete. Without ``out`` the embeddings
        are returned as an array in memory."""
        from ..eval.embed import embed_array

        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise UserError(f"the batch size must be a positive integer, got {batch_size!r}")
        out_path = check_out_path(out) if out is not None else None
        source = self.open_lazy(data) if stream is None else (self.open_lazy(data, required=True) if stream else None)
        if source is None:
            emb = embed_array(self.encoder, self.preprocess(data), pool=self.pool, layers=self.layers,
                              batch_size=batch_size)
            if out_path is None:
                return emb
            with _written(out_path, emb.shape) as mm:
                mm[:] = emb
            return np.load(out_path, mmap_mode="r")
        shape = (len(source), self.dim)

        def fill(target: np.ndarray) -> None:
            for i, x in _batches(source, batch_size):
                target[i:i + len(x)] = embed_array(self.encoder, x, pool=self.pool, layers=self.layers,
                                                   batch_size=batch_size)

        if out_path is None:
            emb = np.empty(shape, np.float32)
            fill(emb)
            return emb
        with _written(out_path, shape) as mm:
            fill(mm)
        return np.load(out_path, mmap_mode="r")

    def open_lazy(self, data, *, required: bool = False):
        """The lazy source (normalised with the training statistics) that ``embed`` reads ``data`` through when
        the encoder was trained with ``data.stream=true`` and ``data`` is a path, else None; with ``required``,
        one line saying why there is none instead of None. For a table it is a
        :class:`polyjepa.tabular.stream.TableBatches`, read in file order through ``batches`` (not indexed)."""
        from omegaconf import OmegaConf

        from ..config import DataConfig, dataclass_from, part_kwargs
        from ..data.prepare import opener_seed
        from ..registry import stream_openers

        cfg = OmegaConf.create(self.recipe)
        data_cfg = dataclass_from(cfg, "data", DataConfig)
        loader = data_cfg.loader
        openers = stream_openers()
        if not (data_cfg.stream or required):
            return None
        if not isinstance(data, (str, os.PathLike)):
            if required:
                raise UserError(f"embedding lazily (stream=True, --stream) reads a path, not a "
                                f"{type(data).__name__}: pass the data's path, or stream=False")
            return None
        path = Path(data)
        if loader == "images":
            if not (path.is_dir() or path.suffix == ".tar"):
                if required:
                    raise UserError(f"embedding images lazily (--stream) reads a folder of images or of .tar shards, "
                                    f"not {str(data)!r}: pass a folder, or drop --stream")
                return None
            return self._image_stream(path)
        if loader == "table":
            return self._table_batches(path, part_kwargs(cfg, "data"), required)
        if loader not in openers:
            if required:
                lazy = ", ".join(sorted({"images", "table", *openers}))
                raise UserError(f"embedding reads data.loader={loader} into memory (it reads {lazy} lazily): drop "
                                f"--stream (stream=False)")
            return None
        options = part_kwargs(cfg, "data")
        seed = opener_seed(loader, options, data_cfg.split_seed)
        source = _open_with(openers[loader], path, loader, options, self.config.get("meta") or {}, seed, required)
        if tuple(source.sample_shape) != self.input_shape:
            raise UserError(f"the samples of {path} have shape {tuple(source.sample_shape)} but the encoder was "
                            f"trained on {self.input_shape}: use data of the training shape")
        skipped = getattr(source, "skip_reasons", None)
        if skipped:
            name, why = next(iter(skipped.items()))
            raise UserError(f"{name} could not be read ({why}), so its samples would have no rows: fix or remove it "
                            f"({len(skipped)} such file(s))")
        mean, std = _stats(self.config)
        if mean is not None:
            source.set_normalisation(mean, std)
        return source

    def _image_stream(self, path: Path):
        recipe_data = self.recipe.get("data") or {}
        from ..data.sources import _check_size
        from ..data.stream import open_stream

        channels = self.input_shape[0]
        stream = open_stream(path, size=_check_size(recipe_data.get("size")), mode="L" if channels == 1 else "RGB",
                             max_bad=0)
        if tuple(stream.sample_shape) != self.input_shape:
            raise UserError(f"the images under {path} have shape {tuple(stream.sample_shape)} but the encoder was "
                            f"trained on {self.input_shape}: use images of the training size (or the run's data.size)")
        skipped = getattr(stream, "skip_reasons", None)
        if skipped:  # a shard cut short: its later images would have no rows
            name, why = next(iter(skipped.items()))
            raise UserError(f"{name} could not be read whole ({why}), so some images would have no rows: fix or "
                            f"remove it")
        mean, std = _stats(self.config)
        if mean is not None:
            stream.set_normalisation(mean, std)
        return stream

    def _table_batches(self, path: Path, options: dict, required: bool):
        """A Parquet or Arrow IPC file's rows encoded with the run's schema, read a record batch at a time; None
        for another table (a CSV, a bundled name) unless ``required``."""
        from ..tabular.stream import TableBatches, is_table_file

        if not is_table_file(path):
            if required:
                raise UserError(f"embedding a table lazily (--stream) reads a .parquet or Arrow IPC (.arrow, .feather) "
                                f"file, not {str(path)!r}: convert it to Parquet, or drop --stream")
            return None
        mean, std = _stats(self.config)
        try:
            table = TableBatches(path, fitted=self.config.get("meta") or {}, target=options.get("target"), mean=mean,
                                 std=std)
        except UserError as e:
            how = "stream=False or drop --stream" if required else \
                "the run was trained with data.stream=true, so embed reads lazily too; pass --no-stream (stream=False)"
            raise UserError(f"cannot read {str(path)!r} lazily with data.loader=table: {e} ({how} to read the table "
                            f"into memory)") from None
        if tuple(table.sample_shape) != self.input_shape:
            raise UserError(f"the rows of {path} encode to {table.sample_shape[0]} columns but the encoder was trained "
                            f"on {self.input_shape[0]}: use a table with the training columns")
        return table

    def example_input(self, batch: int = 2, seed: int = 0) -> torch.Tensor:
        """A (batch, *input_shape) float32 tensor of uniform [0, 1) values, on the encoder's device."""
        device = next(self.encoder.parameters()).device
        g = torch.Generator().manual_seed(seed)
        return torch.rand((batch, *self.input_shape), generator=g).to(device)

    @torch.no_grad()
    def _probe_width(self) -> int:
        return self.encoder.embed(torch.zeros((1, *self.input_shape)), pool=self.pool, layers=self.layers).shape[1]


def check_out_path(out: str | os.PathLike) -> Path:
    """``out`` as the path of a new ``.npy`` file; one line when it cannot be one."""
    path = Path(out)
    if path.suffix != ".npy" or path.is_dir():
        raise UserError(f"--out {out} must be a file path ending in .npy")
    return path


class _written:
    """Context manager: a float32 ``.npy`` memory map of ``shape`` to fill, renamed to ``path`` when complete
    (:func:`polyjepa.data.lazy.filled_npy`); an unwritable place is one line."""

    def __init__(self, path: Path, shape: tuple):
        self.path, self.shape, self.ctx = path, shape, None

    def __enter__(self) -> np.ndarray:
        from ..data.lazy import filled_npy

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.ctx = filled_npy(self.path, tuple(self.shape))
            return self.ctx.__enter__()
        except OSError as e:
            raise UserError(f"cannot write --out {self.path} ({e.strerror or e}): choose a writable folder") from None

    def __exit__(self, *exc):
        try:
            return self.ctx.__exit__(*exc)
        except OSError as e:
            raise UserError(f"cannot write --out {self.path} ({e.strerror or e}): choose a writable folder") from None


def _batches(source, batch_size: int):
    """(first output row, (k, *sample_shape) inputs) of a lazy source, ``batch_size`` samples at a time in the order
    ``embed`` writes them: a source read in order (a table's ``batches``) as it comes, else by index."""
    if hasattr(source, "batches"):
        start = 0
        for x in source.batches(batch_size):
            yield start, x
            start += len(x)
        return
    rows = _embedding_order(source)
    for i in range(0, len(rows), batch_size):
        yield i, source[rows[i:i + batch_size]]


def _embedding_order(source) -> np.ndarray:
    """The rows of a lazy source in the order ``embed`` writes them: its samples in order, an official test part
    (``test_rows``) after the rest, as the in-memory loaders give them."""
    test = getattr(source, "test_rows", None)
    if test is None:
        return np.arange(len(source))
    test = np.sort(np.asarray(test, dtype=np.int64))
    return np.concatenate([np.setdiff1d(np.arange(len(source)), test), test])


def _open_with(opener, path: Path, loader: str, options: dict, meta: dict, seed: int, required: bool):
    """A loader's lazy form opened on ``path`` as the run's data were (its options, the run's fitted meta)."""
    import importlib
    import inspect

    if isinstance(opener, str):
        module, name = opener.split(":")
        opener = getattr(importlib.import_module(module), name)
    params = inspect.signature(opener).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    try:
        return opener(str(path), fitted=meta, seed=seed, **options)
    except UserError as e:
        how = "stream=False or drop --stream" if required else \
            "the run was trained with data.stream=true, so embed reads lazily too; pass --no-stream (stream=False)"
        raise UserError(f"cannot read {str(path)!r} lazily with data.loader={loader}: {e} ({how} to read the data "
                        f"into memory)") from None


def _stats(config: dict):
    normalize = (config["recipe"].get("data") or {}).get("normalize", "channel")
    if normalize == "none" or config.get("mean") is None:
        return None, None
    return config["mean"], config["std"]


def _data_name(source) -> str | None:
    """The training data's name without the folders of the machine it was on."""
    return None if source is None else Path(str(source)).name


class _as_source:
    """Context manager: ``data`` as a source the recipe's loader reads; an array goes through a temporary
    .npy file (or, for tables, a DataFrame of the training columns), so that arrays and files are read alike."""

    def __init__(self, data, loader: str, meta: dict):
        self.data, self.loader, self.meta, self.tmp = data, loader, meta, None

    def __enter__(self):
        data = self.data
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        if not isinstance(data, np.ndarray):
            return os.fspath(data) if isinstance(data, os.PathLike) else data
        if data.dtype == object:
            raise UserError("the array holds Python objects: pass a numeric array (polyjepa does not unpickle)")
        if self.loader == "table":
            columns = self.meta.get("columns") or []
            if data.ndim != 2 or data.shape[1] != len(columns):
                raise UserError(f"a table array must be (rows, {len(columns)}) with the training columns in order, "
                                f"got shape {data.shape}: pass a pandas DataFrame or a table file instead")
            import pandas as pd

            return pd.DataFrame(data, columns=columns)
        if self.loader not in NPY_LOADERS:
            raise UserError(f"data.loader={self.loader} reads files, not arrays: pass the path that "
                            f"'polyjepa embed --data' would take")
        fd, name = tempfile.mkstemp(suffix=".npy", prefix="polyjepa-")
        os.close(fd)
        self.tmp = Path(name)
        np.save(self.tmp, data, allow_pickle=False)
        return str(self.tmp)

    def __exit__(self, *exc):
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
        return False


def read_config(path: Path) -> dict:
    """The checked config.json of a saved encoder folder; one line naming the problem otherwise."""
    if not path.is_dir():
        raise UserError(f"{path} is not a folder: pass the folder that save_pretrained wrote")
    file = path / CONFIG_NAME
    if not file.is_file():
        hint = (" (it is a run directory: load it with PretrainedEncoder.from_run, or save it first with "
                "polyjepa.save_pretrained(RUN_DIR, OUT_DIR))" if (path / "run.json").exists() else "")
        raise UserError(f"{path} is not a saved polyjepa encoder (no {CONFIG_NAME}){hint}: pass the folder "
                        f"that save_pretrained wrote")
    try:
        config = json.loads(file.read_text())
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read {file}: {e}: save the encoder again") from None
    fmt = config.get("format") if isinstance(config, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("polyjepa-encoder/"):
        raise UserError(f"{file} is not a polyjepa encoder config (format {fmt!r}): pass the folder that "
                        f"save_pretrained wrote")
    if fmt != FORMAT:
        raise UserError(f"{file} has format {fmt!r}, which this polyjepa {__version__} cannot read (it reads "
                        f"{FORMAT!r}): upgrade polyjepa (pip install -U polyjepa)")
    missing = [k for k in ("recipe", "input_shape", "seed", "embedding") if k not in config]
    if missing:
        raise UserError(f"{file} lacks {', '.join(missing)}: save the encoder again")
    return config


def build_encoder(config: dict) -> nn.Module:
    """The untrained encoder a config describes (the recipe's method, built as the run built it)."""
    from omegaconf import OmegaConf

    from ..build import build_method
    from ..config import validate

    try:
        cfg = validate(OmegaConf.create(config["recipe"]))
    except UserError as e:
        raise UserError(f"the saved recipe does not validate in this polyjepa: {e}") from None
    except Exception as e:  # not a mapping, values OmegaConf cannot hold
        raise UserError(f"the saved recipe cannot be read ({type(e).__name__}: {e}): save the encoder again") from None
    try:
        return build_method(cfg, tuple(config["input_shape"]), int(config["seed"]), config.get("meta")).encoder()
    except UserError:
        raise
    except (TypeError, ValueError, KeyError) as e:  # a hand-edited config: shapes or facts the parts cannot take
        raise UserError(f"cannot build the encoder the config describes ({type(e).__name__}: {e}): save the "
                        f"encoder again") from None


def model_card(config: dict) -> str:
    """A short README for a saved folder (the Hub shows it as the model card)."""
    recipe = config["recipe"]
    loader = (recipe.get("data") or {}).get("loader", "images")
    return "\n".join([
        "---", "library_name: polyjepa", "tags: [polyjepa, self-supervised, jepa]", "---", "",
        f"# {recipe.get('name', 'polyjepa')} encoder", "",
        str(recipe.get("description", "")).strip(), "",
        f"Input: samples of shape {tuple(config['input_shape'])} as the `{loader}` loader reads them; output: {config['embedding']['dim']}-wide embeddings "
        f"(pool `{config['embedding']['pool']}`).", "",
        "```python", "import polyjepa as pj", "", 'enc = pj.from_pretrained("THIS_FOLDER_OR_REPO")',
        "emb = enc.embed(x)   # numpy (n, F)", "```", ""])


def save_pretrained(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a run's encoder (as ``polyjepa embed`` reads it) with its preprocessing into ``out_dir``."""
    return PretrainedEncoder.from_run(run_dir).save_pretrained(out_dir)


def from_pretrained(name_or_path: str | os.PathLike, **kwargs) -> PretrainedEncoder:
    """``PretrainedEncoder.from_pretrained``: a saved folder or a Hugging Face Hub repository id."""
    return PretrainedEncoder.from_pretrained(name_or_path, **kwargs)
