"""The Inside tab as both front ends show it: each idea's plain introduction with its paper, and the weights warning."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from core import (
    DEFAULT_FEATURE_MODEL,
    DEFAULT_MAE,
    MAX_MASK_RATIO,
    FeaturePCA,
    MaeReconstruction,
    MergePoint,
    MergeResult,
    overlay,
)
from ui.shared.widgets import Slider

INSIDE_TITLE = "Inside"
INSIDE_INTRO = (
    "Three ideas from past plain ViTs, each on your own photo: a ViT that learns by filling in hidden patches, "
    "features learnt without labels, and a ViT that gets faster by merging tokens as it goes deeper."
)

MAE_TITLE = "Masked autoencoding"
MAE_PAPER = "https://arxiv.org/abs/2111.06377"
MAE_INTRO = (
    "A masked autoencoder hides most of the patches (three in four by default) and learns to paint them back from "
    "the few it sees. The encoder only ever reads the visible patches, which makes pretraining cheap, and what it "
    "learns transfers to other tasks. He et al., 2021: "
    f"[Masked Autoencoders Are Scalable Vision Learners]({MAE_PAPER})."
)

FEATURES_TITLE = "Self-supervised features"
DINO_PAPER = "https://arxiv.org/abs/2104.14294"
DINOV2_PAPER = "https://arxiv.org/abs/2304.07193"
FEATURES_INTRO = (
    "DINO and DINOv2 learn patch features with no labels at all, by matching a student to a teacher across crops. "
    "Squeeze each patch's features to three numbers (PCA) and show them as colours: patches of the same part of an "
    "object get the same colour, and the first component alone separates object from background. Click a patch to "
    f"see which others the model thinks are alike. Caron et al., 2021: [DINO]({DINO_PAPER}); Oquab et al., 2023: "
    f"[DINOv2]({DINOV2_PAPER})."
)

MERGING_TITLE = "Token merging"
TOME_PAPER = "https://arxiv.org/abs/2210.09461"
MERGING_INTRO = (
    "A ViT spends the same work on every patch, sky or face. Token merging (ToMe) pairs up the most alike tokens "
    "after each layer's attention and averages r of them away, so deeper layers read fewer tokens and the model runs "
    f"faster, with no retraining. Bolya et al., 2023: [Token Merging: Your ViT But Faster]({TOME_PAPER})."
)

RANDOM_WEIGHTS_NOTE = (
    "This model's weights are not ones we recognise as trained (a local folder that is not a training run): if they "
    "are random, the pictures show the machinery working, not what a trained model has learnt."
)


def weights_note(model: str) -> str:
    """RANDOM_WEIGHTS_NOTE for a local folder that is neither a finished training run nor a downloaded Hub snapshot,
    else ''. A Hub id is taken as trained: that is what people publish."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return ""
    trained_here = (folder / "all_results.json").is_file() or (folder / "events.jsonl").is_file()
    from_the_hub = "snapshots" in folder.parts  # a folder inside the Hugging Face cache
    return "" if trained_here or from_the_hub else RANDOM_WEIGHTS_NOTE


# ---- widgets: model suggestions and slider ranges (both front ends) -------------------------------------------

MAE_MODELS: tuple[str, ...] = (DEFAULT_MAE, "facebook/vit-mae-large", "facebook/vit-mae-huge")
SUPERVISED_FEATURE_MODEL = "google/vit-base-patch16-224"  # the labelled-training comparison beside DINOv2
FEATURE_MODELS: tuple[str, ...] = (
    DEFAULT_FEATURE_MODEL,
    "facebook/dinov2-base",
    "facebook/dino-vits16",
    "facebook/dino-vitb16",
    SUPERVISED_FEATURE_MODEL,
)
MASK_RATIO = Slider(0.0, MAX_MASK_RATIO, 0.75, 0.05, "Mask ratio", "the share of patches hidden (the paper hides 75%)")
SEED = Slider(0, 1000, 0, 1, "Seed", "which patches the ratio hides: the same seed hides the same ones")
# 0 stands for the last layer (what the model's head reads); the engine's 0 (the embeddings) is not offered.
FEATURE_LAYER = Slider(0, 24, 0, 1, "Layer (0 = last)", "the features after this layer")
BACKGROUND_THRESHOLD = Slider(
    0.0, 1.0, 0.5, 0.05, "Background threshold", "patches below it on the first component are background (black)"
)
MERGE_R = Slider(0, 16, 8, 1, "r: tokens merged per layer", "0 = the model as it is")
CURVE_RS: tuple[int, ...] = (0, 2, 4, 8, 12, 16)

