"""Names that recipes use for parts, and the builders behind them.

Each family (a recipe section: tokenizer, masker, ...) maps a name to ``(builder, injected)``:
``injected`` are the arguments the method assembler supplies from other parts or from the data
(grid, widths, input shape), so a recipe cannot set them.

Modalities plug in without touching this file: a sub-package ``polyjepa/<modality>/parts.py`` that
defines ``PARTS`` ({family: {name: (builder, injected)}}) and optionally ``ASSEMBLERS``
({method name: assemble(cfg, input_shape, meta) -> method}), ``DEFAULTS`` ({family: name}) and ``STREAMS``
({data loader name: "module:opener"}, the loader's lazy form for ``data.stream=true``) is found and merged
on first use. A method that is not trained by the image-style pipeline (e.g. a policy
run in a simulator) names its own entry in ``RUNNERS`` ({method name: run(cfg, out=, seed=, echo=) ->
summary}), which ``polyjepa pretrain`` calls instead. Users register their own parts with :func:`register`.

The ``data`` family holds loaders: ``loader(source, **options) -> Loaded``; a loader that takes
a ``fitted`` argument receives the metadata of the run it serves (e.g. a table's category codes).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
from typing import Any, Callable

from omegaconf import DictConfig

from .errors import UserError

DEFAULTS = {"method": "jepa", "tokenizer": "patch2d", "encoder": "vit", "predictor": "mask_token",
            "masker": "multiblock", "target": "ema", "objective": "latent_regression", "regularizer": "vcr",
            "invariance": "vicreg", "augment": "random_resized_crop", "data": "images"}

_USER: dict[str, dict[str, tuple[Callable, set[str]]]] = {}
_USER_ASSEMBLERS: dict[str, Callable] = {}
_USER_RUNNERS: dict[str, Callable] = {}
_USER_STREAMS: dict[str, Callable | str] = {}


def register(family: str, name: str, builder: Callable, injected: set[str] | tuple = (), *,
             assemble: Callable | None = None, run: Callable | None = None,
             stream: Callable | str | None = None) -> None:
    """Make ``builder`` available to recipes as ``{family: {name: <name>, ...}}``.

    ``injected`` names the builder arguments the assembler supplies (e.g. ``grid`` for a masker,
    ``image_size``/``in_channels``/``dim``/``input_shape``/``meta`` for a tokenizer). For the
    ``method`` family, ``assemble(cfg, input_shape, meta)`` builds the whole method from a recipe, or
    ``run(cfg, out=, seed=, echo=) -> summary`` replaces the whole of ``pretrain`` for it. For the ``data``
    family, ``stream`` (a function or "module:function") is the loader's lazy form under ``data.stream=true``:
    ``stream(source, *, fitted, seed, **options)`` returns a lazy source (see
    :func:`polyjepa.data.prepare.prepare`).
    """
    _USER.setdefault(family, {})[name] = (builder, set(injected))
    if assemble is not None:
        _USER_ASSEMBLERS[name] = assemble
    if run is not None:
        _USER_RUNNERS[name] = run
    if stream is not None:
        _USER_STREAMS[name] = stream
    _tables.cache_clear()
    stream_openers.cache_clear()


def _core() -> dict[str, dict[str, tuple[Callable, set[str]]]]:
    from .data.augment import RandomAffine, RandomResizedCrop
    from .data.sources import load_images
    from .masks.multiblock import MultiBlockMasker
    from .methods.invariance import Invariance
    from .methods.jepa import JEPA
    from .models.conditioned import ConditionedPredictor
    from .models.encoder import vit_encoder
    from .models.predictor import MaskTokenPredictor
    from .objectives.latent import latent_regression
    from .objectives.vcr import vcr_loss
    from .targets.ema import EMATarget
    from .tokenizers.patch2d import ConvStem2D, PatchEmbed2D

    return {
        "method": {"jepa": (JEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer",
                                    "invariance"})},
        "tokenizer": {"patch2d": (PatchEmbed2D, {"image_size", "in_channels", "dim"}),
                      "conv_stem": (ConvStem2D, {"image_size", "in_channels", "dim"})},
        "encoder": {"vit": (vit_encoder, set())},
        "predictor": {"mask_token": (MaskTokenPredictor, {"in_dim", "pos_embed"}),
                      "conditioned": (ConditionedPredictor, {"in_dim", "pos_embed"})},
        "masker": {"multiblock": (MultiBlockMasker, {"grid"})},
        "target": {"ema": (EMATarget, {"online"})},
        "objective": {"latent_regression": (latent_regression, {"pred", "target"})},
        "regularizer": {"vcr": (vcr_loss, {"z"})},
        "augment": {"random_resized_crop": (RandomResizedCrop, set()), "random_affine": (RandomAffine, set())},
        "invariance": {"vicreg": (Invariance, {"in_dim"})},
        "data": {"images": (load_images, {"source"})},
    }


def modality_modules() -> list[str]:
    """Sub-packages of polyjepa that contribute parts (those with a ``parts`` module)."""
    import polyjepa

    names = []
    for info in pkgutil.iter_modules(polyjepa.__path__):
        if info.ispkg and importlib.util.find_spec(f"polyjepa.{info.name}.parts") is not None:
            names.append(f"polyjepa.{info.name}.parts")
    return sorted(names)


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict, dict, dict, dict]:
    # Built lazily so that reading the registry costs nothing until a part is built.
    from .build import assemble_jepa

    table, assemblers, defaults, runners = _core(), {"jepa": assemble_jepa}, dict(DEFAULTS), {}
    for modname in modality_modules():
        mod = importlib.import_module(modname)
        for family, entries in getattr(mod, "PARTS", {}).items():
            for name, (builder, injected) in entries.items():
                table.setdefault(family, {})[name] = (builder, set(injected))
        assemblers.update(getattr(mod, "ASSEMBLERS", {}))
        runners.update(getattr(mod, "RUNNERS", {}))
        for family, name in getattr(mod, "DEFAULTS", {}).items():
            defaults.setdefault(family, name)
    for family, entries in _USER.items():
        table.setdefault(family, {}).update(entries)
    assemblers.update(_USER_ASSEMBLERS)
    runners.update(_USER_RUNNERS)
    return table, assemblers, defaults, runners


def families() -> set[str]:
    return set(_tables()[0])


def part_name(section: str, cfg: DictConfig | dict) -> str | None:
    node = cfg.get(section)
    if node is None:
        return None
    if isinstance(node, str):
        return node
    key = "loader" if section == "data" else "name"
    return node.get(key, _tables()[2].get(section))


def part_builder(section: str, cfg: DictConfig | dict) -> tuple[Callable | None, set[str]]:
    """(builder, injected argument names) for a section of a recipe; (None, {}) for free sections."""
    reg = _tables()[0]
    if section not in reg:
        return None, set()
    name = part_name(section, cfg)
    if name is None:
        return None, set()
    if name not in reg[section]:
        what = "data.loader" if section == "data" else section
        raise UserError(f"unknown {what} {name!r}: choose one of {', '.join(sorted(reg[section]))}")
    return reg[section][name]


def assembler(cfg: DictConfig | dict) -> Callable:
    """The function that puts the recipe's method together from its parts."""
    name = part_name("method", cfg) or DEFAULTS["method"]
    part_builder("method", cfg)  # unknown names fail with the list of known ones
    assemblers = _tables()[1]
    if name not in assemblers:
        raise UserError(f"method {name!r} has no assembler: register one with polyjepa.registry.register(..., assemble=)")
    return assemblers[name]


