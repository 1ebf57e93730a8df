"""What self-supervised features see: a PCA of a ViT's patch features as colours, and patch-to-patch similarity."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .attention import features, model_input_image, preload_explainable_for
from .classify import preprocess
from .gpu import gpu_work
from .images import ImageInput, load_image
from .models import load_explainable
from .types import Features, OnLoad, RunInfo, run_since

# DINOv2's own feature demo: a small backbone trained without labels, whose first component finds the object.
DEFAULT_FEATURE_MODEL = "facebook/dinov2-small"
# On the first component min-max scaled to [0, 1]; patches below it are background. DINOv2's demos cut near the
# middle of the first component's range.
DEFAULT_BACKGROUND_THRESHOLD = 0.5
PCA_COMPONENTS = 3  # one per colour channel


@dataclass(frozen=True, eq=False)
class PrincipalComponents:
    """A PCA of N vectors: each vector's coordinates on the leading axes, and the share of the variance each holds."""

    projections: np.ndarray  # (N, k) float64: the centred vectors projected on the axes
    axes: np.ndarray  # (k, D) float64: unit vectors, the largest variance first
    variance_ratios: np.ndarray  # (k,) each axis's share of the total variance, descending, summing to at most 1


@dataclass(frozen=True, eq=False)
class FeaturePCA:
    """A ViT's patch features squeezed to three principal components and shown as colours (DINOv2's figure 1).

    With a background threshold, the first component of a PCA over all patches separates object from background;
    a second PCA over the foreground patches alone gives the colours, so they spend their range on the object.
    """

    rgb: np.ndarray  # (grid_h, grid_w, 3) float64 in [0, 1]: components 1-3 as red, green, blue; background black
    picture: Image.Image  # rgb upsampled to the model input's size, nearest neighbour so each patch stays a square
    overlay: Image.Image  # the colours blended over the model input on the foreground, the photo itself elsewhere
    foreground: np.ndarray  # (grid_h, grid_w) bool; all True when background_threshold is None
    first_component: np.ndarray  # (grid_h, grid_w) in [0, 1]: the all-patch PCA's first component, min-max scaled
    explained_variance_ratio: tuple[float, ...]  # of the three coloured components, in the PCA they come from
    background_threshold: float | None
    features: Features  # the pass's features, so patch_similarity answers a click without another forward pass
    model_input: Image.Image  # the pixels the model saw, after its processor's resize and crop
    layer: int  # the layer the features are from (0 = the embeddings)
    grid_size: tuple[int, int]
    model: str
    run: RunInfo


# --- pure parts on feature arrays ----------------------------------------------------------------------------------


def principal_components(
    vectors: np.ndarray, count: int = PCA_COMPONENTS, *, centre: np.ndarray | None = None
) -> PrincipalComponents:
    """PCA of the rows of `vectors` (N, D), centred, by SVD; `count` components (zeros past the rank).

    Signs are made deterministic, since SVD's are arbitrary: each component is flipped so that its mean over the
    `centre` rows (a boolean mask, e.g. the patches in the middle of the image, where the object usually is) is
    positive; when no centre is given, or that mean is zero, so that the axis's largest-magnitude loading is
    positive. With the centre rule, the object tends to come out high on the first component.
    """
    data = np.asarray(vectors, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"PCA needs a non-empty (vectors, dimensions) array, not shape {data.shape}.")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a whole number of components, at least 1, not {count!r}.")
    if not np.all(np.isfinite(data)):
        raise ValueError("The features hold NaN or infinite values; try precision fp32.")
    centred = data - data.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    variances = singular**2
    total = float(variances.sum())
    # Directions holding less than this are rounding noise (past the rank, or vectors that are all the same): they
    # stay zero rather than have their noise stretched into a full colour range.
    noise = max(total * 1e-12, float(np.abs(data).max()) ** 2 * 1e-24 * data.size)
    kept = int(min(count, axes.shape[0], np.count_nonzero(variances > noise)))
    full_axes = np.zeros((count, data.shape[1]))
    ratios = np.zeros(count)
    full_axes[:kept] = axes[:kept]
    ratios[:kept] = variances[:kept] / total if kept else 0.0
    projections = centred @ full_axes.T
    for index in range(count):
        if _flip(projections[:, index], full_axes[index], centre):
            projections[:, index] *= -1
            full_axes[index] *= -1
    return PrincipalComponents(projections=projections, axes=full_axes, variance_ratios=ratios)


