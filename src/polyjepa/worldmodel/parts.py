"""World-model parts for recipes: image actions (the ``actions`` section), the IWM and seq-JEPA methods."""
from .actions import ImageActions
from .iwm import IWM, assemble_iwm
from .seqjepa import SeqJEPA, assemble_seqjepa

PARTS = {
    "actions": {"image": (ImageActions, set())},
    "method": {"iwm": (IWM, {"backbone", "predictor", "masker", "target", "actions", "objective", "regularizer"}),
               "seq_jepa": (SeqJEPA, {"backbone", "target", "actions"})},
}
ASSEMBLERS = {"iwm": assemble_iwm, "seq_jepa": assemble_seqjepa}
DEFAULTS = {"actions": "image"}
