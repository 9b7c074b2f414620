"""3-D image volumes (voxel grids, medical scans): readers, a cubic patch tokenizer, augmentations, and
contrastive clustering with its metrics. Import from the modules; this package does no work on import."""
