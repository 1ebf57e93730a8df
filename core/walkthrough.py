"""A ViT step by step on one photo: patches, embeddings, positions, one layer, the CLS token, the head."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .attention import (
    _check_attentions,
    _check_head,
    _check_layer_count,
    _grid_size,
    _is_classifier,
    model_input_image,
    preload_explainable_for,
)
from .classify import label_names, preprocess, scores_from_logits, size_kwargs
from .gpu import gpu_work
from .images import ImageInput, load_image
from .models import LoadedModel, load_explainable
from .settings import DEFAULT_CLASSIFIER
from .types import OnLoad, Prediction, RunInfo, run_since

WALKTHROUGH_TOP_K = 5


@dataclass(frozen=True, eq=False)
class PatchStep:
    """Step 1: the model's input cut into its patch grid."""

    model_input: Image.Image  # the resized pixels the model saw
    grid_size: tuple[int, int]  # patch rows, columns
    patch_size: tuple[int, int]  # pixels per patch: height, width
    channels: int  # 3 for RGB: each patch is patch_h * patch_w * channels numbers

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def values_per_patch(self) -> int:
        return self.patch_size[0] * self.patch_size[1] * self.channels


@dataclass(frozen=True, eq=False)
class EmbeddingStep:
    """Step 2: the linear embedding, one vector per patch (the patch projection's output, before positions)."""

    patch_embeddings: np.ndarray  # float32 (num_patches, hidden), patches in reading order (row by row)


@dataclass(frozen=True, eq=False)
class PositionStep:
    """Step 3: the position embeddings added to the tokens, and how alike they are (the ViT paper's figure 7)."""

    position_embeddings: np.ndarray  # float32 (tokens, hidden) as added, prefix tokens first (interpolated if resized)
    # Cosine similarity of each patch position's embedding with every other patch position's:
    # similarity[r, c] is a (grid_h, grid_w) map for the patch in row r, column c; similarity[r, c, r, c] is 1.
    similarity: np.ndarray  # float32 (grid_h, grid_w, grid_h, grid_w)


@dataclass(frozen=True, eq=False)
class LayerStep:
    """Step 4: one encoder layer. Its attention mixes the tokens, its MLP works on each token alone; each adds an
    update to the tokens (the residual stream): tokens_out = tokens_in + attention_update + mlp_update."""

    layer: int  # 1-based
    head: int  # 1-based
    attention: np.ndarray  # float32 (heads, tokens, tokens): row i is where token i attends, each row sums to 1
    cls_attention: np.ndarray  # float32 (grid_h, grid_w): the chosen head's CLS row over the patches, raw weights
    tokens_in: np.ndarray  # float32 (tokens, hidden): the tokens entering the layer
    attention_update: np.ndarray  # float32 (tokens, hidden): what attention adds to each token
    mlp_update: np.ndarray  # float32 (tokens, hidden): what the MLP adds to each token after that
    tokens_out: np.ndarray  # float32 (tokens, hidden): the tokens leaving the layer

    @property
    def head_attention(self) -> np.ndarray:
        """The chosen head's (tokens, tokens) attention matrix."""
        return self.attention[self.head - 1]

    @property
    def input_norms(self) -> np.ndarray:
        return np.linalg.norm(self.tokens_in, axis=-1)

    @property
    def attention_norms(self) -> np.ndarray:
        """How much attention changes each token: the length of its update, one number per token."""
        return np.linalg.norm(self.attention_update, axis=-1)

    @property
    def mlp_norms(self) -> np.ndarray:
        return np.linalg.norm(self.mlp_update, axis=-1)


@dataclass(frozen=True, eq=False)
class ClsStep:
    """Step 5: the CLS token after the last layer, before and after the final layernorm."""

    before_norm: np.ndarray  # float32 (hidden,)
    vector: np.ndarray  # float32 (hidden,): what the head reads
    distillation: np.ndarray | None  # DeiT-distilled: the distillation token after the layernorm (its head reads it)


@dataclass(frozen=True, eq=False)
class HeadStep:
    """Step 6: the classifier head's logits and the probabilities they give."""

    logits: np.ndarray  # float32 (num_labels,)
    probabilities: np.ndarray  # float32 (num_labels,): softmax of the logits (sigmoid for a multi-label head)
    labels: tuple[str, ...]  # by class index
    activation: str  # "softmax" or "sigmoid"
    top: tuple[Prediction, ...]  # best first
    top_indices: tuple[int, ...]  # the class index of each of `top`
    heads_averaged: int  # 2 for DeiT-distilled (a CLS head and a distillation head, averaged), else 1

    @property
    def top_logits(self) -> tuple[float, ...]:
        return tuple(float(self.logits[index]) for index in self.top_indices)


