"""Discrete targets for recipes: the ``rvq`` target (ids of each token's raw patch under a k-means-fitted
residual quantiser, MuQ's Mel-RVQ) and the ``token_prediction`` method that learns to predict them."""
from ..methods.token_prediction import TokenPrediction, assemble_token_prediction
from .rvq import RVQTarget

PARTS = {
    "target": {"rvq": (RVQTarget, {"online"})},
    "method": {"token_prediction": (TokenPrediction, {"backbone", "predictor", "masker", "target", "regularizer"})},
}
ASSEMBLERS = {"token_prediction": assemble_token_prediction}
