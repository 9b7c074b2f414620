"""Jet parts for recipes (J-JEPA) and the assembler of the jjepa method."""
from __future__ import annotations

from omegaconf import DictConfig

from ..config import part_kwargs
from ..errors import UserError
from ..registry import build_part
from .data import load_jets
from .method import JJEPA
from .model import JetBackbone, ParticleTokenizer, SetEncoder, SubjetMasker, SubjetPredictor

PARTS = {
    "method": {"jjepa": (JJEPA, {"backbone", "predictor", "masker", "target"})},
    "tokenizer": {"particles": (ParticleTokenizer, {"dim"})},
    "encoder": {"set_transformer": (SetEncoder, set())},
    "predictor": {"subjet": (SubjetPredictor, {"in_dim"})},
    "masker": {"subjets": (SubjetMasker, set())},
    "data": {"jets": (load_jets, {"source"})},
}


def build_jet_backbone(cfg: DictConfig, input_shape: tuple[int, ...]) -> JetBackbone:
    """Particle tokenizer + set encoder for jets of per-sample shape (particles, 4)."""
    if len(input_shape) != 2 or input_shape[1] != 4:
        raise UserError(f"method jjepa needs jets (particles, 4) per sample (pT, eta, phi, E), got "
                        f"{tuple(input_shape)}: use data.loader=jets")
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"))
    if not isinstance(encoder, SetEncoder):
        raise UserError("method jjepa needs encoder.name=set_transformer (a set encoder without positions)")
    tokenizer = build_part("tokenizer", cfg, part_kwargs(cfg, "tokenizer"), dim=encoder.dim)
    return JetBackbone(tokenizer, encoder)


def assemble_jjepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> JJEPA:
    """Particle tokenizer + set encoder + subjet predictor + subjet masker + EMA target -> JJEPA."""
    backbone = build_jet_backbone(cfg, input_shape)
    predictor = build_part("predictor", cfg, part_kwargs(cfg, "predictor"), in_dim=backbone.dim)
    masker = build_part("masker", cfg, part_kwargs(cfg, "masker"))
    target = build_part("target", cfg, part_kwargs(cfg, "target"), online=backbone)
    return build_part("method", cfg, part_kwargs(cfg, "method"), backbone=backbone, predictor=predictor,
                      masker=masker, target=target)


ASSEMBLERS = {"jjepa": assemble_jjepa}
# the loader's lazy form for data.stream=true: a jet .npz memory-mapped (toy jets and the CMS PFNano file stay
# in memory)
STREAMS = {"jets": "polyjepa.jets.stream:open_jets"}
