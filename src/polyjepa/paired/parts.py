"""Registry entries of the paired family: the two-tower method, its towers (one section per side), the
contrastive objectives and the paired data loader."""
from __future__ import annotations

import math

from .data import load_pairs
from .graph import GCNTower
from .method import TwoTower
from .objectives import PairedContrastive
from .semisup import SemiSupervisedContrastive
from .sinkhorn import MultiSinkhornContrastive
from .text import TextTransformer
from .clips import load_av_pairs
from .tijepa_run import cross_attention_fusion, ijepa_image_encoder, mlm_text_encoder, run_tijepa, tijepa_options
from .towers import AudioTower, ImageTower, MLPTower, VideoTower


def congrat_objective(*, alpha: float = 0.1, weights: str = "identity", init_log_scale: float = math.log(1 / 0.07),
                      max_log_scale: float = math.log(100.0), learn_scale: bool = True) -> PairedContrastive:
    """ConGraT: symmetric InfoNCE whose targets are softened by graph similarity (alpha > 0)."""
    return PairedContrastive(alpha=alpha, weights=weights, init_log_scale=init_log_scale,
                             max_log_scale=max_log_scale, learn_scale=learn_scale)


def clip_objective(*, init_log_scale: float = math.log(1 / 0.07), max_log_scale: float = math.log(100.0),
                   learn_scale: bool = True) -> PairedContrastive:
    """CLIP: symmetric InfoNCE with a learned temperature, one-hot targets."""
    return PairedContrastive(alpha=0.0, init_log_scale=init_log_scale, max_log_scale=max_log_scale,
                             learn_scale=learn_scale)


def sinkhorn_objective(*, anchors: int = 64, weight: float = 1.0, temperature: float = 0.1, eps: float = 0.07,
                       iters: int = 20, low_weight: float = 0.25, detach_towers: bool = True,
                       init_log_scale: float = math.log(1 / 0.07), max_log_scale: float = math.log(100.0),
                       learn_scale: bool = True) -> MultiSinkhornContrastive:
    """CLIP's symmetric InfoNCE plus the multi-assignment Sinkhorn structure term of both sides."""
    return MultiSinkhornContrastive(anchors=anchors, weight=weight, temperature=temperature, eps=eps, iters=iters,
                                    low_weight=low_weight, detach_towers=detach_towers, init_log_scale=init_log_scale,
                                    max_log_scale=max_log_scale, learn_scale=learn_scale)


def semisup_objective(*, weight: float = 1.0, sup_temperature: float = 0.1, label_fraction: float = 1.0,
                      label_seed: int = 0, init_log_scale: float = math.log(1 / 0.07),
                      max_log_scale: float = math.log(100.0), learn_scale: bool = True) -> SemiSupervisedContrastive:
    """InfoNCE on every pair plus cross-modal SupCon on the labelled share, through a second head per side."""
    return SemiSupervisedContrastive(weight=weight, sup_temperature=sup_temperature, label_fraction=label_fraction,
                                     label_seed=label_seed, init_log_scale=init_log_scale,
                                     max_log_scale=max_log_scale, learn_scale=learn_scale)


load_pairs.paired = True  # the runner hands recipes with this loader to polyjepa.paired.run

TOWERS = {
    "vit": (ImageTower, {"input_shape"}),
    "mlp": (MLPTower, {"input_shape"}),
    "text_transformer": (TextTransformer, {"vocab_size", "max_len"}),
    "gcn": (GCNTower, {"graph"}),
    "video_vit": (VideoTower, {"input_shape"}),
    "audio_vit": (AudioTower, {"input_shape"}),
}

PARTS = {
    "method": {"two_tower": (TwoTower, {"tower_a", "tower_b", "criterion", "graph_sim"}),
               "tijepa": (tijepa_options, set())},
    "image_encoder": {"ijepa_vit": (ijepa_image_encoder, set())},
    "text_encoder": {"mlm_transformer": (mlm_text_encoder, set())},
    "fusion": {"cross_attention": (cross_attention_fusion, {"dim", "text_dim"})},
    "tower_a": dict(TOWERS),
    "tower_b": dict(TOWERS),
    "objective": {"clip": (clip_objective, set()), "congrat": (congrat_objective, set()),
                  "sinkhorn": (sinkhorn_objective, set()), "semisup": (semisup_objective, set())},
    "data": {"paired": (load_pairs, {"source"}), "av_clips": (load_av_pairs, {"source"})},
}


def assemble_two_tower(cfg, input_shape, meta):
    from ..errors import UserError

    raise UserError("a two_tower recipe is trained and evaluated by 'polyjepa pretrain' with data.loader=paired; "
                    "'probe' and 'embed' do not read paired runs: use polyjepa.paired.run.load_paired_run in Python")


def assemble_tijepa(cfg, input_shape, meta):
    from ..errors import UserError

    raise UserError("a tijepa run is trained and scored by 'polyjepa pretrain' (its scores in RUN_DIR/summary.json, "
                    "the fused model in RUN_DIR/model.safetensors); 'probe' and 'embed' do not read it")


ASSEMBLERS = {"two_tower": assemble_two_tower, "tijepa": assemble_tijepa}
RUNNERS = {"tijepa": run_tijepa}  # pretrain the encoders, train the fusion, score every test pair