MAE_BUTTON = "Hide and reconstruct"
FEATURES_BUTTON = "Show the features"
MERGING_BUTTON = "Merge tokens"
CURVE_BUTTON = "Measure the curve"
CLICK_MODE_LABEL = "Mask what I click"
CLICK_MODE_INFO = "click patches of the masked picture to hide or show them; your clicks replace the mask ratio"
HIDDEN_LABEL = "Patches to hide (numbers, row by row from 0 at the top left; empty = use the mask ratio)"
CLEAR_BUTTON = "Clear my clicks"
MAE_PICTURE_TITLES: tuple[str, ...] = (
    "Photo",
    "What the encoder sees",
    "Reconstruction",
    "Visible patches pasted back",
)
ERROR_TITLE = "Per-patch error (brighter = worse)"
SIMILARITY_WAITING = "Click a patch on either picture to see which patches each model finds alike."
CURVE_COLUMNS: tuple[str, ...] = ("r", "top-1 agreement", "images/s", "tokens left")
CURVE_INTRO = (
    "**How much speed for how much agreement?** Measure it: every r from 0 to 16 on the example photos, timed on "
    "this machine, and how often the merged model's top label is still the full model's."
)


def feature_layer_value(slider_value: float) -> int:
    """The engine's layer for the slider's value: 0 on the slider is the last layer (-1)."""
    return int(slider_value) or -1


# ---- masked autoencoding ---------------------------------------------------------------------------------------


def mae_loss_line(result: MaeReconstruction) -> str:
    """What was hidden and the model's own loss on it, in one sentence."""
    rows, columns = result.grid_size
    total = rows * columns
    hidden = len(result.hidden_patches)
    shown = f"{hidden} of {total} patches hidden ({result.mask_ratio:.0%}, a {rows}x{columns} grid)"
    if math.isnan(result.loss):
        return f"{shown}: with nothing hidden there is nothing to paint back, so no loss."
    return (
        f"{shown}. Loss on the hidden patches: **{result.loss:.3f}** (mean squared error per pixel, in the space the "
        "model was trained in)."
    )


def error_picture(result: MaeReconstruction, alpha: float = 0.55, cmap: str = "inferno") -> Image.Image:
    """The per-patch error over the photo, scaled to the worst patch (an all-zero map stays dark)."""
    errors = np.nan_to_num(np.asarray(result.error_map, dtype=np.float64))
    top = float(errors.max()) if errors.size else 0.0
    scaled = errors / top if top > 0 else np.zeros_like(errors)
    blocky = np.kron(scaled, np.ones((8, 8)))  # patches as flat squares, not a blur across their edges
    return overlay(result.original, blocky, alpha=alpha, cmap=cmap)


def patch_number_at(x: float, y: float, image_size: tuple[int, int], grid_size: tuple[int, int]) -> int:
    """The number (row by row from 0 at the top left, as `hidden` takes it) of the patch under pixel (x, y) of a
    picture of `image_size` (width, height)."""
    row, col = patch_at_fraction(x / max(image_size[0], 1), y / max(image_size[1], 1), grid_size)
    return row * grid_size[1] + col


def patch_at_fraction(fx: float, fy: float, grid_size: tuple[int, int]) -> tuple[int, int]:
    """The 0-based (row, col) of the patch at (fx, fy), fractions of the width and height: the same place on grids
    of any size, so one click picks matching patches for two models."""
    rows, columns = grid_size
    row = min(max(int(fy * rows), 0), rows - 1)
    col = min(max(int(fx * columns), 0), columns - 1)
    return row, col


def toggled(patches: Sequence[int], number: int) -> tuple[int, ...]:
    """The patch numbers with `number` added, or taken out when it was there; sorted."""
    chosen = set(patches)
    chosen.symmetric_difference_update({number})
    return tuple(sorted(chosen))


def parse_patch_numbers(text: str | None) -> tuple[int, ...] | None:
    """Typed or clicked patch numbers ("3, 7 12") as a tuple; None when empty (then the mask ratio applies)."""
    pieces = (text or "").replace(",", " ").split()
    if not pieces:
        return None
    numbers = []
    for piece in pieces:
        if not piece.isdigit():
            raise ValueError(
                f"'{piece}' is not a patch number: give whole numbers from 0 (row by row from the top left), "
                "separated by commas, or leave the box empty to use the mask ratio."
            )
        numbers.append(int(piece))
    return tuple(sorted(set(numbers)))


