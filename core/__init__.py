"""ViT Studio's engine: pure Python + torch, no UI imports. Front ends, tests and notebooks call these names."""
from .attention import NoAttentionError, explain, features, overlay, rollout
from .batch import classify_files
from .caption import caption
from .classify import classify
from .images import ImageError, load_image
from .models import ModelLoadError, configure
from .zero_shot import zero_shot
from .types import Explanation, Features, FileResult, Prediction

__all__ = [
    "caption",
    "zero_shot",
    "classify",
    "explain",
    "features",
    "overlay",
    "rollout",
    "Explanation",
    "Features",
    "NoAttentionError",
    "classify_files",
    "configure",
    "load_image",
    "FileResult",
    "ImageError",
    "ModelLoadError",
    "Prediction",
]
