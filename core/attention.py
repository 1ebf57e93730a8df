"""Where a ViT looks: attention rollout, gradient rollout, raw per-layer/per-head maps, overlays, features."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any, Iterator, Mapping, Sequence, TypeGuard, Union

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import AutoConfig  # imported up front: lazy resolution is not thread-safe (see core/models.py)

from .classify import check_top_k, label_names, preprocess, scores_from_logits, size_kwargs, top_predictions
from .gpu import gpu_work
from .images import ImageInput, load_image, load_images
from .models import LoadedModel, _resolve_name, load_explainable
from .settings import DEFAULT_CLASSIFIER, current_settings
from .types import AttentionShape, Explanation, Features, OnLoad, PatchAttention, run_since

HEAD_FUSIONS = ("mean", "max", "min")
METHODS = ("rollout", "grad_rollout", "attention")
SCALINGS = ("max", "minmax")

AttentionArray = Union[np.ndarray, torch.Tensor]


class NoAttentionError(ValueError):
    """The model has no global self-attention to show (a CNN, or windowed attention such as Swin)."""


# --- pure map computations on attention arrays -----------------------------------------------------


def rollout(
    attentions: Sequence[AttentionArray],
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    num_prefix_tokens: int = 1,
    grid_size: tuple[int, int] | None = None,
    up_to_layer: int | None = None,
) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) as in DESIGN.md: the CLS row over the patch grid, max 1.

    `up_to_layer` (1-based) stops after that layer, so a map can be watched forming layer by layer.
    """
    layers = _as_layers(attentions)
    stop = _check_layer_count(up_to_layer, len(layers))
    *_, joint = _rollout_steps(layers[:stop], head_fusion, discard_ratio)
    return cls_map(joint, num_prefix_tokens, grid_size)


