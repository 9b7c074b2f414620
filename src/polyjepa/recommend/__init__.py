"""Two-tower recommendation with a self-supervised item term (correlated feature masking), leave-one-out
ranking metrics and the classical baselines (popularity, ALS matrix factorisation, TF-IDF similarity)."""
from .masking import correlated_masks, group_by_mutual_information, random_masks
from .metrics import heldout_ranks, hit_rate, ndcg
from .objectives import in_batch_softmax, ssl_infonce

__all__ = ["correlated_masks", "group_by_mutual_information", "heldout_ranks", "hit_rate", "in_batch_softmax", "ndcg",
           "random_masks", "ssl_infonce"]
