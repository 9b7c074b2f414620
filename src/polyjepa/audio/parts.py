"""Audio parts for recipes: the ``audio`` data loader, spectrogram patches, A-JEPA maskers and method,
a time-shift augmentation, and conditioned prediction on two-clip mixtures (Stem-JEPA style: the method
and the mixer; the predictor is the core ``conditioned`` one with ``predict_at: tokens``), and the JEPA
codec (``jepa_codec``: encoder, FSQ tokens, decoder; trained by its own runner)."""
from ..build import assemble_jepa
from .augment import TimeShift
from .codec import JEPACodec
from .codec_run import DecoderTraining, run_codec
from .conditioned import ConditionedJEPA, assemble_conditioned
from .data import load_audio
from .masks import CurriculumMasker, TimeFrequencyMasker
from .method import AJEPA
from .mixtures import TwoClipMixer
from .tokenizer import SpectrogramPatchEmbed

PARTS = {
    "data": {"audio": (load_audio, {"source"})},
    "tokenizer": {"spectrogram_patch": (SpectrogramPatchEmbed, {"image_size", "in_channels", "dim"})},
    "masker": {"timefreq": (TimeFrequencyMasker, {"grid"}), "curriculum": (CurriculumMasker, {"grid"})},
    "augment": {"time_shift": (TimeShift, set())},
    "mixer": {"two_clip": (TwoClipMixer, {"mean", "std"})},
    "method": {"ajepa": (AJEPA, {"backbone", "predictor", "masker", "target", "objective", "regularizer",
                                      "invariance"}),
               "conditioned_jepa": (ConditionedJEPA, {"backbone", "predictor", "target", "make_batch", "objective",
                                                      "regularizer"}),
               "jepa_codec": (JEPACodec, {"n_mels"})},
    "decoder_training": {"reconstruction": (DecoderTraining, set())},
}
ASSEMBLERS = {"ajepa": assemble_jepa, "conditioned_jepa": assemble_conditioned}
RUNNERS = {"jepa_codec": run_codec}
# the loaders' lazy forms for data.stream=true (read on access, never whole into memory)
STREAMS = {"audio": "polyjepa.audio.stream:open_audio"}
