"""What the inference widgets of both front ends offer: model choices, decoding strategies and every slider's range."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Slider:
    """A slider as both front ends draw it: its bounds, first value, step, label and help line.
    Whole-number sliders have int fields throughout (Streamlit's slider refuses a mix of int and float)."""

    minimum: float
    maximum: float
    default: float
    step: float
    label: str
    info: str = ""


def fitted(spec: Slider, maximum: int | None) -> Slider:
    """The slider with its maximum set to what the chosen model has (its layers, its heads); the spec's own range
    when that is not known yet (a model not on this machine before its first use)."""
    return spec if maximum is None else replace(spec, maximum=maximum)


def in_range(value: float | None, spec: Slider) -> float:
    """A slider's value kept within its (perhaps just shrunk) range: a value past a new maximum becomes it."""
    if value is None:
        return spec.default
    return min(max(value, spec.minimum), spec.maximum)


# ---- model boxes: suggestions; any hub id or local folder may be typed instead --------------------------------

CLASSIFIER_CHOICES: tuple[str, ...] = (
    "google/vit-base-patch16-224",
    "facebook/deit-base-distilled-patch16-224",
    "google/vit-large-patch16-224",
    "facebook/deit-small-patch16-224",
    "google/vit-base-patch16-384",
    "microsoft/beit-base-patch16-224",
)
EXPLAINER_CHOICES: tuple[str, ...] = (
    "google/vit-base-patch16-224",
    "facebook/deit-base-distilled-patch16-224",
    "facebook/dino-vits16",
    "facebook/dino-vitb16",
    "google/vit-large-patch16-224",
)
CAPTIONER_CHOICES: tuple[str, ...] = (
    "nlpconnect/vit-gpt2-image-captioning",
    "Salesforce/blip-image-captioning-base",
    "Salesforce/blip-image-captioning-large",
)
# (model, pretrained tag) pairs; None marks the transformers backend, which takes no tag.
ZERO_SHOT_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("ViT-B-32", "laion2b_s34b_b79k"),
    ("ViT-B-16", "laion2b_s34b_b88k"),
    ("ViT-L-14", "openai"),
    ("ViT-B-32", "openai"),
    ("openai/clip-vit-base-patch32", None),
)
CLIP_MODEL_CHOICES: tuple[str, ...] = tuple(dict.fromkeys(name for name, _ in ZERO_SHOT_CHOICES))

# ---- Classify -------------------------------------------------------------------------------------------------

TOP_K = Slider(1, 20, 5, 1, "How many labels (top-k)")

# ---- Attention ------------------------------------------------------------------------------------------------

DISCARD_RATIO = Slider(
    0.0, 0.99, 0.9, 0.01, "Discard ratio (rollout)", "drop the weakest attention weights in each layer"
)
# Until a model's config is on this machine, sliders reach past a ViT-B's 12 layers and heads for ViT-L (24 layers,
# 16 heads) and the engine names the range; once it is, the front ends fit them to the model (ui/shared/attention.py).
LAYER = Slider(0, 24, 0, 1, "Layer (0 = all / last)", "rollout up to this layer; raw attention of this layer")
HEAD = Slider(0, 16, 0, 1, "Head (0 = all heads fused)", "raw attention only")
LAYER_RIGHT = Slider(0, 24, 0, 1, "Layer (right, 0 = all / last)")
OPACITY = Slider(0.0, 1.0, 0.5, 0.05, "Opacity")

# ---- Caption --------------------------------------------------------------------------------------------------

DECODING_STRATEGIES: tuple[str, ...] = ("greedy", "beam search", "sampling")
DEFAULT_DECODING = "beam search"
BEAMS = Slider(1, 8, 3, 1, "Beams (beam search)")
CAPTIONS = Slider(1, 5, 1, 1, "Captions to return", "up to the number of beams, unless sampling")
MAX_NEW_TOKENS = Slider(1, 64, 20, 1, "Max new tokens")
TOP_P = Slider(0.05, 1.0, 0.9, 0.05, "top-p (sampling)")
TEMPERATURE = Slider(0.1, 2.0, 1.0, 0.05, "Temperature (sampling)")
REPETITION_PENALTY = Slider(1.0, 2.0, 1.0, 0.05, "Repetition penalty (1 = off)")
NO_REPEAT_NGRAM = Slider(0, 5, 0, 1, "No repeated n-grams of size (0 = off)")
DECODER_LAYER = Slider(0, 12, 0, 1, "Decoder layer (0 = mean of all)")  # fitted to the captioner's decoder

# ---- Zero-shot ------------------------------------------------------------------------------------------------

BAR_CHART_LABELS = 25  # more bars than this are unreadable; the full ranking is elsewhere (API output, table)
