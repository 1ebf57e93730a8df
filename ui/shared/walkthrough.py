"""The Step-by-step view for both front ends: each step's picture (matplotlib, drawn off screen) and its sentence."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from PIL import Image

from core import Walkthrough, attention_shape, overlay, patch_grid_image
from ui.shared.widgets import Slider, fitted

WALKTHROUGH_TITLE = "Step by step"
WALKTHROUGH_INTRO = """
Follow one photo through a Vision Transformer, one step at a time, with the model's **real numbers** for this
photo: the patches, their embedding, the position embeddings, one layer's attention and MLP, the CLS token and the
head's scores ([Dosovitskiy et al., 2020](https://arxiv.org/abs/2010.11929); the style of
[CNN Explainer](https://poloclub.github.io/cnn-explainer/)). Pick a layer and a head for step 4.
"""
WALKTHROUGH_BUTTON = "Walk through"
WALKTHROUGH_WAITING = "Pick a photo and press **Walk through**: each step appears here with this photo's numbers."

WALK_LAYER = Slider(1, 24, 1, 1, "Layer (step 4)", "the layer whose attention and MLP step 4 shows")
WALK_HEAD = Slider(1, 16, 1, 1, "Head (step 4)", "the attention head step 4 shows")

# The steps, in the order the page shows them: key -> title. Both front ends draw one picture and one sentence each.
STEP_TITLES: dict[str, str] = {
    "patches": "1. The patches",
    "embedding": "2. The linear embedding",
    "position": "3. Position embeddings",
    "attention": "4a. One layer: attention",
    "mlp": "4b. The same layer: the MLP",
    "cls": "5. The CLS token",
    "head": "6. The head: logits and probabilities",
}

EMBEDDING_PATCHES = 8  # rows of the embedding heatmap (the first patches)
EMBEDDING_DIMS = 8  # columns: the first numbers of each patch's vector
CLS_VALUES = 16  # bars in the CLS picture
FIGURE_DPI = 110
FONT_SIZE = 12  # at FIGURE_DPI and at most ~6.4 inches wide, still readable scaled to a phone's width


def walk_sliders(model: str) -> tuple[Slider, Slider]:
    """The layer and head sliders fitted to the model (read from its config); the layer starts at the last one,
    where the CLS token's attention has gathered onto what decides the class."""
    shape = attention_shape(model)
    if shape is None:
        return WALK_LAYER, WALK_HEAD
    layer = fitted(WALK_LAYER, shape.num_layers)
    return replace(layer, default=shape.num_layers), fitted(WALK_HEAD, shape.num_heads)


# ---- sentences ----------------------------------------------------------------------------------------------


def step_sentences(walk: Walkthrough) -> dict[str, str]:
    """One sentence (Markdown) per step, with this photo's numbers."""
    return {
        "patches": _patches_sentence(walk),
        "embedding": _embedding_sentence(walk),
        "position": _position_sentence(walk),
        "attention": _attention_sentence(walk),
        "mlp": _mlp_sentence(walk),
        "cls": _cls_sentence(walk),
        "head": _head_sentence(walk),
    }


def _prefix_words(walk: Walkthrough) -> str:
    prefix = walk.num_prefix_tokens
    return {1: "the CLS token", 2: "a CLS token and a distillation token"}.get(
        prefix, f"{prefix} extra tokens (CLS, registers)"
    )


def _patches_sentence(walk: Walkthrough) -> str:
    patches = walk.patches
    width, height = patches.model_input.size
    rows, columns = patches.grid_size
    patch_h, patch_w = patches.patch_size
    return (
        f"The model sees a {width}×{height} version of the photo, cut into a {rows}×{columns} grid of "
        f"{patch_w}×{patch_h}-pixel patches: {patches.num_patches} patches of {patch_w}×{patch_h}×{patches.channels} "
        f"= {patches.values_per_patch} numbers each. With {_prefix_words(walk)}, that is {walk.num_tokens} tokens."
    )


def _numbers(values: np.ndarray, count: int = 4) -> str:
    shown = ", ".join(f"{value:.2f}" for value in values[:count])
    return f"[{shown}, …]" if len(values) > count else f"[{shown}]"


def _embedding_sentence(walk: Walkthrough) -> str:
    embeddings = walk.embedding.patch_embeddings
    first = embeddings[0]
    shown = min(EMBEDDING_PATCHES, embeddings.shape[0])
    return (
        f"One linear layer, the same for every patch, turns each patch's {walk.patches.values_per_patch} numbers into "
        f"{walk.hidden_size} numbers. Patch 1 (top left) becomes {_numbers(first)}; the picture shows the first "
        f"{min(EMBEDDING_DIMS, walk.hidden_size)} of the {walk.hidden_size} numbers of the first {shown} patches."
    )


def _position_sentence(walk: Walkthrough) -> str:
    similarity = walk.position.similarity
    rows, columns = walk.grid_size
    neighbour, where = ((0, 1), "its right-hand neighbour's") if columns > 1 else ((1, 0), "the one below's")
    near = similarity[0, 0, neighbour[0], neighbour[1]]
    far = similarity[0, 0, rows - 1, columns - 1]
    return (
        f"Each position has a learned vector of {walk.hidden_size} numbers, added to its patch's embedding: it is all "
        f"the model knows of where a patch sits. Patch 1's position vector has cosine similarity {near:.2f} with "
        f"{where} and {far:.2f} with the far corner's. Each small square is one position compared with all "
        f"{rows * columns} (with itself: 1.00); in a trained model nearby positions look alike."
    )


def _attention_sentence(walk: Walkthrough) -> str:
    layer = walk.layer
    cls_map = layer.cls_attention
    row, column = np.unravel_index(int(np.argmax(cls_map)), cls_map.shape)
    to_prefix = float(layer.head_attention[0, : walk.num_prefix_tokens].sum())
    itself = "itself" if walk.num_prefix_tokens == 1 else f"the {walk.num_prefix_tokens} tokens before the patches"
    return (
        f"In layer {layer.layer} of {walk.num_layers}, head {layer.head} of {walk.num_heads}: the CLS token gives "
        f"{cls_map.max():.3f} of its attention to its favourite patch (row {row + 1}, column {column + 1}), "
        f"{cls_map.min():.3f} to its least favourite, and {to_prefix:.3f} to {itself}. "
        f"Each row of the {walk.num_tokens}×{walk.num_tokens} matrix is one token's attention and sums to 1."
    )


def _mlp_sentence(walk: Walkthrough) -> str:
    layer = walk.layer
    return (
        f"Attention and then the MLP each add an update to every token (the residual stream). In layer {layer.layer} "
        f"the CLS token enters with length {layer.input_norms[0]:.2f}; attention adds an update of length "
        f"{layer.attention_norms[0]:.2f} and the MLP, which works on each token alone, {layer.mlp_norms[0]:.2f}. "
        f"Over all {walk.num_tokens} tokens the updates average {layer.attention_norms.mean():.2f} (attention) and "
        f"{layer.mlp_norms.mean():.2f} (MLP)."
    )


def _cls_sentence(walk: Walkthrough) -> str:
    cls = walk.cls
    distillation = (
        f" The distillation token, which DeiT's second head reads, ends as {_numbers(cls.distillation)}."
        if cls.distillation is not None
        else ""
    )
    return (
        f"After all {walk.num_layers} layers and a final layernorm, the CLS token is {walk.hidden_size} numbers: "
        f"{_numbers(cls.vector, 6)}. The layernorm rescales it from length {np.linalg.norm(cls.before_norm):.2f} to "
        f"{np.linalg.norm(cls.vector):.2f}.{distillation}"
    )


def _head_sentence(walk: Walkthrough) -> str:
    head = walk.head
    if head is None:
        return (
            "This model has no classifier head (a backbone such as DINO): its CLS token above is its output, "
            "for other models to use."
        )
    classes = len(head.labels)
    reads = (
        "DeiT averages two heads, one reading the CLS token and one the distillation token"
        if head.heads_averaged == 2
        else "The head multiplies the CLS token by a matrix and adds a bias"
    )
    ranked = "; ".join(
        f"**{prediction.label}** logit {logit:.2f} → {prediction.score:.1%}"
        for prediction, logit in zip(head.top[:3], head.top_logits[:3])
    )
    return (
        f"{reads}: {classes} logits, one per class, and a {head.activation} turns them into probabilities "
        f"that sum to {head.probabilities.sum():.2f}. Top: {ranked}."
    )


# ---- pictures -----------------------------------------------------------------------------------------------


def step_pictures(walk: Walkthrough) -> dict[str, Image.Image]:
    """One picture per step, keys as STEP_TITLES (no "head" picture for a model without a classifier head)."""
    pictures = {
        "patches": patch_grid_image(walk.patches.model_input, walk.grid_size, min_side=320),
        "embedding": embedding_picture(walk),
        "position": position_picture(walk),
        "attention": attention_picture(walk),
        "mlp": mlp_picture(walk),
        "cls": cls_picture(walk),
    }
    if walk.head is not None:
        pictures["head"] = head_picture(walk)
    return pictures


def _figure(width: float, height: float):
    """A matplotlib Figure not tied to pyplot (so threads can draw at once), in the page's type size."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=FIGURE_DPI, layout="constrained")
    return figure


def _image(figure) -> Image.Image:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, facecolor="white")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def embedding_picture(walk: Walkthrough) -> Image.Image:
    """The first numbers of the first patches' embeddings, as a heatmap with the values written in."""
    values = walk.embedding.patch_embeddings[:EMBEDDING_PATCHES, :EMBEDDING_DIMS]
    rows, columns = values.shape
    figure = _figure(5.6, 0.48 * rows + 1.3)
    axes = figure.add_subplot()
    limit = float(np.abs(values).max()) or 1.0
    axes.imshow(values, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=FONT_SIZE - 1)
    axes.set_xticks(range(columns), [str(index + 1) for index in range(columns)], fontsize=FONT_SIZE)
    axes.set_yticks(range(rows), [f"patch {index + 1}" for index in range(rows)], fontsize=FONT_SIZE)
    axes.set_xlabel(f"number in the patch's vector (first {columns} of {walk.hidden_size})", fontsize=FONT_SIZE)
    axes.xaxis.set_label_position("top")
    axes.xaxis.tick_top()
    return _image(figure)


def similarity_mosaic(similarity: np.ndarray) -> np.ndarray:
    """The ViT paper's figure 7 as one array: a (grid_h, grid_w) tile per position, tiles apart by one NaN line."""
    rows, columns = similarity.shape[:2]
    mosaic = np.full((rows * (rows + 1) - 1, columns * (columns + 1) - 1), np.nan, dtype=np.float32)
    for row in range(rows):
        for column in range(columns):
            top, left = row * (rows + 1), column * (columns + 1)
            mosaic[top : top + rows, left : left + columns] = similarity[row, column]
    return mosaic


def position_picture(walk: Walkthrough) -> Image.Image:
    rows, columns = walk.grid_size
    figure = _figure(5.6, 4.8 * rows / columns + 0.4)
    axes = figure.add_subplot()
    mosaic = similarity_mosaic(walk.position.similarity)
    image = axes.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel("input patch column", fontsize=FONT_SIZE)
    axes.set_ylabel("input patch row", fontsize=FONT_SIZE)
    colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colorbar.set_label("cosine similarity", fontsize=FONT_SIZE)
    return _image(figure)


def attention_picture(walk: Walkthrough) -> Image.Image:
    """Left: the chosen head's CLS attention over the model input; right: that head's whole attention matrix."""
    layer = walk.layer
    cls_map = layer.cls_attention
    spread = float(cls_map.max() - cls_map.min())
    scaled = (cls_map - cls_map.min()) / spread if spread > 0 else np.zeros_like(cls_map)
    over = overlay(walk.patches.model_input.resize((224, 224)), scaled, alpha=0.55, cmap="inferno")
    figure = _figure(6.0, 3.4)
    left, right = figure.subplots(1, 2)
    left.imshow(over)
    left.set_title(f"CLS → patches, head {layer.head}", fontsize=FONT_SIZE)
    left.axis("off")
    matrix = right.imshow(layer.head_attention, cmap="viridis", vmin=0, interpolation="nearest")
    right.set_title(f"layer {layer.layer}, head {layer.head}: all tokens", fontsize=FONT_SIZE)
    right.set_xlabel("attends to (token)", fontsize=FONT_SIZE - 1)
    right.set_ylabel("token (0 = CLS)", fontsize=FONT_SIZE - 1)
    right.tick_params(labelsize=FONT_SIZE - 2)
    _whole_number_ticks(right.xaxis, right.yaxis)
    figure.colorbar(matrix, ax=right, shrink=0.8).ax.tick_params(labelsize=FONT_SIZE - 2)
    return _image(figure)


def mlp_picture(walk: Walkthrough) -> Image.Image:
    """Per token: the length of the token entering the layer and of the attention and MLP updates added to it."""
    layer = walk.layer
    tokens = np.arange(walk.num_tokens)
    figure = _figure(6.0, 4.0)
    axes = figure.add_subplot()
    axes.plot(tokens, layer.input_norms, color="0.6", linestyle="--", label="token entering the layer")
    axes.plot(tokens, layer.attention_norms, color="tab:blue", marker="o", markersize=3, label="attention update")
    axes.plot(tokens, layer.mlp_norms, color="tab:orange", marker="o", markersize=3, label="MLP update")
    axes.axvspan(-0.5, walk.num_prefix_tokens - 0.5, color="tab:green", alpha=0.15, label=_prefix_label(walk))
    axes.set_xlabel("token (0 = CLS, then the patches)", fontsize=FONT_SIZE)
    axes.set_ylabel("length (L2 norm)", fontsize=FONT_SIZE)
    axes.set_title(f"layer {layer.layer}: how much each token changes", fontsize=FONT_SIZE)
    axes.tick_params(labelsize=FONT_SIZE - 1)
    axes.set_ylim(bottom=0)
    _whole_number_ticks(axes.xaxis)
    figure.legend(fontsize=FONT_SIZE - 2, loc="outside lower center", ncols=2, frameon=False)
    return _image(figure)


def _whole_number_ticks(*axes) -> None:
    """Token numbers are whole: no 2.5 on an axis of tokens."""
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.set_major_locator(MaxNLocator(nbins=5, integer=True))


def _prefix_label(walk: Walkthrough) -> str:
    return "CLS" if walk.num_prefix_tokens == 1 else "CLS + distillation"


def cls_picture(walk: Walkthrough) -> Image.Image:
    """The first numbers of the CLS token before and after the final layernorm."""
    count = min(CLS_VALUES, walk.hidden_size)
    positions = np.arange(count)
    figure = _figure(6.0, 3.6)
    axes = figure.add_subplot()
    axes.bar(positions - 0.2, walk.cls.before_norm[:count], width=0.4, color="0.7", label="before the layernorm")
    axes.bar(
        positions + 0.2, walk.cls.vector[:count], width=0.4, color="tab:purple", label="after: what the head reads"
    )
    axes.axhline(0, color="0.3", linewidth=0.8)
    axes.set_xticks(positions[::2], [str(index + 1) for index in positions[::2]], fontsize=FONT_SIZE - 1)
    axes.set_xlabel(f"number in the CLS vector (first {count} of {walk.hidden_size})", fontsize=FONT_SIZE)
    axes.tick_params(axis="y", labelsize=FONT_SIZE - 1)
    figure.legend(fontsize=FONT_SIZE - 2, loc="outside lower center", ncols=2, frameon=False)
    return _image(figure)


def head_picture(walk: Walkthrough) -> Image.Image:
    """The top classes' probabilities as bars, each with its logit and probability written beside it."""
    head = walk.head
    assert head is not None
    labels = [prediction.label for prediction in head.top][::-1]
    scores = [prediction.score for prediction in head.top][::-1]
    logits = list(head.top_logits)[::-1]
    figure = _figure(6.0, 0.5 * len(labels) + 1.1)
    axes = figure.add_subplot()
    bars = axes.barh(range(len(labels)), scores, color="tab:blue")
    axes.set_yticks(range(len(labels)), [_short(label) for label in labels], fontsize=FONT_SIZE)
    axes.set_xlim(0, 1.45)
    axes.set_xticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=FONT_SIZE - 1)
    axes.set_xlabel(f"{head.activation} probability", fontsize=FONT_SIZE)
    for bar, score, logit in zip(bars, scores, logits):
        axes.text(
            bar.get_width() + 0.02,
            bar.get_y() + bar.get_height() / 2,
            f"logit {logit:.2f} → {score:.1%}",
            va="center",
            fontsize=FONT_SIZE - 1,
        )
    axes.spines[["top", "right"]].set_visible(False)
    return _image(figure)


def _short(label: str, length: int = 22) -> str:
    return label if len(label) <= length else label[: length - 1] + "…"