@functools.lru_cache(maxsize=1)
def stream_openers() -> dict[str, Callable | str]:
    """{data loader name: opener (a function or "module:function")}: the loaders with a lazy form
    (``data.stream=true``), declared by the modalities' ``STREAMS`` and by :func:`register` (images and tables
    have theirs in :mod:`polyjepa.data.prepare`)."""
    openers = {}
    for modname in modality_modules():
        openers.update(getattr(importlib.import_module(modname), "STREAMS", {}))
    openers.update(_USER_STREAMS)
    return openers


def method_runner(cfg: DictConfig | dict) -> Callable | None:
    """The recipe's method's own ``run`` (it trains and evaluates outside the image-style pipeline), or None."""
    name = part_name("method", cfg) or DEFAULTS["method"]
    return _tables()[3].get(name)


def _wants(param: inspect.Parameter) -> str | None:
    """What a builder's argument takes, as far as its default or annotation tells: 'true or false',
    'a number', 'a list of numbers', or None (unknown: anything goes)."""
    d = param.default
    if isinstance(d, bool):
        return "true or false"
    if isinstance(d, (int, float)):
        return "a number"
    if isinstance(d, (tuple, list)) and d and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d):
        return "a list of numbers"
    words = set(re.findall(r"[A-Za-z_]+", str(param.annotation))) if d is None or d is param.empty else set()
    if words & {"int", "float"} and not words & {"str", "Any", "tuple", "list", "Sequence", "dict", "Callable"}:
        return "a number"
    return None


def _fits(value: Any, wants: str) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if wants == "true or false":
        return isinstance(value, bool)
    if wants == "a number":
        return number
    return number or (isinstance(value, (tuple, list)) and all(_fits(v, "a number") for v in value))


def check_option_types(section: str, fn: Callable, kwargs: dict) -> None:
    """Refuse a recipe option that cannot be what the part takes (``masker.n_targets=abc``), naming it,
    before the part fails on it with a Python message."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and odd callables: nothing to check against
        return
    for key, value in kwargs.items():
        wants = _wants(params[key]) if key in params and value is not None else None
        if wants and not _fits(value, wants):
            default = params[key].default
            shown = "" if default is inspect.Parameter.empty else f" (default {default!r})"
            raise UserError(f"{section}.{key}={value!r} must be {wants}{shown}: fix it in the recipe or the override")


# What building a part from a bad setting raises where the part does not check it itself: a size of 0 or
# below fails in torch (RuntimeError) or in arithmetic.
BUILD_ERRORS = (TypeError, ValueError, ZeroDivisionError, IndexError, RuntimeError)


def build_part(section: str, cfg: DictConfig | dict, kwargs: dict, **injected: Any):
    builder, _ = part_builder(section, cfg)
    if builder is None:
        return None
    check_option_types(section, builder, kwargs)
    try:
        return builder(**kwargs, **injected)
    except BUILD_ERRORS as e:
        raise UserError(f"cannot build {section} {part_name(section, cfg)!r}: {e}") from None
