"""Image JEPA variants for recipes: CNN-JEPA (sparse ResNet + depthwise-conv predictor), N-JEPA (noisy
mask-token positions), DSeq-JEPA (saliency-ordered sequential targets) and D-JEPA (generative: a
per-token flow-matching head)."""
from __future__ import annotations

from omegaconf import DictConfig

from ..build import assemble_jepa, build_backbone, data_facts, inject, jepa_parts
from ..config import part_kwargs
from ..errors import UserError
from ..methods.jepa import JEPA
from ..registry import build_part, part_name
from ..tokenizers.posembed import sincos_2d
from .conv_predictor import DepthwiseConvPredictor
from .djepa import DJEPA
from .dseq import DSeqJEPA, SequentialPredictor
from .noise import NoisyDepthwiseConvPredictor, NoisyMaskTokenPredictor
from .sparse_cnn import sparse_resnet


def dwconv_predictor(*, in_dim: int, grid: tuple[int, int], dim: int = 128, depth: int = 3, kernel: int = 3,
                     positions: bool = False) -> DepthwiseConvPredictor:
    """The ``dwconv`` predictor of recipes; ``positions`` adds fixed sine-cosine positions to every cell."""
    return DepthwiseConvPredictor(in_dim=in_dim, grid=grid, dim=dim, depth=depth, kernel=kernel,
                                  pos_embed=sincos_2d(dim, grid) if positions else None)


def assemble_cnn(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> JEPA:
    """Sparse ResNet backbone + predictor + masks on its cell grid + EMA target, as the recipe's method."""
    method = part_name("method", cfg)
    if len(input_shape) != 3:
        raise UserError(f"method {method} with encoder sparse_resnet takes images (channels, height, width), got "
                        f"per-sample shape {tuple(input_shape)}: pass an image dataset")
    if cfg.get("tokenizer") is not None:
        raise UserError(f"encoder sparse_resnet reads pixels itself and has no tokenizer: drop the tokenizer section "
                        f"of the {method} recipe")
    facts = data_facts(input_shape, meta)
    backbone = build_part("encoder", cfg, part_kwargs(cfg, "encoder"), **inject("encoder", cfg, facts))
    parts = jepa_parts(cfg, backbone, input_shape, meta)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, **parts)


def assemble_cnn_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> JEPA:
    """CNN-JEPA: a sparse ResNet backbone (see :func:`assemble_cnn`), typically with the ``dwconv`` predictor."""
    if part_name("encoder", cfg) != "sparse_resnet":
        raise UserError(f"method cnn_jepa needs encoder.name=sparse_resnet (a CNN that skips masked cells), got "
                        f"{part_name('encoder', cfg)!r}")
    return assemble_cnn(cfg, input_shape, meta)


def assemble_dseq_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> DSeqJEPA:
    """A ViT or sparse-ResNet backbone with a sequential predictor, put together as a :class:`DSeqJEPA`."""
    if part_name("predictor", cfg) != "sequential":
        raise UserError(f"method dseq_jepa predicts its blocks in order and needs predictor.name=sequential, got "
                        f"{part_name('predictor', cfg)!r}")
    if part_name("encoder", cfg) == "sparse_resnet":
        return assemble_cnn(cfg, input_shape, meta)
    return assemble_jepa(cfg, input_shape, meta)


def assemble_djepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> DJEPA:
    """D-JEPA: a patch tokenizer + ViT backbone, with the decoder and generation head the method builds."""
    if len(input_shape) != 3:
        raise UserError(f"method djepa generates images (channels, height, width), got per-sample shape "
                        f"{tuple(input_shape)}: pass an image dataset")
    backbone = build_backbone(cfg, input_shape, meta)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone)


JEPA_INJECTED = {"backbone", "predictor", "masker", "target", "objective", "regularizer"}

PARTS = {
    "method": {"cnn_jepa": (JEPA, JEPA_INJECTED), "dseq_jepa": (DSeqJEPA, JEPA_INJECTED),
               "djepa": (DJEPA, {"backbone"})},
    "encoder": {"sparse_resnet": (sparse_resnet, {"image_size", "in_channels"})},
    "predictor": {"dwconv": (dwconv_predictor, {"in_dim", "grid"}),
                  "noisy_dwconv": (NoisyDepthwiseConvPredictor, {"in_dim", "grid"}),
                  "noisy_mask_token": (NoisyMaskTokenPredictor, {"in_dim", "pos_embed"}),
                  "sequential": (SequentialPredictor, {"in_dim", "pos_embed"})},
}

ASSEMBLERS = {"cnn_jepa": assemble_cnn_jepa, "dseq_jepa": assemble_dseq_jepa, "djepa": assemble_djepa}
