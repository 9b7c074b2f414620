"""Encoders and predictors."""
from .encoder import SIZES, Backbone, TransformerEncoder, vit_base, vit_encoder, vit_small, vit_tiny
from .predictor import MaskTokenPredictor, block_attention_mask
from .transformer import Attention, Block, gather_tokens

__all__ = ["SIZES", "Attention", "Backbone", "Block", "MaskTokenPredictor", "TransformerEncoder",
           "block_attention_mask", "gather_tokens", "vit_base", "vit_encoder", "vit_small", "vit_tiny"]
