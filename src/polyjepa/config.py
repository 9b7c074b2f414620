"""Recipes: YAML files that name the parts and their arguments; loading, overrides and validation."""
from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError


@dataclass
class DataConfig:
    """Where the data come from and how they are split for evaluation."""

    source: str | None = "digits"   # what the loader reads: 'digits', a .npz/.npy file, a folder of images, ...;
                                    # null in a recipe whose data the user brings (card.bring says what)
    loader: str = "images"          # the data.loader that reads source (modalities add theirs); its own
                                    # options sit beside these keys, e.g. data.window=256
    normalize: str = "channel"      # channel: per-channel standardisation with train statistics; none
    test_size: float = 0.2          # fraction (< 1) or count (>= 1) of labelled samples held out
    split_seed: int = 0             # the stratified train/test split
    max_samples: int | None = None  # use a stratified subset of this many samples (None: all)
    stream: bool = False            # read lazily while training: a folder of images or of tar shards (loader
                                    # images), a Parquet or Arrow table (table), and the loaders whose modality
                                    # declares a lazy form (series, edf_epochs, audio, clips, ...: the error
                                    # for any other loader lists them), paired (side a of an .npz); probes on
                                    # eval.max_samples


@dataclass
class TrainConfig:
    """Optimisation and run control."""

    batch_size: int = 64
    max_epochs: int = 10
    max_steps: int | None = None          # overrides max_epochs when set
    max_minutes: float | None = None      # fit the schedule to this budget and stop by it
    lr: float = 1e-3                      # peak learning rate (after warm-up)
    start_lr: float = 2e-4                # learning rate at step 0
    final_lr: float = 1e-6                # learning rate at the end of the cosine decay
    warmup: float = 0.1                   # warm-up length as a fraction of all steps
    weight_decay: tuple[float, float] = (0.04, 0.4)  # cosine schedule from start to end
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0         # max gradient norm (None: no clipping)
    accumulate: int = 1                   # micro-batches per step: each process's share of batch_size is split
                                          # into this many, one backward each, one optimizer step (less memory)
    grad_checkpoint: bool = False         # recompute each encoder/predictor block in the backward pass instead of
                                          # keeping its activations: less memory, about a third more compute
    accelerator: str = "auto"             # Fabric: cpu, cuda, mps, auto
    devices: int = 1                      # processes (DDP when > 1; gloo on CPU)
    num_nodes: int = 1                    # machines; set from the launch under a multi-node torchrun
    strategy: str = "auto"                # Fabric strategy: auto, ddp, ddp_spawn, fsdp
    precision: str = "auto"               # auto: bf16-mixed on a GPU with bf16, and on a CPU with bf16 units for
                                          # transformers >= 96 wide; 32-true elsewhere (train/precision.py)
    num_workers: int = 0                  # data-loading processes (masks are built there)
    threads: int | None = None            # torch intra-op threads (None: torch's default)
    log_every: int = 10                   # steps between metric rows
    monitor_every: int = 100              # steps between RankMe / kNN monitor evaluations
    checkpoint_every: int = 200           # steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2
    logger: str = "csv"                   # csv: metrics.csv; tensorboard: metrics.csv and RUN_DIR/tensorboard events


@dataclass
class EvalConfig:
    """How embeddings are read and probed."""

    pool: str = "mean"              # mean, mean+std, tokens, grid:K, ... (the encoder's embed pools)
    layers: int = 1                 # average of the last k encoder layers
    probe_C: Any = "auto"           # logistic-regression C, or 'auto' (chosen on a validation split)
    knn_k: int = 20
    monitor_samples: int = 1024     # samples used for RankMe / kNN while training
    baselines: bool = True          # raw input and random-init encoder, probed the same way
    cache_baselines: bool = True    # read/write the baselines in the user cache, keyed by the data's contents
    max_samples: int | None = None  # probes and baselines on a stratified sample of at most this many train and
                                    # this many test samples (None: all; streamed data: STREAM_EVAL_SAMPLES)
    max_bytes: int | None = 1 << 30  # streamed data: the probes' sample (train and test together, decoded as float32)
                                    # holds at most this many bytes, fewer samples when they are large (None: no bound)


