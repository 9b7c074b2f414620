"""Paired modalities: two towers (one encoder per side) trained to one embedding space from aligned pairs.

Parts: the CLIP / ConGraT contrastive objectives, multi-assignment Sinkhorn, the semi-supervised (SupCon)
objective, a transformer text tower over a corpus-trained tokenizer, a GCN graph tower, the image ViT tower,
retrieval metrics, the kNN-overlap structure measure and the CCA baseline.
"""
from .objectives import PairedContrastive, graph_soft_targets, mutual_similarity, symmetric_infonce
from .retrieval import knn_overlap, retrieval_metrics
from .semisup import SemiSupervisedContrastive, cross_supcon
from .sinkhorn import MultiSinkhornContrastive, multi_sinkhorn, sinkhorn_knopp

__all__ = ["MultiSinkhornContrastive", "PairedContrastive", "SemiSupervisedContrastive", "cross_supcon",
           "graph_soft_targets", "knn_overlap", "multi_sinkhorn", "mutual_similarity", "retrieval_metrics",
           "sinkhorn_knopp", "symmetric_infonce"]
