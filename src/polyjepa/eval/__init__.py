"""Evaluation: frozen-feature probes, embeddings, and the baseline comparison."""
from .embed import embed_array
from .evaluate import Monitor, evaluate, probe_features
from .probes import (is_regression, knn_probe, linear_probe, probe_metric, probe_score, ridge_classifier_probe,
                     ridge_probe)
from .supervised import supervised_reference

__all__ = ["Monitor", "embed_array", "evaluate", "is_regression", "knn_probe", "linear_probe", "probe_features",
           "probe_metric", "probe_score", "ridge_classifier_probe", "ridge_probe", "supervised_reference"]
