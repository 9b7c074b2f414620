"""Build a method from a validated recipe and the shape of the data."""
from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig

from .config import part_kwargs
from .errors import UserError
from .models.encoder import Backbone
from .registry import BUILD_ERRORS, assembler, build_part, check_option_types, part_builder, part_name


def data_facts(input_shape: tuple[int, ...], meta: dict | None = None, **more) -> dict:
    """What an assembler may inject into parts: the per-sample shape, its image reading, the data's meta."""
    facts = {"input_shape": tuple(input_shape), "meta": dict(meta or {}), **more}
    if len(input_shape) == 3:
        facts["in_channels"], facts["image_size"] = input_shape[0], tuple(input_shape[1:])
    elif len(input_shape) == 2:  # (channels, length)
        facts["in_channels"], facts["length"] = input_shape
    return facts


def inject(section: str, cfg: DictConfig, facts: dict) -> dict:
    """The subset of ``facts`` that the section's builder declares as injected; a clear error if one is missing."""
    _, injected = part_builder(section, cfg)
    missing = sorted(k for k in injected if k not in facts)
    if missing:
        shape = facts.get("input_shape")
        raise UserError(f"{section} {part_name(section, cfg)!r} needs {', '.join(missing)}, which data of per-sample "
                        f"shape {shape} do not give: choose a {section} for this kind of data")
    return {k: facts[k] for k in injected}


def build_backbone(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict | None = None) -> Backbone:
    """Tokenizer + encoder for inputs of ``input_shape`` (e.g. (C, H, W) for a patch2d tokenizer)."""
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"))
    facts = data_facts(input_shape, meta, dim=encoder.dim)
    tokenizer = build_part("tokenizer", cfg, part_kwargs(cfg, "tokenizer"), **inject("tokenizer", cfg, facts))
    return Backbone(tokenizer, encoder)


def build_method(cfg: DictConfig, input_shape: tuple[int, ...], seed: int = 0, meta: dict | None = None):
    """The recipe's method for inputs of ``input_shape`` (without the batch), initialised from ``seed``.

    ``meta`` carries facts from the data loader (see ``polyjepa.data.Loaded``). Parameter
    initialisation runs under a forked RNG so the caller's global random state is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            method = assembler(cfg)(cfg, tuple(input_shape), dict(meta or {}))
        except UserError:
            raise
        except BUILD_ERRORS as e:  # a setting no part checked (e.g. a width the position embedding cannot take)
            raise UserError(f"cannot build recipe {cfg.get('name', '?')!r} from its config: {e}") from None
    if cfg.get("invariance") is not None and getattr(method, "invariance", None) is None:
        raise UserError(f"recipe {cfg.get('name', '?')!r} (method {part_name('method', cfg)!r}) has no use for an "
                        f"invariance section: it works with methods jepa and ajepa on images and spectrograms "
                        f"(invariance.name=vicreg), jepa on tables (invariance.name=table_vicreg) and point_jepa "
                        f"(invariance.name=point_vicreg); "
                        f"drop the section")
    return method


def assemble_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict):
    """Tokenizer + encoder + predictor + masker + EMA target + objective (+ regulariser) -> JEPA.

    The tokenizer must expose ``grid`` (for the masker) and ``position_embedding(dim)`` (for the predictor).
    """
    backbone = build_backbone(cfg, input_shape, meta)
    parts = jepa_parts(cfg, backbone, input_shape, meta)
    if cfg.get("invariance") is not None:  # optional VICReg term between views of what the tokenizer reads
        parts["invariance"] = invariance_part(cfg, backbone.dim, getattr(backbone.tokenizer, "INVARIANCE", "vicreg"))
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, **parts)


INVARIANCE_VIEWS = {"vicreg": "images and spectrograms", "point_vicreg": "point clouds",
                    "table_vicreg": "table rows"}  # name -> what it warps


def invariance_part(cfg: DictConfig, in_dim: int, name: str):
    """The recipe's invariance section, built for an encoder of width ``in_dim``; it must be ``name``, the
    invariance whose views fit this method's data, else one line saying which to use."""
    got = part_name("invariance", cfg)
    if got != name:
        raise UserError(f"invariance.name={got} draws views of {INVARIANCE_VIEWS.get(got, 'other data')}: "
                        f"this method's data needs invariance.name={name} ({INVARIANCE_VIEWS[name]})")
    return build_part("invariance", cfg, part_kwargs(cfg, "invariance"), in_dim=in_dim)


def jepa_parts(cfg: DictConfig, backbone, input_shape: tuple[int, ...], meta: dict | None,
               sections: tuple[str, ...] = ("predictor", "masker", "target"), objective: bool = True,
               **more_facts) -> dict:
    """The parts around a backbone, built in ``sections`` order, plus the objective and regulariser.

    Each part receives the facts it declares as injected: the data facts, ``dim``/``in_dim`` (the
    backbone's width), ``grid`` and ``pos_embed`` (the tokenizer's, at the predictor's width, where
    it has them), ``online`` (the backbone, for an EMA target) and ``more_facts``. An assembler for
    another method calls this and adds its own pieces (``objective=False``: a method with its own loss).
    """
    tok = backbone.tokenizer
    facts = data_facts(input_shape, meta, dim=backbone.dim, in_dim=backbone.dim, online=backbone, **more_facts)
    if hasattr(tok, "grid"):
        facts["grid"] = tok.grid
    if hasattr(tok, "position_embedding"):
        facts["pos_embed"] = tok.position_embedding(part_kwargs(cfg, "predictor").get("dim", backbone.dim))
    parts = {s: build_part(s, cfg, part_kwargs(cfg, s), **inject(s, cfg, facts)) for s in sections}
    if getattr(parts.get("target"), "handcrafted", False):
        parts["predictor"] = handcrafted_target_head(cfg, parts.get("predictor"), parts["target"], backbone.dim)
    if objective:
        parts["objective"] = build_objective(cfg, "objective", torch.zeros(2, 4), torch.ones(2, 4))
    parts["regularizer"] = build_objective(cfg, "regularizer", torch.randn(4, 3)) if cfg.get("regularizer") else None
    return parts


def handcrafted_target_head(cfg: DictConfig, predictor, target, width: int):
    """A predictor that regresses a hand-crafted target (features of width ``target.dim``, no encoder):
    the recipe's predictor followed by a linear map from the encoder width to the target's; the method
    must then embed with its online encoder."""
    from .models.predictor import OutputHead

    if part_kwargs(cfg, "method").get("embed_from", "target") == "target":
        raise UserError(f"target.name={part_name('target', cfg)} computes features without an encoder, so there is "
                        f"no target encoder to embed with: set method.embed_from=online")
    return predictor if predictor is None or target.dim == width else OutputHead(predictor, width, target.dim)


def build_objective(cfg: DictConfig, section: str, *example: torch.Tensor):
    """The recipe's objective (or regulariser) with its arguments bound, checked once on a tiny input."""
    builder, _ = part_builder(section, cfg)
    kwargs = part_kwargs(cfg, section)
    check_option_types(section, builder, kwargs)
    objective = functools.partial(builder, **kwargs)
    try:
        objective(*example)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad {section} config: {e}") from None
    return objective


def build_augment(cfg: DictConfig):
    if cfg.get("augment") is None:
        return None
    return build_part("augment", cfg, part_kwargs(cfg, "augment"))
