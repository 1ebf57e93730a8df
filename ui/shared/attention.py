"""The Attention tab's views, for both front ends: captioned galleries, the token sentence, features as files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core import Explanation, Features, attention_shape, decoder_layer_count, overlay
from ui.shared.texts import HEAD_RANGES_NOTE, SCALING_NOTES
from ui.shared.widgets import DECODER_LAYER, HEAD, LAYER, LAYER_RIGHT, Slider, fitted


def model_sliders(model: str) -> tuple[Slider, Slider, Slider]:
    """The layer, head and right-hand layer sliders fitted to the model's layers and heads (read from its config
    without running it); the shared ranges when that is not known yet."""
    shape = attention_shape(model)
    layers = shape.num_layers if shape is not None else None
    heads = shape.num_heads if shape is not None else None
    return fitted(LAYER, layers), fitted(HEAD, heads), fitted(LAYER_RIGHT, layers)


def decoder_layer_slider(model: str) -> Slider:
    """The caption word maps' decoder-layer slider fitted to the captioner's decoder."""
    return fitted(DECODER_LAYER, decoder_layer_count(model))


def value_range_line(explanation: Explanation) -> str:
    """Under the map: the raw values it spans and how they became colours (a flat map is no longer a solid colour,
    so the reader needs to know how small the differences are)."""
    low, high = explanation.value_range
    return f"Map values from {low:.4g} to {high:.4g}; {SCALING_NOTES[explanation.scaling]}"


def head_ranges_line(explanation: Explanation) -> str:
    """Under the head grid: the raw range across the heads and how each tile was scaled."""
    if not explanation.head_ranges:
        return ""
    low = min(low for low, _ in explanation.head_ranges)
    high = max(high for _, high in explanation.head_ranges)
    return HEAD_RANGES_NOTE[explanation.head_scaling].format(low=f"{low:.4g}", high=f"{high:.4g}")


def layer_strip(explanation: Explanation, *, alpha: float = 0.6, cmap: str = "jet") -> list[tuple[Image.Image, str]]:
    """The rollout after each layer over the model's input, captioned: how the map forms."""
    return [
        (overlay(explanation.model_input, heatmap, alpha, cmap), f"up to layer {index}")
        for index, heatmap in enumerate(explanation.layer_maps, start=1)
    ]


def head_grid(explanation: Explanation, *, alpha: float = 0.6, cmap: str = "jet") -> list[tuple[Image.Image, str]]:
    """Each head's CLS attention (of the explanation's layer) over the model's input (the DINO-style view)."""
    return [
        (overlay(explanation.model_input, heatmap, alpha, cmap), f"head {index}")
        for index, heatmap in enumerate(explanation.head_maps, start=1)
    ]


def describe_tokens(explanation: Explanation) -> str:
    """One sentence on how the image became tokens, for people meeting ViTs for the first time."""
    rows, columns = explanation.grid_size
    width, height = explanation.model_input.size
    prefix = explanation.num_prefix_tokens
    extra = {1: "1 CLS token", 2: "a CLS token and a distillation token"}.get(
        prefix, f"{prefix} extra tokens (CLS, registers)"
    )
    return (
        f"The model sees a {width}x{height} image as a {rows}x{columns} grid of "
        f"{width // columns}x{height // rows}-pixel patches: {rows * columns} patch tokens + {extra} = "
        f"{rows * columns + prefix} tokens, through {explanation.num_layers} layers of {explanation.num_heads} "
        "heads."
    )


def comparison_target(target: int | str | None, model: str, *, other_model: str) -> int | str | None:
    """The class a side-by-side comparison explains on its other side: the same one when both sides run the
    same model; otherwise None (that model's own top label), since a class name only means something to the
    model it came from."""
    return target if other_model == model else None


def save_features(extracted: Features, folder: str | Path) -> list[Path]:
    """Write the CLS and patch embeddings as .npy files for download (np.load reads them back)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cls_path = folder / f"cls_layer{extracted.layer}.npy"
    patches_path = folder / f"patches_layer{extracted.layer}.npy"
    np.save(cls_path, extracted.cls)
    np.save(patches_path, extracted.patches)
    return [cls_path, patches_path]
