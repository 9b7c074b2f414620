"""LiDAR point clouds: readers for KITTI and nuScenes sweeps, and bird's-eye-view (BEV) grids and tokens.
Import from the modules; this package does no work on import."""
