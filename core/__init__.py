"""ViT Studio's engine: pure Python + torch, no UI imports. Front ends, tests and notebooks call these names."""
from .batch import classify_files
from .classify import classify
from .images import ImageError, load_image
from .models import ModelLoadError, configure
from .types import FileResult, Prediction

__all__ = [
    "classify",
    "classify_files",
    "configure",
    "load_image",
    "FileResult",
    "ImageError",
    "ModelLoadError",
    "Prediction",
]
