"""LiDAR parts for recipes: the AD-L-JEPA method, its BEV conv encoder and predictor, and the BEV data loader."""
from __future__ import annotations

from omegaconf import DictConfig

from ..config import part_kwargs
from ..errors import UserError
from ..registry import build_part
from .data import load_lidar_bev
from .grid import CHANNELS
from .method import ADLJEPA, BEVConvPredictor, BEVEncoder

PARTS = {
    "method": {"adl_jepa": (ADLJEPA, {"encoder", "predictor", "target"})},
    "encoder": {"bev_conv": (BEVEncoder, {"in_channels"})},
    "predictor": {"bev_conv": (BEVConvPredictor, {"dim"})},
    "data": {"lidar_bev": (load_lidar_bev, {"source"})},
}
STREAMS = {"lidar_bev": "polyjepa.bev.stream:open_lidar_bev"}


def assemble_adl_jepa(cfg: DictConfig, input_shape: tuple[int, ...], meta: dict) -> ADLJEPA:
    """BEV conv encoder + conv predictor + EMA target -> ADLJEPA, for BEV grids of shape (5, rows, cols)."""
    if len(input_shape) != 3 or input_shape[0] != len(CHANNELS):
        raise UserError(f"method adl_jepa needs BEV grids ({len(CHANNELS)}, rows, cols) per sample, got "
                        f"{tuple(input_shape)}: use data.loader=lidar_bev")
    encoder = build_part("encoder", cfg, part_kwargs(cfg, "encoder"), in_channels=input_shape[0])
    rows, cols = input_shape[1:]
    if rows % encoder.stride or cols % encoder.stride:
        raise UserError(f"the BEV grid {rows}x{cols} is not a multiple of encoder.stride={encoder.stride}: change "
                        f"data.cell or the ranges, or the stride")
    predictor = build_part("predictor", cfg, part_kwargs(cfg, "predictor"), dim=encoder.dim)
    target = build_part("target", cfg, part_kwargs(cfg, "target"), online=encoder)
    return build_part("method", cfg, part_kwargs(cfg, "method"), encoder=encoder, predictor=predictor, target=target)


ASSEMBLERS = {"adl_jepa": assemble_adl_jepa}
