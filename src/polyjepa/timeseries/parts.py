"""Time-series parts for recipes: tokenizer patch1d, masker span, method series_jepa, data loader series."""
from ..methods.jepa import JEPA
from .assemble import assemble_series_jepa
from .data import load_series
from .masks import SpanMasker
from .tokenizer import PatchEmbed1D

PARTS = {
    "tokenizer": {"patch1d": (PatchEmbed1D, {"length", "in_channels", "dim"})},
    "masker": {"span": (SpanMasker, {"grid"})},
    "method": {"series_jepa": (JEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer"})},
    "data": {"series": (load_series, {"source"})},
}
ASSEMBLERS = {"series_jepa": assemble_series_jepa}
