"""Audio parts for recipes: the ``audio`` data loader, spectrogram patches, A-JEPA maskers and method."""
from ..build import assemble_jepa
from .data import load_audio
from .masks import CurriculumMasker, TimeFrequencyMasker
from .method import AJEPA
from .tokenizer import SpectrogramPatchEmbed

PARTS = {
    "data": {"audio": (load_audio, {"source"})},
    "tokenizer": {"spectrogram_patch": (SpectrogramPatchEmbed, {"image_size", "in_channels", "dim"})},
    "masker": {"timefreq": (TimeFrequencyMasker, {"grid"}), "curriculum": (CurriculumMasker, {"grid"})},
    "method": {"ajepa": (AJEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer"})},
}
ASSEMBLERS = {"ajepa": assemble_jepa}
