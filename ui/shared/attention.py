"""The Attention tab's views, for both front ends: captioned galleries, the token sentence, one clicked patch's
attention in words, features as files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core import Explanation, Features, PatchAttention, attention_shape, decoder_layer_count, overlay
from ui.shared.texts import HEAD_RANGES_NOTE, SCALING_NOTES
from ui.shared.widgets import DECODER_LAYER, HEAD, LAYER, LAYER_RIGHT, Slider, fitted


def model_sliders(model: str) -> tuple[Slider, Slider, Slider]:
    """The layer, head and right-hand layer sliders fitted to the model's layers and heads (read from its config
    without running it); the shared ranges when that is not known yet."""
    shape = attention_shape(model)
    layers = shape.num_layers if shape is not None else None
    heads = shape.num_heads if shape is not None else None
    return fitted(LAYER, layers), fitted(HEAD, heads), fitted(LAYER_RIGHT, layers)


# ---- one patch: where it looks and what looks at it ---------------------------------------------------------------

PATCH_TITLE = "One patch: where it looks and what looks at it"
PATCH_HINT = (
    "Click any patch on the map, on either picture below or on the patch grid (or type its row and column) to see "
    "that token's own attention in the chosen layer and head: its row of the attention matrix (where it looks) and "
    "its column (what looks at it). Layer 0 shows the last layer; head 0 fuses the heads."
)
PATCH_TO_LABEL = "Where it looks (its row)"
PATCH_BY_LABEL = "What looks at it (its column)"
PATCH_ROW_LABEL = "Patch row"
PATCH_COL_LABEL = "Patch column"
PATCH_STALE = "Explain again to look at a patch: the last explanation was for another model or photo, or has expired."


def patch_name(row: int, col: int) -> str:
    return f"patch (row {row}, col {col})"


def percent(value: float) -> str:
    """A weight as a percentage a class can read: whole percents, one decimal below 10%, "<0.1%" below that."""
    if value >= 0.1:
        return f"{value:.0%}"
    if value >= 0.001:
        return f"{value:.1%}"
    return "<0.1%" if value > 0 else "0%"


def patch_line(patch: PatchAttention) -> str:
    """The clicked patch's attention in sentences of real numbers: what it gives itself, CLS and the patch it attends
    to most; which patch gives it the most attention; and what CLS gives it."""
    heads = f"head {patch.head}" if patch.head is not None else f"heads fused by {patch.head_fusion}"
    line = (
        f"**{patch_name(patch.row, patch.col).capitalize()}**, layer {patch.layer}, {heads}: "
        f"attends {percent(patch.to_self)} to itself, {_prefix_share(patch.to_prefix)}"
    )
    if patch.attends_to.size == 1:  # a one-patch grid has no other patch to name
        return f"{line}; CLS gives it {percent(patch.from_cls)}."
    grid_w = patch.grid_size[1]
    here = patch.row - 1, patch.col - 1
    others_to, others_by = patch.attends_to.copy(), patch.attended_by.copy()
    others_to[here] = others_by[here] = -1.0  # "the patch it looks at most" means another one
    to_row, to_col = divmod(int(others_to.argmax()), grid_w)
    by_row, by_col = divmod(int(others_by.argmax()), grid_w)
    return (
        f"{line}; of the other patches, most to {patch_name(to_row + 1, to_col + 1)} "
        f"({percent(float(others_to.max()))}). The patch that looks at it most is "
        f"{patch_name(by_row + 1, by_col + 1)}, with {percent(float(others_by.max()))} of its attention; "
        f"CLS gives it {percent(patch.from_cls)}."
    )


def patch_ranges_line(patch: PatchAttention) -> str:
    """Under the two patch maps: their raw ranges, so the colours can be read as numbers."""
    (to_low, to_high), (by_low, by_high) = patch.attends_to_range, patch.attended_by_range
    scaled = "lowest to highest" if patch.scaling == "minmax" else "0 to highest"
    return (
        f"Its row spans {percent(to_low)} to {percent(to_high)}; its column {percent(by_low)} to "
        f"{percent(by_high)}; each map's colours run {scaled}."
    )


def _prefix_share(weights: tuple[float, ...]) -> str:
    """What a patch gives the tokens before the patches: CLS, then DeiT's distillation token or the registers."""
    parts = [f"{percent(weights[0])} to CLS"]
    if len(weights) == 2:
        parts.append(f"{percent(weights[1])} to the distillation token")
    elif len(weights) > 2:
        parts.append(f"{percent(sum(weights[1:]))} to the {len(weights) - 1} register tokens")
    return ", ".join(parts)


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
