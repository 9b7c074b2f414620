"""Evaluation: frozen-feature probes, embeddings, and the baseline comparison."""
from .embed import embed_array
from .evaluate import Monitor, evaluate, probe_features
from .probes import knn_probe, linear_probe

__all__ = ["Monitor", "embed_array", "evaluate", "knn_probe", "linear_probe", "probe_features"]
