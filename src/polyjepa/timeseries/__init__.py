"""Time series and biosignals: 1-D patch tokens, span/block maskers, padding-aware backbone,
UCR/UEA/array/CSV loaders, and the scikit-learn ``TimeSeriesEmbedder``."""
from .backbone import SeriesBackbone
from .embedder import TimeSeriesEmbedder
from .masks import SpanMasker
from .series import check_series, pad_series
from .tokenizer import PatchEmbed1D, instance_normalize

__all__ = ["PatchEmbed1D", "SeriesBackbone", "SpanMasker", "TimeSeriesEmbedder", "check_series",
           "instance_normalize", "pad_series"]
