"""Concerto (joint 2-D/3-D self-supervised learning): cameras, a z-buffer point renderer, the point-to-patch
correspondence, and the method (3-D self-distillation plus a cross-modal JEPA onto a frozen 2-D encoder)."""
from .camera import Cameras, look_at, orbit_cameras, project
from .method import Concerto, cluster_loss, cross_modal_loss
from .render import (Render, depth_image, patch_group_weights, pool_patches, render_points, render_voxels, visible,
                     visible_patches, voxel_points)

__all__ = ["Cameras", "Concerto", "Render", "cluster_loss", "cross_modal_loss", "depth_image", "look_at",
           "orbit_cameras", "patch_group_weights", "pool_patches", "project", "render_points", "render_voxels",
           "visible", "visible_patches", "voxel_points"]
