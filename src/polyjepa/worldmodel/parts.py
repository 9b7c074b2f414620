"""World-model parts for recipes: image actions (the ``actions`` section), the IWM, seq-JEPA and MC-JEPA
methods, and MC-JEPA's convolutional pyramid encoder."""
from .actions import ImageActions
from .iwm import IWM, assemble_iwm
from .mcjepa import MCJEPA, PyramidEncoder, assemble_mcjepa
from .seqjepa import SeqJEPA, assemble_seqjepa

PARTS = {
    "actions": {"image": (ImageActions, set())},
    "method": {"iwm": (IWM, {"backbone", "predictor", "masker", "target", "actions", "objective", "regularizer"}),
               "seq_jepa": (SeqJEPA, {"backbone", "target", "actions"}),
               "mcjepa": (MCJEPA, {"encoder"})},
    "encoder": {"conv_pyramid": (PyramidEncoder, {"in_channels"})},
}
ASSEMBLERS = {"iwm": assemble_iwm, "seq_jepa": assemble_seqjepa, "mcjepa": assemble_mcjepa}
DEFAULTS = {"actions": "image"}
