"""Tabular parts for recipes: the feature tokenizer, the feature-subset masker, the table loader."""
from .loader import load_table
from .masker import FeatureSubsetMasker
from .tokenizer import FeatureTokenizer

PARTS = {
    "tokenizer": {"feature": (FeatureTokenizer, {"meta", "dim"})},
    "masker": {"feature_subset": (FeatureSubsetMasker, {"grid"})},
    "data": {"table": (load_table, {"source"})},
}