@dataclass(frozen=True, eq=False)
class Walkthrough:
    """One photo through a ViT, step by step, from one forward pass."""

    model: str
    num_prefix_tokens: int  # 1 (CLS) for ViT, 2 (CLS, distillation) for DeiT-distilled
    num_layers: int
    num_heads: int
    hidden_size: int
    patches: PatchStep
    embedding: EmbeddingStep
    position: PositionStep
    layer: LayerStep
    cls: ClsStep
    head: HeadStep | None  # None for a backbone without a classifier head (e.g. DINO)
    run: RunInfo

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.patches.grid_size

    @property
    def num_tokens(self) -> int:
        return self.patches.num_patches + self.num_prefix_tokens


@dataclass(frozen=True)
class _Parts:
    """The modules of a plain ViT layout that the walk-through reads from."""

    embeddings: Any
    layers: Any
    final_norm: Any


@gpu_work(preload=preload_explainable_for)
def walkthrough(
    image: ImageInput,
    model: str = DEFAULT_CLASSIFIER,
    *,
    layer: int | None = None,
    head: int = 1,
    top_k: int = WALKTHROUGH_TOP_K,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> Walkthrough:
    """Every step of a ViT on one photo, with its real numbers: one forward pass (hidden states, attentions, and
    forward hooks for what the patch projection, the chosen layer's attention and MLP, and the final layernorm give).

    layer: 1-based, default the last; head: 1-based, the head whose attention step 4 shows. Works on models laid
    out as ViT (ViT, DeiT, DeiT-distilled, DINO); anything else is a ValueError that names what to pick instead.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a whole number of at least 1, not {top_k!r}.")
    picture = load_image(image)
    loaded = load_explainable(model, device=device, precision=precision, on_load=on_load)
    parts = _parts(loaded)
    num_layers = len(parts.layers)
    chosen_layer = _check_layer_count(layer, num_layers)
    num_heads = int(loaded.model.config.num_attention_heads)
    _check_head(head, num_heads)
    started = time.perf_counter()
    pixel_values = preprocess(loaded, [picture])
    grid = _grid_size(loaded, pixel_values)
    captured: dict[str, Any] = {}
    hooks = [
        parts.embeddings.patch_embeddings.register_forward_hook(_keep(captured, "patch_embeddings")),
        parts.layers[chosen_layer - 1].attention.register_forward_hook(_keep(captured, "attention_update")),
        parts.layers[chosen_layer - 1].mlp.register_forward_hook(_keep(captured, "mlp_update")),
        parts.final_norm.register_forward_hook(_keep(captured, "final")),
    ]
    try:
        with torch.inference_mode():
            outputs = loaded.model(
                pixel_values=pixel_values,
                output_attentions=True,
                output_hidden_states=True,
                **size_kwargs(loaded, pixel_values),
            )
    finally:
        for hook in hooks:
            hook.remove()
    attentions = _check_attentions(loaded, outputs, pixel_values)
    hidden_states = outputs.hidden_states
    tokens = int(attentions[0].shape[-1])
    prefix = tokens - grid[0] * grid[1]
    attention = _array(attentions[chosen_layer - 1])
    final = _array(captured["final"])
    patch_size = _patch_size(loaded.model.config)
    return Walkthrough(
        model=loaded.name,
        num_prefix_tokens=prefix,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_size=int(final.shape[-1]),
        patches=PatchStep(
            model_input=model_input_image(pixel_values, loaded.processor),
            grid_size=grid,
            patch_size=patch_size,
            channels=int(pixel_values.shape[1]),
        ),
        embedding=EmbeddingStep(patch_embeddings=_array(captured["patch_embeddings"])),
        position=_position_step(parts.embeddings, tokens, grid, prefix, pixel_values),
        layer=LayerStep(
            layer=chosen_layer,
            head=head,
            attention=attention,
            cls_attention=attention[head - 1, 0, prefix:].reshape(grid),
            tokens_in=_array(hidden_states[chosen_layer - 1]),
            attention_update=_array(captured["attention_update"]),
            mlp_update=_array(captured["mlp_update"]),
            tokens_out=_array(hidden_states[chosen_layer]),
        ),
        cls=ClsStep(
            before_norm=_array(hidden_states[-1])[0],
            vector=final[0],
            distillation=final[1] if _is_distilled(loaded.model) else None,
        ),
        head=_head_step(loaded, outputs, top_k) if _is_classifier(loaded.model) else None,
        run=run_since(loaded, started),
    )


def _parts(loaded: LoadedModel) -> _Parts:
    """The embeddings (with absolute position embeddings), the layers (each with attention and an MLP) and the final
    layernorm of a plain ViT; a ValueError naming what to pick for any other layout."""
    base = getattr(loaded.model, "base_model", loaded.model)
    embeddings = getattr(base, "embeddings", None)
    layers = getattr(base, "layers", None)
    if layers is None:
        layers = getattr(getattr(base, "encoder", None), "layer", None)
    final_norm = getattr(base, "layernorm", None)
    positions = getattr(embeddings, "position_embeddings", None)
    plain = (
        isinstance(positions, torch.nn.Parameter)
        and positions.ndim == 3
        and hasattr(embeddings, "patch_embeddings")
        and layers is not None
        and len(layers) > 0
        and all(hasattr(layer, "attention") and hasattr(layer, "mlp") for layer in layers)
        and isinstance(final_norm, torch.nn.Module)
    )
    if not plain:
        config_name = type(loaded.model.config).__name__
        raise ValueError(
            f"'{loaded.name}' ({config_name}) is not laid out as a plain Vision Transformer (patch embeddings, learned "
            "position embeddings, layers of attention and MLP), so it cannot be walked through step by step. "
            "Pick a ViT or DeiT model, e.g. google/vit-base-patch16-224 or facebook/deit-base-distilled-patch16-224."
        )
    return _Parts(embeddings=embeddings, layers=layers, final_norm=final_norm)


def _keep(captured: dict[str, Any], name: str):
    """A forward hook that keeps a module's output (the first element when it returns a tuple) under `name`."""

    def hook(_module, _inputs, output):
        captured[name] = output[0] if isinstance(output, tuple) else output

    return hook


def _array(tensor: torch.Tensor) -> np.ndarray:
    """The first (only) image's values as float32 (which holds fp32, fp16 and bf16 values exactly)."""
    return tensor.detach()[0].float().cpu().numpy()


def _patch_size(config) -> tuple[int, int]:
    patch = config.patch_size
    return (patch, patch) if isinstance(patch, int) else (int(patch[0]), int(patch[1]))


def _position_step(
    embeddings, tokens: int, grid: tuple[int, int], prefix: int, pixel_values: torch.Tensor
) -> PositionStep:
    """The position embeddings as the forward pass added them (interpolated to the grid when the input size is not
    the one the model was trained at), and their patch-by-patch cosine similarity."""
    with torch.inference_mode():
        parameter = embeddings.position_embeddings
        if parameter.shape[1] == tokens:
            positions = parameter
        else:
            height, width = pixel_values.shape[-2:]
            placeholder = torch.zeros(1, tokens, parameter.shape[-1], dtype=parameter.dtype, device=parameter.device)
            positions = embeddings.interpolate_pos_encoding(placeholder, height, width)
    added = _array(positions)
    return PositionStep(position_embeddings=added, similarity=cosine_similarity_grid(added[prefix:], grid))


def cosine_similarity_grid(vectors: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Each of the grid's vectors (one per patch, in reading order) against every other one, by cosine similarity:
    (grid_h, grid_w, grid_h, grid_w). A zero vector is similar to nothing (0), never NaN."""
    rows = np.asarray(vectors, dtype=np.float64)
    lengths = np.linalg.norm(rows, axis=-1, keepdims=True)
    unit = np.divide(rows, lengths, out=np.zeros_like(rows), where=lengths > 0)
    similarity = np.clip(unit @ unit.T, -1.0, 1.0)
    return similarity.astype(np.float32).reshape(*grid, *grid)


def _is_distilled(model) -> bool:
    return type(model).__name__.endswith("WithTeacher")


def _head_step(loaded: LoadedModel, outputs, top_k: int) -> HeadStep:
    logits = outputs.logits.detach().float()
    probabilities = scores_from_logits(logits, loaded.model.config)[0].cpu().numpy()
    labels = tuple(label_names(loaded.model.config))
    count = min(top_k, len(labels))
    # The order classify() gives: by score, best first, ties by class index.
    order = tuple(int(index) for index in np.argsort(-probabilities, kind="stable")[:count])
    multi_label = getattr(loaded.model.config, "problem_type", None) == "multi_label_classification"
    return HeadStep(
        logits=logits[0].cpu().numpy(),
        probabilities=probabilities,
        labels=labels,
        activation="sigmoid" if multi_label else "softmax",
        top=tuple(Prediction(label=labels[index], score=float(probabilities[index])) for index in order),
        top_indices=order,
        heads_averaged=2 if _is_distilled(loaded.model) else 1,
    )
