"""Time-series parts for recipes: tokenizer patch1d / patch_grid, encoder dilated_conv, masker span, method series_jepa, data loaders series, wfdb_beats, edf_epochs."""
from ..methods.jepa import JEPA
from .assemble import assemble_series_jepa
from .conv import DilatedConvEncoder
from .data import load_series
from .edf import load_edf_epochs
from .masks import SpanMasker
from .tokenizer import PatchEmbed1D, PatchGrid1D
from .wfdb import load_wfdb_beats

PARTS = {
    "tokenizer": {"patch1d": (PatchEmbed1D, {"length", "in_channels", "dim"}),
                  "patch_grid": (PatchGrid1D, {"length", "in_channels"})},
    "encoder": {"dilated_conv": (DilatedConvEncoder, {"in_channels"})},
    "masker": {"span": (SpanMasker, {"grid"})},
    "method": {"series_jepa": (JEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer"})},
    "data": {"series": (load_series, {"source"}), "wfdb_beats": (load_wfdb_beats, {"source"}),
             "edf_epochs": (load_edf_epochs, {"source"})},
}
ASSEMBLERS = {"series_jepa": assemble_series_jepa}
# the loaders' lazy forms for data.stream=true (read on access, never whole into memory)
STREAMS = {"series": "polyjepa.timeseries.stream:open_series",
           "edf_epochs": "polyjepa.timeseries.stream:open_edf_epochs",
           "wfdb_beats": "polyjepa.timeseries.wfdb_stream:open_wfdb_beats"}
