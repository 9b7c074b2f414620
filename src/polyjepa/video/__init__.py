"""Video: tubelet tokens, V-JEPA's 3-D multi-block masks, VJ-VCR future prediction, moving digits, clip loaders."""
from .backbone import VideoBackbone
from .masks import MultiBlock3DMasker, TubeMaskSet
from .moving_digits import MovingDigits, moving_digits
from .posembed import sincos_3d
from .predictor import MultiMaskPredictor
from .tubelet import TubeletEmbed
from .vjepa import VJEPA
from .vjvcr import VJVCR

__all__ = ["MovingDigits", "MultiBlock3DMasker", "MultiMaskPredictor", "TubeMaskSet", "TubeletEmbed", "VJEPA",
           "VJVCR", "VideoBackbone", "moving_digits", "sincos_3d"]
