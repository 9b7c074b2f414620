"""polyjepa: joint-embedding predictive architectures for every modality.

The top level is lazy: ``import polyjepa`` costs nothing until a name is used.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "UserError": "errors",
    "load_recipe": "config", "list_recipes": "config",
    "build_method": "build", "build_backbone": "build",
    "pretrain": "runner", "train_method": "runner", "probe_run": "runner", "embed_run": "runner", "load_run_method": "runner",
    "JEPA": "methods.jepa",
    "PatchEmbed2D": "tokenizers.patch2d",
    "MultiBlockMasker": "masks.multiblock",
    "TransformerEncoder": "models.encoder", "Backbone": "models.encoder", "vit_encoder": "models.encoder",
    "vit_tiny": "models.encoder", "vit_small": "models.encoder", "vit_base": "models.encoder",
    "MaskTokenPredictor": "models.predictor",
    "EMATarget": "targets.ema", "ema_update": "targets.ema",
    "latent_regression": "objectives.latent",
    "rankme": "diagnostics.rankme", "evaluate": "eval.evaluate",
    "TrainConfig": "config", "EvalConfig": "config", "DataConfig": "config",
    "linear_probe": "eval.probes", "knn_probe": "eval.probes", "embed_array": "eval.embed",
    "TabularEmbedder": "tabular.embedder", "FeatureTokenizer": "tabular.tokenizer",
    "FeatureSubsetMasker": "tabular.masker", "load_table": "tabular.loader",
    "MaskedBatches": "data.batches", "RandomResizedCrop": "data.augment", "load_images": "data.sources",
    "TimeSeriesEmbedder": "timeseries.embedder", "PatchEmbed1D": "timeseries.tokenizer",
    "SpanMasker": "timeseries.masks", "SeriesBackbone": "timeseries.backbone", "load_series": "timeseries.data",
    "PatchGrid1D": "timeseries.tokenizer", "DilatedConvEncoder": "timeseries.conv", "ConvSeriesBackbone": "timeseries.conv",
    "SeriesViews": "timeseries.views",
    # audio
    "log_mel": "audio.melspec", "mel_filterbank": "audio.melspec", "resample": "audio.resample",
    "crop_or_pad": "audio.crop", "read_audio": "audio.io", "load_audio": "audio.data",
    "SpectrogramPatchEmbed": "audio.tokenizer", "TimeFrequencyMasker": "audio.masks",
    "CurriculumMasker": "audio.masks", "AJEPA": "audio.method",
    # point clouds
    "PointJEPA": "points.method", "PointGroupTokenizer": "points.tokenizer", "PointBackbone": "points.backbone",
    "PointPredictor": "points.predictor", "ContextInjectedPredictor": "points.predictor",
    "SequenceBlockMasker": "points.masks", "SpatialBlockMasker": "points.masks", "PointAugment": "points.augment",
    "load_points": "points.data", "farthest_point_sample": "points.geometry", "nearest_neighbour_order": "points.sequencer",
    "VJEPA": "video.vjepa", "VJVCR": "video.vjvcr", "TubeletEmbed": "video.tubelet", "VideoBackbone": "video.backbone",
    "MultiBlock3DMasker": "video.masks", "TubeMaskSet": "video.masks", "MultiMaskPredictor": "video.predictor",
    "moving_digits": "video.moving_digits", "load_clips": "video.sources", "load_moving_digits": "video.sources",
    # joint-embedding objectives, the multi-view method and representation diagnostics
    "nt_xent_loss": "objectives.infonce", "barlow_twins_loss": "objectives.barlow", "vicreg_loss": "objectives.vicreg",
    "tico_loss": "objectives.tico", "TiCoLoss": "objectives.tico", "intl_loss": "objectives.intl",
    "iter_norm": "objectives.intl", "sigreg_loss": "objectives.sigreg", "lejepa_loss": "objectives.sigreg",
    "epps_pulley": "objectives.sigreg", "dino_loss": "objectives.dino", "DINOLoss": "objectives.dino",
    "sinkhorn_knopp": "objectives.dino", "koleo_loss": "objectives.koleo", "vcr_loss": "objectives.vcr",
    "MultiView": "multiview.method", "ViewMaker": "multiview.views", "Projector": "multiview.heads",
    "DINOHead": "multiview.heads", "lidar": "diagnostics.lidar", "covariance_spectrum": "diagnostics.spectrum",
    "collapse_alarm": "diagnostics.spectrum", "select_runs": "diagnostics.selection", "spearman": "diagnostics.selection",
    # save, load, share and export trained encoders
    "PretrainedEncoder": "export.pretrained", "save_pretrained": "export.pretrained",
    "from_pretrained": "export.pretrained", "export_encoder": "export.graph",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'polyjepa' has no attribute {name!r}")
