"""Image JEPA variants: CNN-JEPA (sparse ResNet), N-JEPA (noisy mask tokens), DSeq-JEPA (saliency-ordered targets)."""
from .conv_predictor import DepthwiseConvPredictor
from .dseq import DSeqJEPA, SequentialPredictor, saliency_order, sequence_attention_mask, token_saliency
from .noise import NoiseSchedule, NoisyDepthwiseConvPredictor, NoisyMaskTokenPredictor
from .sparse_cnn import CNNBackbone, SparseResNet, sparse_resnet

__all__ = ["CNNBackbone", "DSeqJEPA", "DepthwiseConvPredictor", "NoiseSchedule", "NoisyDepthwiseConvPredictor",
           "NoisyMaskTokenPredictor",
           "SequentialPredictor", "SparseResNet", "saliency_order", "sequence_attention_mask", "sparse_resnet",
           "token_saliency"]
