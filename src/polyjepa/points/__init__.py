"""Point clouds: FPS + kNN patch tokens, Point-JEPA's sequencer and masks, 3D-JEPA's spatial masks and
context-injected predictor, a point-cloud loader (files, arrays, voxel grids) and augmentations."""
from .augment import PointAugment
from .backbone import PointBackbone
from .data import load_points, voxels_to_points
from .geometry import check_clouds, farthest_point_sample, knn
from .masks import SequenceBlockMasker, SpatialBlockMasker
from .method import PointJEPA
from .predictor import ContextInjectedPredictor, PointPredictor
from .sequencer import nearest_neighbour_order
from .tokenizer import MiniPointNet, PointGroups, PointGroupTokenizer, group_points

__all__ = ["ContextInjectedPredictor", "MiniPointNet", "PointAugment", "PointBackbone", "PointGroupTokenizer",
           "PointGroups", "PointJEPA", "PointPredictor", "SequenceBlockMasker", "SpatialBlockMasker",
           "check_clouds", "farthest_point_sample", "group_points", "knn", "load_points",
           "nearest_neighbour_order", "voxels_to_points"]
