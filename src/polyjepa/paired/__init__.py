"""Paired modalities: two towers (one encoder per side) trained to one embedding space from aligned pairs.

Parts: the CLIP / ConGraT contrastive objectives, a transformer text tower over a corpus-trained
tokenizer, a GCN graph tower, the image ViT tower, retrieval metrics and the CCA baseline.
"""
from .objectives import PairedContrastive, graph_soft_targets, mutual_similarity, symmetric_infonce
from .retrieval import retrieval_metrics

__all__ = ["PairedContrastive", "graph_soft_targets", "mutual_similarity", "retrieval_metrics", "symmetric_infonce"]
