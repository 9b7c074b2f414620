"""Target builders beside the EMA teacher, for recipes: ``target: {name: gradient}`` (SAR-JEPA's multi-scale
gradient features), ``target: {name: rvq}`` (ids of each token's raw patch under a k-means-fitted residual
quantiser, MuQ's Mel-RVQ) and the ``token_prediction`` method that learns to predict those ids."""
from __future__ import annotations

from ..methods.token_prediction import TokenPrediction, assemble_token_prediction
from .gradient import GradientTarget
from .rvq import RVQTarget

PARTS = {
    "target": {"gradient": (GradientTarget, {"image_size", "in_channels", "grid"}),
               "rvq": (RVQTarget, {"online"})},
    "method": {"token_prediction": (TokenPrediction, {"backbone", "predictor", "masker", "target", "regularizer"})},
}
ASSEMBLERS = {"token_prediction": assemble_token_prediction}