def rollout_per_layer(
    attentions: Sequence[AttentionArray],
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    num_prefix_tokens: int = 1,
    grid_size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """The rollout map after each layer, first to last (one running product, so no extra cost)."""
    layers = _as_layers(attentions)
    return [
        cls_map(joint, num_prefix_tokens, grid_size) for joint in _rollout_steps(layers, head_fusion, discard_ratio)
    ]


def grad_rollout(
    attentions: Sequence[AttentionArray],
    gradients: Sequence[AttentionArray],
    num_prefix_tokens: int = 1,
    grid_size: tuple[int, int] | None = None,
    up_to_layer: int | None = None,
) -> np.ndarray:
    """Class-specific relevance (Chefer et al., 2021, "Generic Attention-model Explainability"):
    R = I; per layer R += mean_heads(relu(grad * A)) @ R; the CLS row over the patches, max 1."""
    return cls_map(_grad_relevance(attentions, gradients, up_to_layer), num_prefix_tokens, grid_size)


def _grad_relevance(
    attentions: Sequence[AttentionArray], gradients: Sequence[AttentionArray], up_to_layer: int | None
) -> np.ndarray:
    """Chefer et al.'s token-by-token relevance R after `up_to_layer` layers (all when None)."""
    layers, grads = _as_layers(attentions), _as_layers(gradients)
    if len(layers) != len(grads) or any(a.shape != g.shape for a, g in zip(layers, grads)):
        raise ValueError("attentions and gradients must have the same number of layers and the same shapes.")
    stop = _check_layer_count(up_to_layer, len(layers))
    tokens = layers[0].shape[-1]
    relevance = np.eye(tokens)
    for attention, gradient in zip(layers[:stop], grads[:stop]):
        weighted = np.clip(attention * gradient, 0, None).mean(axis=0)
        relevance = relevance + weighted @ relevance
    return relevance


def attention_map(
    attentions: Sequence[AttentionArray],
    layer: int,
    head: int | None = None,
    head_fusion: str = "mean",
    num_prefix_tokens: int = 1,
    grid_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Raw attention of one layer from CLS to the patches: one head, or the heads fused; max 1.

    Layers and heads count from 1, as people number them (and as the captions of head_grid do).
    """
    return cls_map(_layer_weights(attentions, layer, head, head_fusion), num_prefix_tokens, grid_size)


def _layer_weights(attentions: Sequence[AttentionArray], layer: int, head: int | None, head_fusion: str) -> np.ndarray:
    """One layer's (1-based) token-by-token attention: one head (1-based), or the heads fused."""
    layers = _as_layers(attentions)
    _check_layer_count(layer, len(layers))
    heads = layers[layer - 1]
    if head is None:
        return fuse_heads(heads, head_fusion)
    _check_head(head, heads.shape[0])
    return heads[head - 1]


def head_maps(
    attentions: Sequence[AttentionArray],
    layer: int,
    num_prefix_tokens: int = 1,
    grid_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """CLS-to-patch attention of every head of one layer (1-based): (heads, grid_h, grid_w), each max 1."""
    layers = _as_layers(attentions)
    _check_layer_count(layer, len(layers))
    return np.stack([cls_map(head, num_prefix_tokens, grid_size) for head in layers[layer - 1]])


def fuse_heads(heads: np.ndarray, head_fusion: str) -> np.ndarray:
    if head_fusion == "mean":
        return heads.mean(axis=0)
    if head_fusion == "max":
        return heads.max(axis=0)
    if head_fusion == "min":
        return heads.min(axis=0)
    raise ValueError(f"Unknown head fusion '{head_fusion}'; choose one of {', '.join(HEAD_FUSIONS)}.")


def cls_map(weights: np.ndarray, num_prefix_tokens: int = 1, grid_size: tuple[int, int] | None = None) -> np.ndarray:
    """Row 0 (CLS) of a token-by-token matrix over the patch tokens, as the patch grid, divided by its max.

    An all-zero map stays all zero (never NaN).
    """
    return scale_map(_cls_row(weights, num_prefix_tokens, grid_size), "max")


def scale_map(heatmap: np.ndarray, scaling: str = "max") -> np.ndarray:
    """A raw map brought to [0, 1]: "max" divides by the maximum (an all-zero map stays zero); "minmax" maps the
    minimum to 0 and the maximum to 1, so a nearly flat map is not one solid colour. A map with no spread at all
    (every value the same, to float precision) has nothing to stretch and is scaled by its max."""
    if scaling not in SCALINGS:
        raise ValueError(f"Unknown scaling '{scaling}'; choose one of {', '.join(SCALINGS)}.")
    heatmap = np.asarray(heatmap, dtype=np.float64)
    low, high = float(heatmap.min()), float(heatmap.max())
    # Below this spread the differences are rounding noise of the attention weights, not where the model looks.
    if scaling == "minmax" and high - low > 1e-9 * max(abs(high), abs(low)):
        return (heatmap - low) / (high - low)
    return heatmap / high if high > 0 else np.zeros_like(heatmap)


def _cls_row(weights: np.ndarray, num_prefix_tokens: int = 1, grid_size: tuple[int, int] | None = None) -> np.ndarray:
    """Row 0 (CLS) of a token-by-token matrix over the patch tokens, as the patch grid, unscaled."""
    tokens = weights.shape[-1]
    num_patches = tokens - num_prefix_tokens
    if num_prefix_tokens < 1 or num_patches < 1:
        raise ValueError(f"num_prefix_tokens must be between 1 and {tokens - 1}, not {num_prefix_tokens}.")
    grid_h, grid_w = grid_size or _square_grid(num_patches)
    if grid_h * grid_w != num_patches:
        raise ValueError(f"A {grid_h}x{grid_w} grid does not fit {num_patches} patch tokens.")
    return np.asarray(weights[0, num_prefix_tokens:], dtype=np.float64).reshape(grid_h, grid_w)


def _rollout_steps(layers: list[np.ndarray], head_fusion: str, discard_ratio: float) -> Iterator[np.ndarray]:
    """The running product R = A_l @ R after each layer."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"Unknown head fusion '{head_fusion}'; choose one of {', '.join(HEAD_FUSIONS)}.")
    check_discard_ratio(discard_ratio)
    tokens = layers[0].shape[-1]
    identity = np.eye(tokens)
    joint = identity
    for heads in layers:
        fused = fuse_heads(heads, head_fusion)
        if discard_ratio > 0:
            fused = _discard_lowest(fused, discard_ratio)
        fused = (fused + identity) / 2
        fused = fused / fused.sum(axis=-1, keepdims=True)
        joint = fused @ joint
        yield joint


def _discard_lowest(fused: np.ndarray, discard_ratio: float) -> np.ndarray:
    """Zero the lowest int(tokens*tokens*ratio) weights, except the CLS-to-CLS weight (flat index 0)."""
    flat = fused.reshape(-1).copy()
    count = int(flat.size * discard_ratio)
    if count == 0:
        return fused
    # A partition finds the cut in linear time (a full sort was most of explain's cost); ties at the cut
    # go by position, exactly as a stable sort would order them.
    cut = np.partition(flat, count - 1)[count - 1]
    lowest = flat < cut
    missing = count - int(lowest.sum())
    if missing > 0:
        lowest[np.flatnonzero(flat == cut)[:missing]] = True
    lowest[0] = False
    flat[lowest] = 0
    return flat.reshape(fused.shape)


def _as_layers(attentions: Sequence[AttentionArray]) -> list[np.ndarray]:
    """One float64 (heads, tokens, tokens) array per layer; a leading batch axis of 1 is dropped."""
    if attentions is None or len(attentions) == 0:
        raise ValueError("No attention layers given.")
    layers = []
    for index, layer in enumerate(attentions):
        array = layer.detach().cpu().double().numpy() if isinstance(layer, torch.Tensor) else np.asarray(layer)
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 3 or array.shape[1] != array.shape[2]:
            raise ValueError(f"Layer {index + 1} has shape {array.shape}; expected (heads, tokens, tokens).")
        layers.append(np.asarray(array, dtype=np.float64))  # no second copy when already float64
    if len({layer.shape[1:] for layer in layers}) != 1:
        raise ValueError("All layers must have the same number of tokens.")
    return layers


def _square_grid(num_patches: int) -> tuple[int, int]:
    side = int(round(num_patches**0.5))
    if side * side != num_patches:
        raise ValueError(f"{num_patches} patch tokens do not form a square grid; pass grid_size=(rows, columns).")
    return side, side


def check_discard_ratio(discard_ratio: float) -> None:
    if (
        isinstance(discard_ratio, bool)
        or not isinstance(discard_ratio, (int, float, np.number))
        or not 0 <= discard_ratio < 1
    ):
        raise ValueError(f"discard_ratio must be at least 0 and below 1, not {discard_ratio}.")


def _check_layer_count(layer: int | None, num_layers: int) -> int:
    if layer is None:
        return num_layers
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= num_layers:
        raise ValueError(f"Layer {layer} is out of range: this model has layers 1 to {num_layers}.")
    return int(layer)


def _check_head(head: int, num_heads: int) -> None:
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 1 <= head <= num_heads:
        raise ValueError(f"Head {head} is out of range: this layer has heads 1 to {num_heads}.")


# --- drawing -----------------------------------------------------------------------------------------


def overlay(image: ImageInput, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """The heatmap upsampled (bilinear) to the image, coloured with a matplotlib colormap, blended on top."""
    from matplotlib import colormaps

    _check_drawing(alpha, cmap)
    picture = load_image(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"heatmap must be a non-empty 2-D array, not shape {heatmap.shape}.")
    width, height = picture.size
    # float32 and uint8 all the way: a 48-megapixel photo must not cost gigabytes.
    # PIL's bilinear resize of a float image: the same values as skimage's order-1 resize with edge mode (to 1e-7),
    # 2-4x faster, which a patch click (two overlays) and every live redraw feel.
    upsampled = np.asarray(Image.fromarray(heatmap).resize((width, height), Image.Resampling.BILINEAR))
    # A lookup table indexed as matplotlib indexes its own (x * N, the top value folded into the last entry),
    # at a fraction of the cost of calling the colormap on every pixel.
    colormap = colormaps[cmap]
    table = (colormap(np.arange(colormap.N))[:, :3] * 255).round().astype(np.uint8)
    indices = np.clip(upsampled * colormap.N, 0, colormap.N - 1)
    if colormap.N <= 256:  # every matplotlib colormap: a palette image, coloured by PIL in C (6x the numpy lookup)
        colours = Image.fromarray(indices.astype(np.uint8), mode="P")
        colours.putpalette(table.tobytes())
        colours = colours.convert("RGB")
    else:
        colours = Image.fromarray(table[indices.astype(np.uint16)])
    return Image.blend(picture, colours, alpha)


def _check_drawing(alpha: float, cmap: str) -> None:
    from matplotlib import colormaps

    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha (opacity) must be between 0 and 1, not {alpha!r}.")
    if cmap not in colormaps:
        raise ValueError(f"Unknown colormap '{cmap}'; try jet, viridis, inferno, magma or turbo.")


def patch_grid_image(
    model_input: Image.Image, grid_size: tuple[int, int], colour=(255, 255, 255), min_side: int = 224
) -> Image.Image:
    """The image as the model sees it, with the patch grid drawn on it (small inputs enlarged to be seen)."""
    scale = max(1, -(-min_side // min(model_input.size)))
    picture = model_input.convert("RGB").resize(
        (model_input.width * scale, model_input.height * scale), Image.Resampling.NEAREST
    )
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    rows, columns = grid_size
    for column in range(1, columns):
        x = round(column * width / columns)
        draw.line([(x, 0), (x, height)], fill=colour, width=1)
    for row in range(1, rows):
        y = round(row * height / rows)
        draw.line([(0, y), (width, y)], fill=colour, width=1)
    return picture


# --- the model side: one forward pass, maps and predictions --------------------------------------------


def preload_explainable_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """The model a call of explain or features will use, loaded into the cache (see core.gpu)."""
    load_explainable(call["model"], device=call["device"], precision=call["precision"], on_load=on_load)


@gpu_work(preload=preload_explainable_for)
def explain(
    image: ImageInput,
    model: str = DEFAULT_CLASSIFIER,
    method: str = "rollout",
    head_fusion: str = "mean",
    discard_ratio: float = 0.9,
    *,
    layer: int | None = None,
    head: int | None = None,
    target: int | str | None = None,
    top_k: int = 5,
    scaling: str | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> Explanation:
    """One forward pass gives the predictions and the map.

    method: "rollout" (up to `layer`, default all), "grad_rollout" (for class `target`, default the top
    label), or "attention" (raw CLS attention of `layer`, default the last, one `head` or fused heads).
    scaling: how the map and the per-head maps become [0, 1], "max" or "minmax" (see scale_map). None, the
    default, divides rollout maps by their max, as the rollout recipe does, and stretches raw attention and the
    per-head maps min to max (raw attention is often nearly flat, which divided by its max is one solid colour).
    `on_load` hears the model's name before a load that may download; the result's `run` says what ran.
    """
    _check_map_settings(method, head_fusion, discard_ratio, scaling, alpha, cmap)
    check_top_k(top_k)  # all before the forward pass, so a typo costs nothing
    picture = load_image(image)
    loaded = load_explainable(model, device=device, precision=precision, on_load=on_load)
    started = time.perf_counter()
    pass_ = _forward(loaded, picture, method, target)
    maps = _draw(
        pass_.attentions,
        pass_.gradients,
        picture,
        pass_.model_input,
        pass_.grid_size,
        pass_.num_prefix_tokens,
        method=method,
        head_fusion=head_fusion,
        discard_ratio=discard_ratio,
        layer=layer,
        head=head,
        scaling=scaling,
        alpha=alpha,
        cmap=cmap,
    )
    predictions = (
        tuple(top_predictions(pass_.scores, pass_.labels, top_k))
        if pass_.scores is not None and pass_.labels is not None
        else ()
    )
    return Explanation(
        **maps.fields(),
        predictions=predictions,
        method=method,
        model=loaded.name,
        grid_size=pass_.grid_size,
        num_prefix_tokens=pass_.num_prefix_tokens,
        num_layers=len(pass_.attentions),
        num_heads=int(pass_.attentions[0].shape[0]),
        target=pass_.target_label,
        model_input=pass_.model_input,
        run=run_since(loaded, started),
        attentions=pass_.attentions,
        gradients=pass_.gradients,
        gradient_target=pass_.target_label,
        picture=picture,
    )


def redraw(
    explanation: Explanation,
    *,
    method: str | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.9,
    layer: int | None = None,
    head: int | None = None,
    scaling: str | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Explanation:
    """The explanation's maps and overlay drawn again with other settings, from the attentions its forward pass
    kept: no model and no forward pass, so a control can redraw at once. The options mean what explain()'s do
    (method None keeps the explanation's own); the predictions, the model input and `run` stay those of the pass.

    Gradient rollout needs the gradients of a backward pass, which explain() keeps only when it ran gradient
    rollout (a backward pass on every explain would double its cost); without them this is a ValueError.
    """
    method = explanation.method if method is None else method
    _check_map_settings(method, head_fusion, discard_ratio, scaling, alpha, cmap)
    if not explanation.attentions or explanation.picture is None:
        raise ValueError("This explanation kept no attention weights to redraw from; press Explain.")
    if method == "grad_rollout" and not explanation.gradients:
        raise ValueError(
            "Gradient rollout needs a backward pass for its class, which this explanation did not run; "
            "press Explain to compute it."
        )
    maps = _draw(
        explanation.attentions,
        explanation.gradients,
        explanation.picture,
        explanation.model_input,
        explanation.grid_size,
        explanation.num_prefix_tokens,
        method=method,
        head_fusion=head_fusion,
        discard_ratio=discard_ratio,
        layer=layer,
        head=head,
        scaling=scaling,
        alpha=alpha,
        cmap=cmap,
    )
    return replace(
        explanation,
        **maps.fields(),
        method=method,
        target=explanation.gradient_target if method == "grad_rollout" else None,
    )


def patch_attention(
    explanation: Explanation,
    row: int,
    col: int,
    *,
    layer: int | None = None,
    head: int | None = None,
    head_fusion: str = "mean",
    scaling: str = "minmax",
    alpha: float = 0.5,
    cmap: str = "jet",
) -> PatchAttention:
    """Where the patch at (row, col) attends and what attends to it, in one layer (1-based; None, the default, is the
    last), from the attentions explain() kept: no model, no forward pass. One head (1-based), or the heads fused
    (`head_fusion`) when head is None. Rows and columns count from 1 at the top left (patch_at_pixel gives them
    for a click). The overlays show the maps scaled by `scaling` over the photo, the patch outlined."""
    if not explanation.attentions:
        raise ValueError("This explanation kept no attention weights to look at a patch with; press Explain.")
    if scaling not in SCALINGS:
        raise ValueError(f"Unknown scaling '{scaling}'; choose one of {', '.join(SCALINGS)}.")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"Unknown head fusion '{head_fusion}'; choose one of {', '.join(HEAD_FUSIONS)}.")
    _check_drawing(alpha, cmap)
    grid_h, grid_w = explanation.grid_size
    _check_patch_index(row, grid_h, "row", "rows")
    _check_patch_index(col, grid_w, "column", "columns")
    chosen_layer = _check_layer_count(layer, len(explanation.attentions))
    # Only the chosen layer is read (and widened to float64): a ViT-B keeps twelve.
    weights = _layer_weights([explanation.attentions[chosen_layer - 1]], 1, head, head_fusion)
    prefix = explanation.num_prefix_tokens
    token = prefix + (int(row) - 1) * grid_w + int(col) - 1
    attends_to = weights[token, prefix:].reshape(grid_h, grid_w)
    attended_by = weights[prefix:, token].reshape(grid_h, grid_w)
    picture = explanation.picture if explanation.picture is not None else explanation.model_input
    return PatchAttention(
        row=int(row),
        col=int(col),
        token_index=token,
        layer=chosen_layer,
        head=None if head is None else int(head),
        head_fusion=head_fusion if head is None else None,
        attends_to=attends_to,
        attended_by=attended_by,
        to_prefix=tuple(float(value) for value in weights[token, :prefix]),
        from_prefix=tuple(float(value) for value in weights[:prefix, token]),
        attends_to_overlay=_outlined(
            overlay(picture, scale_map(attends_to, scaling), alpha=alpha, cmap=cmap), row, col, (grid_h, grid_w)
        ),
        attended_by_overlay=_outlined(
            overlay(picture, scale_map(attended_by, scaling), alpha=alpha, cmap=cmap), row, col, (grid_h, grid_w)
        ),
        attends_to_range=_value_range(attends_to),
        attended_by_range=_value_range(attended_by),
        scaling=scaling,
        grid_size=(grid_h, grid_w),
        num_prefix_tokens=prefix,
    )


def patch_at_pixel(x: float, y: float, *, image_size: tuple[int, int], grid_size: tuple[int, int]) -> tuple[int, int]:
    """The (row, col) of the patch under pixel (x, y) of an image shown at `image_size` (width, height) and cut into
    `grid_size` (rows, columns) patches; both count from 1 at the top left, as patch_attention takes them.
    The right and bottom edges (x == width, y == height) belong to the last patch."""
    width, height = image_size
    rows, columns = grid_size
    if min(width, height, rows, columns) < 1:
        raise ValueError(
            f"An image of {width}x{height} pixels cut into {rows}x{columns} patches has no patch to click."
        )
    for name, value, limit in (("x", x, width), ("y", y, height)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value <= limit:
            raise ValueError(f"Pixel {name}={value!r} is outside the {width}x{height} image: click on the picture.")
    col = min(int(x * columns / width), columns - 1) + 1
    row = min(int(y * rows / height), rows - 1) + 1
    return row, col


def _check_patch_index(index: int, count: int, name: str, plural: str) -> None:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 1 <= index <= count:
        raise ValueError(
            f"Patch {name} {index!r} is out of range: this image has patch {plural} 1 to {count}, counted from the "
            f"{'top' if name == 'row' else 'left'}."
        )


def _outlined(picture: Image.Image, row: int, col: int, grid_size: tuple[int, int]) -> Image.Image:
    """The picture with one patch of its grid outlined, white inside black so it shows on any colormap."""
    rows, columns = grid_size
    width, height = picture.size
    box = (
        round((col - 1) * width / columns),
        round((row - 1) * height / rows),
        round(col * width / columns) - 1,
        round(row * height / rows) - 1,
    )
    line = max(1, round(min(width, height) / 200))  # seen on a phone-size thumbnail of a large photo too
    draw = ImageDraw.Draw(picture)
    draw.rectangle(box, outline=(0, 0, 0), width=line * 3)
    inner = (box[0] + line, box[1] + line, box[2] - line, box[3] - line)
    if inner[0] < inner[2] and inner[1] < inner[3]:
        draw.rectangle(inner, outline=(255, 255, 255), width=line)
    return picture


def _check_map_settings(
    method: str, head_fusion: str, discard_ratio: float, scaling: str | None, alpha: float, cmap: str
) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    if scaling is not None and scaling not in SCALINGS:
        raise ValueError(f"Unknown scaling '{scaling}'; choose one of {', '.join(SCALINGS)}.")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"Unknown head fusion '{head_fusion}'; choose one of {', '.join(HEAD_FUSIONS)}.")
    check_discard_ratio(discard_ratio)
    _check_drawing(alpha, cmap)


@dataclass(frozen=True, eq=False)
class _Maps:
    """Everything explain() and redraw() draw from the attention weights."""

    heatmap: np.ndarray
    overlay: Image.Image
    layer_maps: tuple[np.ndarray, ...]
    head_maps: np.ndarray
    scaling: str
    value_range: tuple[float, float]
    head_scaling: str
    head_ranges: tuple[tuple[float, float], ...]

    def fields(self) -> dict[str, Any]:
        """These maps as the Explanation fields of the same names (explain() builds them, redraw() replaces them)."""
        return {field.name: getattr(self, field.name) for field in dataclass_fields(self)}


def _draw(
    attentions: Sequence[np.ndarray],
    gradients: Sequence[np.ndarray],
    picture: Image.Image,
    model_input: Image.Image,
    grid: tuple[int, int],
    prefix: int,
    *,
    method: str,
    head_fusion: str,
    discard_ratio: float,
    layer: int | None,
    head: int | None,
    scaling: str | None,
    alpha: float,
    cmap: str,
) -> _Maps:
    """The map, the overlay on `picture`, the layer strip and the head maps, from one pass's attention weights.

    scaling None divides rollout maps by their max, as the rollout recipe does, and stretches raw attention and the
    per-head maps min to max (raw attention is often nearly flat, which divided by its max is one solid colour).
    """
    layers = _as_layers(attentions)
    num_layers = len(layers)
    map_scaling = scaling or ("minmax" if method == "attention" else "max")
    head_scaling = scaling or "minmax"
    chosen_layer = layer if layer is not None else num_layers  # 1-based; 0 is out of range, not 'the last'
    # One running product serves both the strip and, for rollout, the map itself. The strip keeps rollout's
    # own scaling (max) unless a scaling is asked for, so its last tile is the rollout map.
    layer_rows = [_cls_row(joint, prefix, grid) for joint in _rollout_steps(layers, head_fusion, discard_ratio)]
    if method == "rollout":
        raw_map = layer_rows[_check_layer_count(layer, num_layers) - 1]
    elif method == "grad_rollout":
        raw_map = _cls_row(_grad_relevance(layers, gradients, layer), prefix, grid)
    else:
        raw_map = _cls_row(_layer_weights(layers, chosen_layer, head, head_fusion), prefix, grid)
    heatmap = scale_map(raw_map, map_scaling)
    _check_layer_count(chosen_layer, num_layers)
    head_rows = [_cls_row(weights, prefix, grid) for weights in layers[chosen_layer - 1]]
    return _Maps(
        heatmap=heatmap,
        overlay=overlay(picture, heatmap, alpha=alpha, cmap=cmap),
        layer_maps=tuple(scale_map(row, scaling or "max") for row in layer_rows),
        head_maps=np.stack([scale_map(row, head_scaling) for row in head_rows]),
        scaling=map_scaling,
        value_range=_value_range(raw_map),
        head_scaling=head_scaling,
        head_ranges=tuple(_value_range(row) for row in head_rows),
    )


def _value_range(heatmap: np.ndarray) -> tuple[float, float]:
    return float(heatmap.min()), float(heatmap.max())


def attention_shape(model: str) -> AttentionShape | None:
    """How many layers and heads a ViT-family model has, from its config alone (no weights, no forward pass),
    so a front end can bound its layer and head sliders. Only what is on this machine is read: None when the
    config is not here yet (a Hub model before its first use) or the model has no single count of layers and heads
    (a CNN, Swin's stages); explain() then names the range itself."""
    config = _local_config(model)
    num_layers = getattr(config, "num_hidden_layers", None)
    num_heads = getattr(config, "num_attention_heads", None)
    if not (_is_count(num_layers) and _is_count(num_heads)):
        return None
    return AttentionShape(num_layers=num_layers, num_heads=num_heads)


def _local_config(model: str) -> Any:
    """The model's config as transformers reads it, from this machine only; None when it cannot be read."""
    try:
        return AutoConfig.from_pretrained(
            _resolve_name(model), local_files_only=True, trust_remote_code=current_settings().trust_remote_code
        )
    except Exception:  # not downloaded yet, not a model folder, no or a broken config: unknown, not an error
        return None


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class _ForwardPass:
    """What one forward (and, for gradient rollout, one backward) pass gives."""

    attentions: tuple[np.ndarray, ...]  # float32 (heads, tokens, tokens), one per layer
    gradients: tuple[np.ndarray, ...]  # the same, for gradient rollout; empty otherwise
    scores: np.ndarray | None
    labels: list[str] | None
    target_label: str | None
    grid_size: tuple[int, int]
    num_prefix_tokens: int
    model_input: Image.Image


def _forward(loaded: LoadedModel, picture: Image.Image, method: str, target: int | str | None) -> _ForwardPass:
    pixel_values = preprocess(loaded, [picture])
    labels = label_names(loaded.model.config) if _is_classifier(loaded.model) else None
    extra = size_kwargs(loaded, pixel_values)
    target_label = gradients = None
    if method == "grad_rollout":
        if labels is None:
            raise ValueError(
                f"'{loaded.name}' has no classifier head, so there is no class to explain; "
                "use rollout or raw attention."
            )
        pixel_values = pixel_values.detach().requires_grad_(True)  # parameters are frozen; grads flow from the input
        with torch.enable_grad():
            outputs = loaded.model(pixel_values=pixel_values, output_attentions=True, **extra)
            attentions = _check_attentions(loaded, outputs, pixel_values)
            target_index = _target_index(target, outputs.logits[0], labels)
            gradients = torch.autograd.grad(outputs.logits[0, target_index], attentions)
        target_label = labels[target_index]
    else:
        with torch.inference_mode():
            outputs = loaded.model(pixel_values=pixel_values, output_attentions=True, **extra)
        attentions = _check_attentions(loaded, outputs, pixel_values)
    scores = None
    if labels is not None:
        scores = scores_from_logits(outputs.logits.detach().float(), loaded.model.config)[0].cpu().numpy()
    grid_size = _grid_size(loaded, pixel_values)
    tokens = attentions[0].shape[-1]
    return _ForwardPass(
        attentions=_kept(attentions),
        gradients=_kept(gradients) if gradients is not None else (),
        scores=scores,
        labels=labels,
        target_label=target_label,
        grid_size=grid_size,
        num_prefix_tokens=tokens - grid_size[0] * grid_size[1],
        model_input=model_input_image(pixel_values, loaded.processor),
    )


def _kept(tensors: Sequence[torch.Tensor]) -> tuple[np.ndarray, ...]:
    """One float32 (heads, tokens, tokens) array per layer, to keep on the Explanation. float32 holds float32,
    float16 and bfloat16 weights exactly, so maps drawn from these equal maps drawn from the tensors."""
    return tuple(tensor.detach()[0].float().cpu().numpy() for tensor in tensors)


def _is_classifier(model) -> bool:
    return type(model).__name__.endswith(("ForImageClassification", "ForImageClassificationWithTeacher"))


def _check_attentions(loaded: LoadedModel, outputs, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    attentions = getattr(outputs, "attentions", None)
    config_name = type(loaded.model.config).__name__
    if not attentions:
        raise NoAttentionError(
            f"'{loaded.name}' ({config_name}) is a convolutional network: it has no attention to show. "
            "Its Classify tab still works; pick a ViT-family model here (ViT, DeiT, BEiT, DINO)."
        )
    grid_h, grid_w = _grid_size(loaded, pixel_values)
    tokens = attentions[0].shape[-1]
    if attentions[0].ndim != 4 or not 1 <= tokens - grid_h * grid_w <= 16:
        raise NoAttentionError(
            f"'{loaded.name}' ({config_name}) attends within local windows, not from a CLS token across the whole "
            "image, so rollout does not apply. Pick a ViT-family model (ViT, DeiT, BEiT, DINO)."
        )
    return attentions


def _grid_size(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[int, int]:
    """Patch rows and columns from the actual input size and the model's patch size (never assumed 14x14)."""
    patch = getattr(loaded.model.config, "patch_size", None)
    if patch is None:
        raise NoAttentionError(
            f"'{loaded.name}' ({type(loaded.model.config).__name__}) has no patches: it is not a Vision Transformer. "
            "Its Classify tab still works; pick a ViT-family model here (ViT, DeiT, BEiT, DINO)."
        )
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else tuple(patch)
    height, width = pixel_values.shape[-2:]
    return height // patch_h, width // patch_w


def _target_index(target: int | str | None, logits: torch.Tensor, labels: list[str]) -> int:
    if target is None or target == "":
        return int(logits.argmax())
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if 0 <= target < len(labels):
            return int(target)
        raise ValueError(f"Class index {target} is out of range: this model has classes 0 to {len(labels) - 1}.")
    if isinstance(target, str) and target in labels:
        return labels.index(target)
    raise ValueError(f"'{target}' is not one of this model's labels (e.g. {', '.join(labels[:3])}).")


def model_input_image(pixel_values: torch.Tensor, processor) -> Image.Image:
    """Undo the image processor's normalisation, so the user sees exactly the pixels the model saw."""
    mean = np.asarray(getattr(processor, "image_mean", None) or [0.5, 0.5, 0.5], dtype=np.float64)
    std = np.asarray(getattr(processor, "image_std", None) or [0.5, 0.5, 0.5], dtype=np.float64)
    pixels = pixel_values.detach()[0].float().cpu().numpy().transpose(1, 2, 0)
    if getattr(processor, "do_normalize", True):
        pixels = pixels * std + mean
    return Image.fromarray(np.clip(pixels * 255, 0, 255).round().astype(np.uint8))


# --- features -----------------------------------------------------------------------------------------


@gpu_work(preload=preload_explainable_for)
def features(
    images: ImageInput | list[ImageInput],
    model: str = DEFAULT_CLASSIFIER,
    layer: int = -1,
    *,
    final_norm: bool = False,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> Features | list[Features]:
    """The CLS embedding and patch embeddings after a layer (1..L, or -1 for the last; 0 = the embeddings);
    each result's `run` times its own image. `final_norm` passes the last layer's tokens through the model's final
    layernorm, as DINO and DINOv2 read their features (hidden_states stop before it); other layers are unchanged."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise ValueError(f"Layer {layer!r} is not a layer number: use 0 (embeddings) to the last, or -1 for the last.")
    single = not isinstance(images, (list, tuple))
    pictures = load_images(images)
    loaded = load_explainable(model, device=device, precision=precision, on_load=on_load)
    results = []
    for picture in pictures:
        started = time.perf_counter()
        pixel_values = preprocess(loaded, [picture])
        grid_h, grid_w = _grid_size(loaded, pixel_values)
        with torch.inference_mode():
            outputs = loaded.model(
                pixel_values=pixel_values, output_hidden_states=True, **size_kwargs(loaded, pixel_values)
            )
        hidden_states = outputs.hidden_states
        num_layers = len(hidden_states) - 1
        index = num_layers if layer == -1 else int(layer)
        if not 0 <= index <= num_layers:
            raise ValueError(f"Layer {layer} is out of range: use 0 (embeddings) to {num_layers}, or -1 for the last.")
        chosen = hidden_states[index]
        final_layernorm = getattr(loaded.model.base_model, "layernorm", None)
        if final_norm and index == num_layers and final_layernorm is not None:
            with torch.inference_mode():
                chosen = final_layernorm(chosen)
        tokens = chosen[0].float().cpu().numpy()
        if tokens.ndim != 2 or not 1 <= tokens.shape[0] - grid_h * grid_w <= 16:
            raise NoAttentionError(
                f"'{loaded.name}' ({type(loaded.model.config).__name__}) does not keep one token per patch plus a "
                "CLS token, so it has no CLS and patch embeddings to export. Pick a ViT-family model."
            )
        prefix = tokens.shape[0] - grid_h * grid_w
        results.append(
            Features(
                cls=tokens[0],
                patches=tokens[prefix:].reshape(grid_h, grid_w, -1),
                layer=index,
                model=loaded.name,
                run=run_since(loaded, started),
            )
        )
    return results[0] if single else results