def _flip(projection: np.ndarray, axis: np.ndarray, centre: np.ndarray | None) -> bool:
    """Whether a component's sign should be turned round (see principal_components)."""
    if centre is not None:
        mask = np.asarray(centre, dtype=bool)
        if mask.shape != projection.shape:
            raise ValueError(f"centre must be a boolean mask of {projection.shape[0]} rows, not shape {mask.shape}.")
        if mask.any():
            mean = float(projection[mask].mean())
            if abs(mean) > 1e-9 * (float(np.abs(projection).max()) + 1e-300):
                return mean < 0
    if not axis.any():
        return False
    return bool(axis[np.argmax(np.abs(axis))] < 0)


def centre_mask(grid_size: tuple[int, int]) -> np.ndarray:
    """The middle half of the rows and of the columns of a patch grid (at least one each), as a flat bool mask."""
    rows, columns = grid_size
    mask = np.zeros((rows, columns), dtype=bool)
    top, left = rows // 4, columns // 4
    mask[top : max(rows - top, top + 1), left : max(columns - left, left + 1)] = True
    return mask.reshape(-1)


def min_max(values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Values stretched so that their minimum (over `where`, default all) is 0 and maximum is 1, clipped to [0, 1];
    values with no spread become 0."""
    values = np.asarray(values, dtype=np.float64)
    chosen = values if where is None else values[np.asarray(where, dtype=bool)]
    if chosen.size == 0:
        return np.zeros_like(values)
    low, high = float(chosen.min()), float(chosen.max())
    if high - low <= 1e-12 * max(abs(high), abs(low), 1e-300):
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def foreground_mask(first_component: np.ndarray, threshold: float | None) -> np.ndarray:
    """Patches whose first component, min-max scaled to [0, 1], is at least `threshold`; all of them when the
    threshold is None or the component is flat (nothing to tell apart)."""
    first = np.asarray(first_component, dtype=np.float64)
    check_background_threshold(threshold)
    if threshold is None or float(first.max() - first.min()) <= 1e-12 * max(float(np.abs(first).max()), 1e-300):
        return np.ones(first.shape, dtype=bool)
    return np.asarray(min_max(first) >= threshold)


def check_background_threshold(threshold: float | None) -> None:
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not 0 <= threshold <= 1:
        raise ValueError(
            f"background_threshold must be between 0 and 1 (on the first component scaled to [0, 1]), or None to "
            f"keep every patch, not {threshold!r}."
        )


def components_rgb(projections: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Three components (N, 3) as colours in [0, 1]: each channel min-max scaled over the `mask` rows (default
    all); rows outside the mask are black."""
    projections = np.asarray(projections, dtype=np.float64)
    if projections.ndim != 2 or projections.shape[1] != 3:
        raise ValueError(f"Colours need three components per patch, (patches, 3), not shape {projections.shape}.")
    keep = np.ones(projections.shape[0], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    rgb = np.stack([min_max(projections[:, channel], keep) for channel in range(3)], axis=1)
    rgb[~keep] = 0.0
    return rgb


@dataclass(frozen=True, eq=False)
class PatchColours:
    """What the pure PCA recipe gives for a patch grid (feature_pca adds the pictures and the model's details)."""

    rgb: np.ndarray  # (grid_h, grid_w, 3) in [0, 1]
    foreground: np.ndarray  # (grid_h, grid_w) bool
    first_component: np.ndarray  # (grid_h, grid_w) in [0, 1]
    variance_ratios: np.ndarray  # (3,)


def pca_colours(patches: np.ndarray, background_threshold: float | None = DEFAULT_BACKGROUND_THRESHOLD) -> PatchColours:
    """The DINOv2 recipe on a (grid_h, grid_w, hidden) array: PCA over all patches; with a threshold, the first
    component splits foreground from background and a second PCA over the foreground patches gives the colours."""
    grid = np.asarray(patches, dtype=np.float64)
    if grid.ndim != 3:
        raise ValueError(f"patches must be a (grid_h, grid_w, hidden) array, not shape {grid.shape}.")
    check_background_threshold(background_threshold)
    rows, columns, hidden = grid.shape
    vectors = grid.reshape(rows * columns, hidden)
    centre = centre_mask((rows, columns))
    everything = principal_components(vectors, centre=centre)
    first = everything.projections[:, 0]
    foreground = foreground_mask(first, background_threshold)
    coloured = everything
    if not foreground.all() and foreground.sum() >= 2:
        coloured = principal_components(vectors[foreground], centre=centre[foreground])
        projections = np.zeros((vectors.shape[0], PCA_COMPONENTS))
        projections[foreground] = coloured.projections
    else:
        projections = coloured.projections
    return PatchColours(
        rgb=components_rgb(projections, foreground).reshape(rows, columns, 3),
        foreground=foreground.reshape(rows, columns),
        first_component=min_max(first).reshape(rows, columns),
        variance_ratios=coloured.variance_ratios,
    )


def patch_similarity(features: Features, row: int, col: int) -> np.ndarray:
    """Cosine similarity of every patch's features to the patch at (row, col), 0-based: (grid_h, grid_w) in
    [-1, 1], 1 at that patch. Pure: a click costs no forward pass. A zero vector is similar to nothing (0)."""
    patches = np.asarray(features.patches, dtype=np.float64)
    if patches.ndim != 3:
        raise ValueError(f"features.patches must be (grid_h, grid_w, hidden), not shape {patches.shape}.")
    rows, columns, _ = patches.shape
    for name, value, size in (("row", row, rows), ("col", col, columns)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
            raise ValueError(f"Patch {name} {value!r} is out of range: this grid has {name}s 0 to {size - 1}.")
    norms = np.linalg.norm(patches, axis=-1)
    unit = np.divide(patches, norms[..., None], out=np.zeros_like(patches), where=norms[..., None] > 0)
    similarity = unit @ unit[row, col]
    if norms[row, col] > 0:
        similarity[row, col] = 1.0  # exactly, not 1 - rounding
    return np.clip(similarity, -1.0, 1.0)


def colour_picture(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A (grid_h, grid_w, 3) [0, 1] array as an RGB picture of `size` (width, height), each patch a flat block."""
    pixels = (np.clip(np.asarray(rgb, dtype=np.float64), 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST)


def colour_overlay(
    model_input: Image.Image, rgb: np.ndarray, foreground: np.ndarray, alpha: float = 0.6
) -> Image.Image:
    """The colours blended over the picture (opacity `alpha`) on the foreground patches; the picture as it is on
    the background, so the object's parts stand out in place."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha (opacity) must be between 0 and 1, not {alpha!r}.")
    picture = model_input.convert("RGB")
    colours = colour_picture(rgb, picture.size)
    mask = np.asarray(foreground, dtype=np.uint8) * round(alpha * 255)
    return Image.composite(colours, picture, Image.fromarray(mask).resize(picture.size, Image.Resampling.NEAREST))


# --- the model side -----------------------------------------------------------------------------------------------


@gpu_work(preload=preload_explainable_for)
def feature_pca(
    image: ImageInput,
    model: str = DEFAULT_FEATURE_MODEL,
    *,
    layer: int = -1,
    background_threshold: float | None = DEFAULT_BACKGROUND_THRESHOLD,
    alpha: float = 0.6,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> FeaturePCA:
    """One forward pass of any ViT-family model (DINO, DINOv2 with or without registers, ViT, DeiT, BEiT...):
    the patch features after `layer` (1..L, -1 for the last, normalised as the model's head reads them; 0 = the
    embeddings) as PCA colours, with the
    background removed by thresholding the first component (None keeps every patch). `alpha` is the overlay's
    opacity. `on_load` hears the model's name before a load that may download; the result's `run` says what ran."""
    check_background_threshold(background_threshold)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha (opacity) must be between 0 and 1, not {alpha!r}.")
    picture = load_image(image)
    loaded = load_explainable(model, device=device, precision=precision, on_load=on_load)
    started = time.perf_counter()
    # The last layer's tokens after the final layernorm, as DINOv2 reads them: before it, a few high-norm tokens can
    # take the first component.
    extracted = features(picture, model=model, layer=layer, final_norm=True, device=device, precision=precision)
    assert isinstance(extracted, Features)  # one image in, one result out
    model_input = model_input_image(preprocess(loaded, [picture]), loaded.processor)
    colours = pca_colours(extracted.patches, background_threshold)
    grid_h, grid_w = colours.foreground.shape
    return FeaturePCA(
        rgb=colours.rgb,
        picture=colour_picture(colours.rgb, model_input.size),
        overlay=colour_overlay(model_input, colours.rgb, colours.foreground, alpha),
        foreground=colours.foreground,
        first_component=colours.first_component,
        explained_variance_ratio=tuple(float(ratio) for ratio in colours.variance_ratios),
        background_threshold=background_threshold,
        features=extracted,
        model_input=model_input,
        layer=extracted.layer,
        grid_size=(grid_h, grid_w),
        model=loaded.name,
        run=run_since(loaded, started),
    )
