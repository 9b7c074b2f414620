"""Volume parts for recipes: contrastive clustering (trained by its own runner), its views and the volume loader."""
from __future__ import annotations

from .augment import VolumeAugment
from .run import clustering_model, load_volume_set, run_volume_clustering

PARTS = {
    "method": {"contrastive_clustering": (clustering_model, {"input_shape", "clusters"})},
    "augment": {"volume_augment": (VolumeAugment, set())},
    "data": {"volumes": (load_volume_set, {"source"})},
}
RUNNERS = {"contrastive_clustering": run_volume_clustering}
# the loader's lazy form for data.stream=true (volumes read from the memory-mapped .npz on access)
STREAMS = {"volumes": "polyjepa.volumes.stream:open_volume_set"}