@dataclass
class CardConfig:
    """What a recipe is, for people: shown by ``polyjepa recipes`` and the docs' recipe table.

    A recipe whose ``data.source`` is null needs data from the user; ``bring`` says what and where to get it.
    """

    modality: str = ""              # images, series, tables, audio, points, video, ...
    method: str = ""                # the paper or method, e.g. "I-JEPA (Assran et al., 2023)"
    data: str = ""                  # what the headline was measured on
    bring: str | None = None        # the data a user passes with --data, and where to get it (None: bundled)
    headline: str = ""              # the measured number next to its baselines, or why there is none
    command: str = ""               # the command that measured the headline
    minutes: str = ""               # time on 2 CPU cores, as measured


CORE_SECTIONS = ("name", "description", "card", "seed", "method", "data", "tokenizer", "encoder", "predictor", "masker",
                 "target", "objective", "regularizer", "augment", "train", "eval")
DATACLASS_SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "card": CardConfig}


def recipe_dir() -> Path:
    return Path(str(resources.files("polyjepa") / "recipes"))


def list_recipes() -> list[tuple[str, str]]:
    """(name, one-line description) of every bundled recipe."""
    out = []
    for p in sorted(recipe_dir().glob("*.yaml")):
        try:
            cfg = OmegaConf.load(p)
        except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as e:  # listed, not fatal
            out.append((p.stem, f"(cannot read this recipe: {' '.join(str(e).split())[:120]})"))
            continue
        out.append((p.stem, str(cfg.get("description", "")).strip().splitlines()[0] if cfg.get("description") else ""))
    return out


# The modality a recipe without a card.modality is listed under, from its data loader.
LOADER_MODALITY = {"images": "images", "series": "time series", "wfdb_beats": "biosignals (ECG)",
                   "edf_epochs": "biosignals (EEG)", "table": "tables", "audio": "audio", "points": "point clouds",
                   "moving_digits": "video", "clips": "video"}

# The polyjepa extra a loader needs for its bundled data sets (aeon's UCR/UEA sets, pandas for tables).
LOADER_EXTRA = {"series": "timeseries", "table": "tabular"}
# The extra a method needs whatever its data (the control methods make theirs in gymnasium's simulators).
METHOD_EXTRA = {"act_jepa": "control", "latent_dynamics": "control"}


def recipe_cards() -> list[dict[str, Any]]:
    """Every bundled recipe as a dict: name, description, its card's fields, and ``bundled`` (whether its
    default data installs with the project). A recipe that does not load is listed with ``error`` set."""
    out = []
    for p in sorted(recipe_dir().glob("*.yaml")):
        entry: dict[str, Any] = {"name": p.stem, "description": "", "error": None, "bundled": True, "extra": "",
                                 **{f.name: f.default for f in dataclasses.fields(CardConfig)}}
        try:
            cfg = OmegaConf.load(p)
            card = dataclass_from(cfg, "card", CardConfig)
        except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as e:  # listed, not fatal
            entry["error"] = f"cannot read this recipe: {' '.join(str(e).split())[:120]}"
            out.append(entry)
            continue
        entry.update(dataclasses.asdict(card))
        loader = (cfg.get("data") or {}).get("loader", DataConfig.loader)
        entry["modality"] = entry["modality"] or LOADER_MODALITY.get(loader, loader)
        method = cfg.get("method")
        method = method.get("name", "") if isinstance(method, DictConfig) else str(method or "")
        entry["extra"] = LOADER_EXTRA.get(loader, "") or METHOD_EXTRA.get(method, "")
        desc = cfg.get("description")
        entry["description"] = str(desc).strip().splitlines()[0] if desc else ""
        entry["bundled"] = (cfg.get("data") or {}).get("source", DataConfig.source) is not None
        out.append(entry)
    return out


def missing_data_message(cfg: DictConfig) -> str:
    """The one line that tells a user which data a recipe needs when none was passed."""
    card = dataclass_from(cfg, "card", CardConfig)
    what = card.bring or "data for its data.loader"
    return f"recipe {cfg.get('name', '?')!r} has no bundled data: pass --data with {what}"


def load_recipe(recipe: str, overrides: list[str] | None = None) -> DictConfig:
    """A bundled recipe by name, or a YAML file by path, with ``key=value`` overrides, validated."""
    path = Path(recipe)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = recipe_dir() / f"{recipe}.yaml"
        if not path.exists():
            names = ", ".join(n for n, _ in list_recipes())
            raise UserError(f"unknown recipe {recipe!r}: choose one of {names} (see 'polyjepa recipes'), "
                            f"or pass a path to a .yaml recipe")
    cfg = read_config(path, "recipe")
    cfg.setdefault("name", path.stem)
    cfg = apply_overrides(cfg, overrides or [])
    return validate(cfg)


