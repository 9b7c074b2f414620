"""The multi-view (joint-embedding) family: view maker -> encoder -> projector -> objective."""
from .heads import DINOHead, Projector
from .method import MultiView
from .views import ViewMaker, gaussian_blur, resized_crop

__all__ = ["DINOHead", "MultiView", "Projector", "ViewMaker", "gaussian_blur", "resized_crop"]
