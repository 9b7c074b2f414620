"""World models: predictors told the action (transform parameters) between what they see and what they predict."""
from .actions import ImageActions
from .iwm import IWM
from .retrieval import mean_reciprocal_rank, rank_of_true

__all__ = ["IWM", "ImageActions", "mean_reciprocal_rank", "rank_of_true"]