def read_config(path: Path, what: str = "recipe") -> DictConfig:
    """A YAML file that must hold a mapping of sections; one-line errors for unreadable, empty or other YAML."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
        cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"cannot read {what} {path}: {' '.join(str(e).split())} (fix the YAML; a value "
                        f"holding ': ' needs quotes)") from None
    if raw is not None and not isinstance(raw, dict) or not isinstance(cfg, DictConfig):
        kind = "list" if isinstance(raw, list) else type(raw).__name__
        raise UserError(f"{what} {path} holds a YAML {kind}, not a mapping of sections (name:, method:, encoder:, "
                        f"train:, ...): start from a bundled recipe")
    if len(cfg) == 0:
        raise UserError(f"{what} {path} is empty: write its sections (method:, encoder:, train:, ...), or start "
                        f"from a bundled recipe (see 'polyjepa recipes')")
    return cfg


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"cannot read override {item!r}: write key=value, e.g. train.lr=0.001")
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    for key in keys:  # a part section the recipe lacks is added by naming its part, not by one of its keys alone
        section, _, rest = key.partition(".")
        if rest and rest != "name" and section not in DATACLASS_SECTIONS and cfg.get(section) is None \
                and f"{section}.name" not in keys and section in all_sections():  # (unknown ones: validate)
            raise UserError(f"recipe {cfg.get('name', '?')!r} has no {section} section, so {key} would change nothing: "
                            f"add the part with {section}.name=NAME (see docs/cli.md), or drop the override")
    cfg = drop_sized_keys(cfg, keys)
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except (OmegaConfBaseException, yaml.YAMLError) as e:  # YAMLError: a value that does not parse, e.g. "[8"
        raise UserError(f"cannot apply overrides {overrides}: {e}") from None


# The keys a named size sets (``encoder.size=tiny``: width, depth, heads).
SIZED_KEYS = ("dim", "depth", "heads")


def drop_sized_keys(cfg: DictConfig, keys: list[str]) -> DictConfig:
    """An override of ``SECTION.size`` sets the whole size: the recipe's own ``dim``/``depth``/``heads`` in
    that section are dropped, except those the same overrides also give (``encoder.size=tiny encoder.depth=6``)."""
    sized = {k.rpartition(".")[0] for k in keys if k.endswith(".size") and k.count(".") == 1}
    sized = {s for s in sized if isinstance(cfg.get(s), DictConfig)}
    if not sized:
        return cfg
    cfg = copy.deepcopy(cfg)
    for section in sized:
        node = cfg[section]
        for key in SIZED_KEYS:
            if key in node and f"{section}.{key}" not in keys:
                node.pop(key)
    return cfg


def _builder_keys(builder, injected: set[str]) -> set[str] | None:
    params = inspect.signature(builder).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None  # a builder taking **kwargs checks its own arguments
    return {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - injected - {"fitted"}


def section_keys(section: str, cfg: DictConfig) -> set[str] | None:
    """Allowed keys of a section (None: any)."""
    from .registry import part_builder

    if section == "data":
        builder, injected = part_builder("data", cfg)
        own = _builder_keys(builder, injected)
        return None if own is None else own | {f.name for f in dataclasses.fields(DataConfig)}
    if section in DATACLASS_SECTIONS:
        return {f.name for f in dataclasses.fields(DATACLASS_SECTIONS[section])}
    builder, injected = part_builder(section, cfg)
    if builder is None:
        return None
    keys = _builder_keys(builder, injected)
    return None if keys is None else {"name"} | keys


def all_sections() -> tuple[str, ...]:
    from .registry import families

    return CORE_SECTIONS + tuple(sorted(families() - set(CORE_SECTIONS)))


# Lower bounds of numeric keys: (bound, inclusive). None stays allowed where the default is None.
RANGES = {"train": {"batch_size": (1, True), "max_epochs": (1, True), "max_steps": (0, True), "max_minutes": (0, False),
                    "lr": (0, False), "start_lr": (0, True), "final_lr": (0, True), "grad_clip": (0, False),
                    "accumulate": (1, True),
                    "devices": (1, True), "num_nodes": (1, True), "num_workers": (0, True), "threads": (1, True), "log_every": (1, True),
                    "monitor_every": (0, True), "checkpoint_every": (0, True), "keep_checkpoints": (1, True)},
          "data": {"max_samples": (1, True), "test_size": (0, False)},
          "eval": {"knn_k": (1, True), "monitor_samples": (0, True), "max_samples": (2, True),
                   "max_bytes": (1, True)}}


def validate(cfg: DictConfig) -> DictConfig:
    """Reject unknown sections and keys with a message that lists the valid ones."""
    sections = all_sections()
    for key in cfg:
        if key not in sections:
            raise UserError(f"unknown config section {key!r}: valid sections are {', '.join(sections)}")
    for section in sections:
        node = cfg.get(section)
        if not isinstance(node, DictConfig):
            continue
        allowed = section_keys(section, cfg)
        if allowed is None:
            continue
        for key in node:
            if key not in allowed:
                raise UserError(f"unknown config key '{section}.{key}': valid keys for {section} are "
                                f"{', '.join(sorted(allowed))}")
    from .registry import check_option_types, part_builder

    for section in sections:  # a part's option of the wrong type (encoder.depth=x) fails now, not at build time
        if section in ("train", "eval") or not isinstance(cfg.get(section), DictConfig):
            continue
        builder, _ = part_builder(section, cfg)
        if builder is not None:
            check_option_types(section, builder, part_kwargs(cfg, section))
    for section, cls in DATACLASS_SECTIONS.items():
        obj = dataclass_from(cfg, section, cls)  # type errors surface now, not mid-run
        for key, (low, inclusive) in RANGES.get(section, {}).items():
            v = getattr(obj, key)
            if v is not None and not (v >= low if inclusive else v > low):
                raise UserError(f"config key '{section}.{key}' must be {'>=' if inclusive else '>'} {low}, got {v!r}")
        if section == "train" and not 0 <= obj.warmup <= 1:
            raise UserError(f"config key 'train.warmup' is a fraction of training: 0 to 1, got {obj.warmup!r}")
    if dataclass_from(cfg, "train", TrainConfig).logger not in ("csv", "tensorboard"):
        raise UserError("config key 'train.logger' must be 'csv' or 'tensorboard' (metrics.csv and TensorBoard "
                        "event files)")
    if cfg.get("data") is not None and cfg.data.get("source", "") is None and not dataclass_from(cfg, "card", CardConfig).bring:
        raise UserError(f"recipe {cfg.get('name', '?')!r} sets no data.source: say in card.bring which data a user "
                        f"passes with --data")
    if dataclass_from(cfg, "data", DataConfig).normalize not in ("channel", "none"):
        raise UserError("config key 'data.normalize' must be 'channel' or 'none'")
    return cfg


def dataclass_from(cfg: DictConfig, section: str, cls):
    node = cfg.get(section) or {}
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if cls is DataConfig:  # the loader's own options are not DataConfig fields
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in names}
    try:
        obj = cls(**values)
    except TypeError as e:
        raise UserError(f"bad {section} config: {e}") from None
    for f in dataclasses.fields(cls):
        v = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        # a number, also where the default is None (``int | None``, ``float | None``)
        numeric = (isinstance(default, (int, float)) and not isinstance(default, bool)) or \
            (default is None and f.type in ("int | None", "float | None"))
        if numeric and v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"config key '{section}.{f.name}' must be a number, got {v!r}")
        if isinstance(default, tuple) and all(isinstance(d, (int, float)) for d in default):
            if not (isinstance(v, (list, tuple)) and len(v) == len(default)
                    and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v)):
                raise UserError(f"config key '{section}.{f.name}' must be a list of {len(default)} numbers, "
                                f"e.g. {list(default)}, got {v!r}")
            setattr(obj, f.name, tuple(v))
    return obj


def part_kwargs(cfg: DictConfig, section: str) -> dict:
    """The arguments a recipe gives a part (for ``data``: the loader's own options)."""
    node = cfg.get(section)
    if node is None or isinstance(node, str):
        return {}
    d = OmegaConf.to_container(node, resolve=True)
    d.pop("name", None)
    if section == "data":
        for f in dataclasses.fields(DataConfig):
            d.pop(f.name, None)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


__all__ = ["CardConfig", "DataConfig", "missing_data_message", "recipe_cards", "EvalConfig", "TrainConfig", "dataclass_from", "list_recipes", "load_recipe",
           "part_kwargs", "to_yaml", "validate"]
