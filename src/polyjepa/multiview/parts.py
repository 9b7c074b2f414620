"""Registry entries of the multi-view family: the method, its view maker, heads and objectives."""
from __future__ import annotations

from ..errors import UserError
from ..timeseries.views import SeriesViews
from . import criteria
from .heads import DINOHead, Projector
from .method import MultiView
from .views import ViewMaker

PARTS = {
    "method": {"multiview": (MultiView, {"backbone", "projector", "criterion", "views"})},
    "views": {"multicrop": (ViewMaker, set()), "series_crops": (SeriesViews, set())},
    "projector": {"mlp": (Projector, {"in_dim"}), "dino_head": (DINOHead, {"in_dim"})},
    "objective": {
        "simclr": (criteria.simclr, set()),
        "barlow_twins": (criteria.barlow_twins, set()),
        "vicreg": (criteria.vicreg, set()),
        "tico": (criteria.TiCo, {"dim"}),
        "intl": (criteria.INTL, set()),
        "lejepa": (criteria.LeJEPA, set()),
        "dino": (criteria.DINO, {"dim"}),
    },
}
DEFAULTS = {"views": "multicrop", "projector": "mlp"}


def assemble_multiview(cfg, input_shape: tuple[int, ...], meta: dict):
    """Tokenizer + encoder + projector + objective + view maker -> MultiView (images, or series with series_crops views)."""
    from ..build import build_backbone
    from ..config import part_kwargs
    from ..registry import build_part, part_name

    views = build_part("views", cfg, part_kwargs(cfg, "views"))
    series = isinstance(views, SeriesViews)
    if len(input_shape) != (2 if series else 3):
        need = "(channels, length) series" if series else "(C, H, W) images"
        raise UserError(f"views {part_name('views', cfg)!r} need {need}, got per-sample shape {tuple(input_shape)}: "
                        f"use views.name={'multicrop' if series else 'series_crops'} or a JEPA recipe for this data")
    if series:
        from ..timeseries.assemble import build_series_backbone

        return _finish(cfg, build_series_backbone(cfg, input_shape, meta, method="multiview"), views, input_shape, meta)
    backbone = build_backbone(cfg, input_shape, meta)
    tok = backbone.tokenizer
    patch = getattr(tok, "patch_size", None)
    for name, size in (("global_size", views.global_size or tuple(input_shape[1:])), ("local_size", views.local_size)):
        if size is None:
            continue
        if patch is None and tuple(size) != tuple(input_shape[1:]):
            raise UserError(f"views.{name}={list(size)} differs from the input size and this tokenizer cannot resize")
        if patch is not None and (size[0] % patch or size[1] % patch):
            raise UserError(f"views.{name}={list(size)} is not a multiple of the patch size {patch}: "
                            f"choose a multiple, e.g. views.{name}=[{patch * max(1, size[0] // patch)},"
                            f"{patch * max(1, size[1] // patch)}]")
    if views.mode == "crop":
        for name, size in (("global_size", views.global_size), ("local_size", views.local_size)):
            if size is not None and (size[0] > input_shape[1] or size[1] > input_shape[2]):
                raise UserError(f"views.{name}={list(size)} is larger than the images {list(input_shape[1:])}: "
                                f"crop mode cuts views out of the image without resizing, choose a smaller size")
    elif views.global_size and tuple(views.global_size) != tuple(input_shape[1:]):
        raise UserError(f"views.global_size={list(views.global_size)} must equal the input size "
                        f"{list(input_shape[1:])} (the evaluated encoder reads whole images)")
    return _finish(cfg, backbone, views, input_shape, meta)


def _finish(cfg, backbone, views, input_shape, meta):
    """Projector + objective around ``backbone`` -> MultiView."""
    from ..build import data_facts, inject
    from ..config import part_kwargs
    from ..registry import build_part, part_name

    facts = data_facts(input_shape, meta, in_dim=backbone.dim)
    projector = build_part("projector", cfg, part_kwargs(cfg, "projector"), **inject("projector", cfg, facts))
    facts["dim"] = projector.out_dim
    criterion = build_part("objective", cfg, part_kwargs(cfg, "objective"), **inject("objective", cfg, facts))
    if part_name("objective", cfg) == "tico" and (views.n_global, views.n_local) != (2, 0):
        raise UserError("the tico objective takes exactly two views: set views.n_global=2 views.n_local=0")
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, projector=projector,
                      criterion=criterion, views=views)


ASSEMBLERS = {"multiview": assemble_multiview}
