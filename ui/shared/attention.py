"""The Attention tab's views, for both front ends: captioned galleries, the token sentence, features as files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core import Explanation, Features, overlay


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
