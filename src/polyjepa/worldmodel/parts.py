"""World-model parts for recipes: image actions (the ``actions`` section) and the IWM method."""
from .actions import ImageActions
from .iwm import IWM, assemble_iwm

PARTS = {
    "actions": {"image": (ImageActions, set())},
    "method": {"iwm": (IWM, {"backbone", "predictor", "masker", "target", "actions", "objective", "regularizer"})},
}
ASSEMBLERS = {"iwm": assemble_iwm}
DEFAULTS = {"actions": "image"}