def patch_numbers_text(patches: Sequence[int]) -> str:
    return ", ".join(str(number) for number in patches)


# ---- self-supervised features ----------------------------------------------------------------------------------


def explained_variance_line(pca: FeaturePCA) -> str:
    """Which model and layer, how much of the variance the three colours hold, and how much is foreground."""
    shares = [f"{ratio:.0%}" for ratio in pca.explained_variance_ratio]
    foreground = int(np.count_nonzero(pca.foreground))
    total = pca.grid_size[0] * pca.grid_size[1]
    return (
        f"`{pca.model}`, layer {pca.layer}: red, green and blue hold {', '.join(shares[:-1])} and {shares[-1]} of the "
        f"variance; {foreground} of {total} patches are foreground."
    )


def similarity_picture(
    pca: FeaturePCA, similarity: np.ndarray, row: int, col: int, alpha: float = 0.6, cmap: str = "viridis"
) -> Image.Image:
    """A patch-similarity map over the model's input, negative similarity shown as none, the chosen patch outlined."""
    values = np.clip(np.asarray(similarity, dtype=np.float64), 0.0, 1.0)
    blocky = np.kron(values, np.ones((8, 8)))
    picture = overlay(pca.model_input, blocky, alpha=alpha, cmap=cmap)
    return outlined(picture, [(row, col)], pca.grid_size)


def outlined(
    picture: Image.Image, patches: Sequence[tuple[int, int]], grid_size: tuple[int, int], colour=(255, 40, 40)
) -> Image.Image:
    """A copy of the picture with the given 0-based (row, col) patches outlined."""
    drawn = picture.convert("RGB").copy()
    draw = ImageDraw.Draw(drawn)
    rows, columns = grid_size
    width, height = drawn.size
    line = max(2, round(min(width, height) / 112))
    for row, col in patches:
        box = (col * width / columns, row * height / rows, (col + 1) * width / columns, (row + 1) * height / rows)
        draw.rectangle([round(v) for v in box], outline=colour, width=line)
    return drawn


def similarity_line(picks: Sequence[tuple[str, tuple[int, int], tuple[int, int]]]) -> str:
    """Which patch was picked on each model's grid, 1-based as people count: (model, (row, col), grid_size) each."""
    parts = [f"`{model}`: row {row + 1}, column {col + 1} of {grid[0]}x{grid[1]}" for model, (row, col), grid in picks]
    return "Brighter = more alike (cosine similarity; negative shown as none). " + "; ".join(parts) + "."


# ---- token merging ---------------------------------------------------------------------------------------------


def merge_pictures(result: MergeResult, every: int = 1, size: int = 224) -> list[tuple[Image.Image, str]]:
    """One picture per layer (every `every`-th, the last always): each merged token's patches filled with their
    mean colour in the photo, white lines between tokens; with a caption naming the layer and its token count.
    `result` is a core MergeResult."""
    photo = result.model_input.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    layers = len(result.source_maps)
    picked = sorted({*range(every - 1, layers, max(every, 1)), layers - 1}) if layers else []
    pictures = []
    for index in picked:
        groups = np.asarray(result.source_maps[index])
        caption = f"Layer {index + 1}: {result.tokens_per_layer[index]} tokens"
        pictures.append((group_picture(photo, groups), caption))
    return pictures


