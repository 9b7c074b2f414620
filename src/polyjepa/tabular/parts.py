"""Tabular parts for recipes: the feature tokenizer, the feature-subset masker, the table loader, the
SCARF-style invariance term."""
from ..methods.invariance import Invariance
from .augment import FeatureCorruption
from .loader import load_table
from .masker import FeatureSubsetMasker
from .tokenizer import FeatureTokenizer


def table_invariance(*, in_dim: int, weight: float = 1.0, rate: float = 0.6, hidden: int = 256, out_dim: int = 128,
                     layers: int = 3, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0,
                     views: int = 1, first: str = "whole") -> Invariance:
    """The invariance term (VICReg between views, :class:`~polyjepa.methods.invariance.Invariance`) with
    table views: each view is a :class:`FeatureCorruption` of the rows (``rate`` of the entries taken from
    other rows). The projector, VICReg weights, ``views`` and ``first`` are Invariance's; ``first`` defaults
    to ``whole`` here (both sides are unmasked rows, which worked best on MNIST)."""
    return Invariance(in_dim=in_dim, weight=weight, view=FeatureCorruption(rate=rate), hidden=hidden,
                      out_dim=out_dim, layers=layers, sim_weight=sim_weight, var_weight=var_weight,
                      cov_weight=cov_weight, views=views, first=first)


PARTS = {
    "tokenizer": {"feature": (FeatureTokenizer, {"meta", "dim"})},
    "masker": {"feature_subset": (FeatureSubsetMasker, {"grid"})},
    "invariance": {"table_vicreg": (table_invariance, {"in_dim"})},
    "data": {"table": (load_table, {"source"})},
}
