"""Small frozen result types that the engine returns and the front ends display."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


@dataclass(frozen=True)
class RunInfo:
    """What an engine call ran on: the model (as resolved), the device, the dtype, and how long the computation took."""

    model: str  # the resolved name: a hub id or an absolute folder path
    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # "float32", "bfloat16", "float16"
    # From the model being ready to the results: the model's work and, in batch calls, reading the files after the
    # first batch; never loading the model (a first use may download it) nor reading what came before it.
    milliseconds: float


# Engine calls take these as keyword-only options. on_load hears the model's name just before a model that is not in
# memory is loaded (it may download); on_run hears, once the computation is done, what it ran on.
OnLoad = Optional[Callable[[str], None]]
OnRun = Optional[Callable[[RunInfo], None]]


def run_since(loaded: Any, started: float) -> RunInfo:
    """The RunInfo of a computation on `loaded` (anything with name, device and dtype, as the engine's loaders
    return) that began at time.perf_counter() `started`."""
    return RunInfo(
        model=loaded.name,
        device=device_name(loaded.device),
        dtype=str(loaded.dtype).removeprefix("torch."),
        milliseconds=(time.perf_counter() - started) * 1000,
    )


def device_name(device: Any) -> str:
    """A torch device as text, with the GPU's number: torch.device("cuda") means the current one."""
    if device.type == "cuda" and device.index is None:
        import torch

        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


@dataclass(frozen=True)
class Prediction:
    """One label and the model's confidence in it, in [0, 1]."""

    label: str
    score: float


@dataclass(frozen=True)
class FileResult:
    """One row of a batch run: a file's predictions, or why it could not be read."""

    name: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class FileCaptions:
    """One row of a batch captioning run: a file's captions (several when asked for), or why it could not be read."""

    name: str
    captions: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, eq=False)
class Explanation:
    """Where a model looked, for one image: the map, the overlay and what the model predicted."""

    heatmap: "np.ndarray"  # (grid_h, grid_w) in [0, 1], max 1 (all zero only when nothing survives); see `scaling`
    overlay: "Image.Image"  # the heatmap blended over the image, at the image's size
    predictions: tuple[Prediction, ...]  # empty for a backbone without a classifier head
    method: str
    model: str
    grid_size: tuple[int, int]
    num_prefix_tokens: int
    num_layers: int
    num_heads: int
    target: str | None  # the class a gradient map explains
    layer_maps: tuple["np.ndarray", ...]  # rollout after each layer, first to last
    head_maps: "np.ndarray"  # (heads, grid_h, grid_w): CLS attention of each head of the chosen layer
    model_input: "Image.Image"  # the resized pixels the model saw
    run: RunInfo
    # How the maps became [0, 1]: "max" divides by the maximum (rollout's recipe); "minmax" also moves the minimum
    # to 0, so a nearly flat map still shows where it is higher.
    scaling: str = "max"
    value_range: tuple[float, float] = (0.0, 1.0)  # the heatmap's raw minimum and maximum, before scaling
    head_scaling: str = "max"
    head_ranges: tuple[tuple[float, float], ...] = ()  # each head map's raw minimum and maximum, before scaling
    # What redraw() needs to draw the maps again with other settings, without the model: the pass's attention
    # weights, one float32 (heads, tokens, tokens) array per layer; the gradients of `gradient_target`'s score with
    # respect to them (kept only when gradient rollout ran: they cost a backward pass); and the photo as given.
    attentions: tuple["np.ndarray", ...] = ()
    gradients: tuple["np.ndarray", ...] = ()
    gradient_target: str | None = None
    picture: "Image.Image | None" = None


@dataclass(frozen=True)
class AttentionShape:
    """How many layers (and heads per layer) a model's attention maps can be asked for, read from its config."""

    num_layers: int
    num_heads: int  # 0 when the layers' head count is not one number (a captioner's decoder: heads are averaged)


@dataclass(frozen=True, eq=False)
class Features:
    """A ViT as a feature extractor: the CLS embedding and the patch embeddings after one layer."""

    cls: "np.ndarray"  # (hidden,)
    patches: "np.ndarray"  # (grid_h, grid_w, hidden)
    layer: int
    model: str
    run: RunInfo


@dataclass(frozen=True, eq=False)
class CaptionAttention:
    """Where each word of a caption came from: the decoder's cross-attention from that token to the patches."""

    caption: str
    tokens: tuple[str, ...]  # the caption's tokens as text, in order (special tokens left out)
    maps: "np.ndarray"  # (tokens, grid_h, grid_w), each in [0, 1] with max 1
    grid_size: tuple[int, int]
    model_input: "Image.Image"  # the resized pixels the encoder saw
    model: str
    run: RunInfo


@dataclass(frozen=True, eq=False)
class LabelMap:
    """Where a zero-shot label is in an image: CLIP's gradient-weighted rollout for that label."""

    label: str
    heatmap: "np.ndarray"  # (grid_h, grid_w) in [0, 1], max 1
    overlay: "Image.Image"  # the heatmap over the image, at the image's size
    predictions: tuple[Prediction, ...]  # every label, best first, scores summing to 1
    grid_size: tuple[int, int]
    model: str
    run: RunInfo


@dataclass(frozen=True, eq=False)
class PatchAttention:
    """One patch token in one layer: where it attends (its row of the attention matrix) and what attends to it (its
    column), over the patch grid, with the patch outlined on both overlays. Rows and columns count from 1 at the top
    left, as layers and heads do."""

    row: int
    col: int
    token_index: int  # its place in the token sequence, 0 being CLS: num_prefix_tokens + (row - 1) * grid_w + col - 1
    layer: int  # 1-based
    head: int | None  # 1-based; None when the heads were fused
    head_fusion: str | None  # how the heads were fused; None when one head is shown
    attends_to: "np.ndarray"  # (grid_h, grid_w): the raw weight this patch gives each patch (its row; sums to 1 with
    # to_prefix)
    attended_by: "np.ndarray"  # (grid_h, grid_w): the raw weight each patch gives this one (its column)
    to_prefix: tuple[float, ...]  # the weight it gives CLS (first) and any other prefix token (DeiT's distillation)
    from_prefix: tuple[float, ...]  # the weight CLS (first) and any other prefix token give it
    attends_to_overlay: "Image.Image"  # attends_to, scaled by `scaling`, over the photo; the patch outlined
    attended_by_overlay: "Image.Image"
    attends_to_range: tuple[float, float]  # attends_to's raw minimum and maximum
    attended_by_range: tuple[float, float]
    scaling: str  # how the overlays' maps became [0, 1]: "max" or "minmax"
    grid_size: tuple[int, int]
    num_prefix_tokens: int

    @property
    def to_self(self) -> float:
        """The weight the patch gives itself."""
        return float(self.attends_to[self.row - 1, self.col - 1])

    @property
    def to_cls(self) -> float:
        return self.to_prefix[0]

    @property
    def from_cls(self) -> float:
        return self.from_prefix[0]
