"""ViT Studio's engine: pure Python + torch, no UI imports. Front ends, tests and notebooks call these names."""

from .attention import (
    HEAD_FUSIONS,
    METHODS,
    SCALINGS,
    NoAttentionError,
    attention_shape,
    explain,
    features,
    overlay,
    patch_at_pixel,
    patch_attention,
    patch_grid_image,
    redraw,
    rollout,
)
from .batch import caption_files, classify_files
from .caption import (
    DEFAULT_CAPTIONER,
    accepts_prompt,
    caption,
    caption_attention,
    decoder_layer_count,
    prompt_support,
)
from .classify import classify
from .examples import example_images
from .feature_maps import (
    DEFAULT_BACKGROUND_THRESHOLD,
    DEFAULT_FEATURE_MODEL,
    FeaturePCA,
    feature_pca,
    patch_similarity,
)
from .hub import hub_available
from .images import IMAGE_SUFFIXES, ImageError, load_image
from .mae import DEFAULT_MAE, MAX_MASK_RATIO, MaeReconstruction, reconstruct
from .models import ModelLoadError, loads_offline, preload_classifier
from .settings import (
    DEFAULT_CLASSIFIER,
    PRECISIONS,
    Settings,
    configure,
    current_settings,
    environment_settings,
    use_settings,
)
from .token_merging import (
    Matching,
    MergePoint,
    MergeResult,
    agreement_curve,
    bipartite_soft_matching,
    merging,
    token_merging,
)
from .types import (
    AttentionShape,
    CaptionAttention,
    Explanation,
    Features,
    FileCaptions,
    FileResult,
    LabelMap,
    OnLoad,
    OnRun,
    PatchAttention,
    Prediction,
    RunInfo,
)
from .walkthrough import (
    ClsStep,
    EmbeddingStep,
    HeadStep,
    LayerStep,
    PatchStep,
    PositionStep,
    Walkthrough,
    walkthrough,
)
from .zero_shot import DEFAULT_MODEL as DEFAULT_CLIP_MODEL
from .zero_shot import DEFAULT_PRETRAINED as DEFAULT_CLIP_PRETRAINED
from .zero_shot import (
    check_labels,
    pretrained_tags,
    resolve_templates,
    takes_pretrained,
    template_scores,
    zero_shot,
    zero_shot_map,
)

# Submodules a front end may import from directly, beyond the names above, and why. Empty: ui/ imports from `core`.
FRONT_END_SUBMODULES: tuple[str, ...] = ()

__all__ = [
    # classification
    "classify",
    "classify_files",
    "DEFAULT_CLASSIFIER",
    # where a ViT looks
    "explain",
    "redraw",
    "patch_attention",
    "patch_at_pixel",
    "features",
    "overlay",
    "patch_grid_image",
    "rollout",
    "attention_shape",
    # what self-supervised features see
    "feature_pca",
    "patch_similarity",
    "FeaturePCA",
    "DEFAULT_FEATURE_MODEL",
    "DEFAULT_BACKGROUND_THRESHOLD",
    "HEAD_FUSIONS",
    "METHODS",
    "SCALINGS",
    "NoAttentionError",
    # step by step
    "walkthrough",
    "Walkthrough",
    "PatchStep",
    "EmbeddingStep",
    "PositionStep",
    "LayerStep",
    "ClsStep",
    "HeadStep",
    # captions
    "caption",
    "caption_attention",
    "caption_files",
    "accepts_prompt",
    "prompt_support",
    "decoder_layer_count",
    "DEFAULT_CAPTIONER",
    # zero-shot
    "zero_shot",
    "zero_shot_map",
    "template_scores",
    "check_labels",
    "resolve_templates",
    "pretrained_tags",
    "takes_pretrained",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    # masked autoencoding
    "reconstruct",
    "MaeReconstruction",
    "DEFAULT_MAE",
    "MAX_MASK_RATIO",
    # token merging (ToMe)
    "token_merging",
    "agreement_curve",
    "merging",
    "bipartite_soft_matching",
    "Matching",
    "MergeResult",
    "MergePoint",
    # images, models, settings
    "configure",
    "current_settings",
    "use_settings",
    "environment_settings",
    "Settings",
    "PRECISIONS",
    "preload_classifier",
    "example_images",
    "hub_available",
    "loads_offline",
    "load_image",
    "IMAGE_SUFFIXES",
    "ImageError",
    "ModelLoadError",
    # results and callbacks
    "AttentionShape",
    "CaptionAttention",
    "Explanation",
    "Features",
    "FileCaptions",
    "FileResult",
    "LabelMap",
    "PatchAttention",
    "Prediction",
    "RunInfo",
    "OnLoad",
    "OnRun",
    "FRONT_END_SUBMODULES",
]
