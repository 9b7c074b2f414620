"""Time series and biosignals: 1-D patch tokens, a dilated CNN, span/block maskers, crop views, padding-aware backbones,
UCR/UEA/array/CSV loaders, and the scikit-learn ``TimeSeriesEmbedder``."""
from .backbone import SeriesBackbone
from .conv import ConvSeriesBackbone, DilatedConvEncoder
from .embedder import TimeSeriesEmbedder
from .masks import SpanMasker
from .series import check_series, pad_series
from .tokenizer import PatchEmbed1D, PatchGrid1D, instance_normalize
from .views import SeriesViews

__all__ = ["ConvSeriesBackbone", "DilatedConvEncoder", "PatchEmbed1D", "PatchGrid1D", "SeriesBackbone", "SeriesViews",
           "SpanMasker", "TimeSeriesEmbedder", "check_series", "instance_normalize", "pad_series"]