def group_picture(photo: Image.Image, groups: np.ndarray) -> Image.Image:
    """The photo with each group of patches (same number in `groups`, a (grid_h, grid_w) array) painted its mean
    colour and outlined where it meets another group."""
    rows, columns = groups.shape
    pixels = np.asarray(photo.convert("RGB"), dtype=np.float64)
    height, width = pixels.shape[:2]
    # Each patch's mean colour, then each group's mean over its patches (ToMe's own figures paint merges so).
    ys = np.linspace(0, height, rows + 1).round().astype(int)
    xs = np.linspace(0, width, columns + 1).round().astype(int)
    patch_means = np.array(
        [
            [pixels[ys[r] : ys[r + 1], xs[c] : xs[c + 1]].reshape(-1, 3).mean(axis=0) for c in range(columns)]
            for r in range(rows)
        ]
    )
    flat_groups = groups.reshape(-1)
    labels, inverse = np.unique(flat_groups, return_inverse=True)
    sums = np.zeros((len(labels), 3))
    np.add.at(sums, inverse, patch_means.reshape(-1, 3))
    counts = np.bincount(inverse, minlength=len(labels))[:, None]
    coloured = (sums / counts)[inverse].reshape(rows, columns, 3)
    painted = np.zeros_like(pixels)
    for r in range(rows):
        for c in range(columns):
            painted[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = coloured[r, c]
    picture = Image.fromarray(painted.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for r in range(rows):
        for c in range(columns):
            if c + 1 < columns and groups[r, c] != groups[r, c + 1]:
                draw.line([(xs[c + 1], ys[r]), (xs[c + 1], ys[r + 1])], fill=(255, 255, 255), width=1)
            if r + 1 < rows and groups[r, c] != groups[r + 1, c]:
                draw.line([(xs[c], ys[r + 1]), (xs[c + 1], ys[r + 1])], fill=(255, 255, 255), width=1)
    return picture


def tokens_line(result: MergeResult) -> str:
    """Tokens left after each layer, and what share of them the last layer still reads. `result`: a MergeResult."""
    counts = [result.tokens_before, *result.tokens_per_layer]
    kept = counts[-1] / counts[0] if counts[0] else 1.0
    return (
        f"Tokens after each layer (r = {result.r}, prefix tokens included): {' → '.join(str(n) for n in counts)}. "
        f"The last layer reads {kept:.0%} of the tokens the first one read."
    )


def agreement_line(result: MergeResult) -> str:
    """Whether merging changed the top label. `result`: a MergeResult."""
    merged, full = result.predictions[0].label, result.full_predictions[0].label
    if merged == full:
        return f"Merged and full model agree on the top label: **{full}**."
    return f"Merging changed the top label: **{merged}** instead of **{full}**."


def predictions_scores(predictions: Sequence[Any]) -> dict[str, float]:
    """Predictions as {label: score}, best first."""
    return {prediction.label: float(prediction.score) for prediction in predictions}


def curve_rows(points: Sequence[MergePoint]) -> list[list]:
    """The measured curve as table rows under CURVE_COLUMNS. `points`: core MergePoints."""
    return [
        [point.r, f"{point.top1_agreement:.0%}", f"{point.images_per_s:.1f}", point.tokens_left] for point in points
    ]


def curve_line(points: Sequence[MergePoint], images: int) -> str:
    """The curve in one sentence: the largest r and the speed-up and agreement it got, over how many photos."""
    if not points:
        return ""
    base = next((point for point in points if point.r == 0), points[0])
    last = max(points, key=lambda point: point.r)
    speedup = last.images_per_s / base.images_per_s if base.images_per_s > 0 else float("nan")
    return (
        f"Over {images} photos: r = {last.r} runs {speedup:.2f}x the speed of r = {base.r}, and agrees with the full "
        f"model's top label on {last.top1_agreement:.0%} of them."
    )


def curve_figure(points: Sequence[MergePoint]):
    """Top-1 agreement (left axis) and images/s (right axis) over r, as a matplotlib Figure. `points`: MergePoints."""
    from matplotlib.figure import Figure

    rs = [point.r for point in points]
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    left = figure.add_subplot()
    left.plot(rs, [100 * point.top1_agreement for point in points], "o-", color="tab:blue", label="top-1 agreement")
    left.set_xlabel("r (tokens merged per layer)")
    left.set_ylabel("top-1 agreement with r = 0 (%)", color="tab:blue")
    left.set_ylim(-5, 105)
    left.grid(alpha=0.3)
    right = left.twinx()
    right.plot(rs, [point.images_per_s for point in points], "s--", color="tab:orange", label="images/s")
    right.set_ylabel("images/s (measured)", color="tab:orange")
    right.set_ylim(bottom=0)
    left.set_xticks(rs)
    return figure


def enlarged(picture: Image.Image, min_side: int = 224) -> Image.Image:
    """A small model-input picture blown up by a whole factor (nearest neighbour, so patches stay sharp squares) to
    at least `min_side` pixels on its short side, so a 32-pixel input is still seen and clicked; larger ones as is."""
    scale = max(1, -(-min_side // max(1, min(picture.size))))
    if scale == 1:
        return picture
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
