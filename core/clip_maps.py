"""CLIP image towers with their attention probabilities kept in the autograd graph, for gradient label maps."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, cast

import torch

from .attention import NoAttentionError

if TYPE_CHECKING:
    from .zero_shot import LoadedClip

_PICK_VIT = "pick a ViT CLIP such as ViT-B-32, ViT-B-16 or openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class TowerPass:
    """One forward pass of a CLIP image tower: the image embeddings (not normalised) and, per block, the
    attention probabilities the block used, (heads, tokens, tokens) or (1, heads, tokens, tokens), still in
    the graph so they can be differentiated; the patch grid; one CLS token before the patches."""

    features: torch.Tensor
    probabilities: list[torch.Tensor]
    grid_size: tuple[int, int]


def image_tower_pass(loaded: "LoadedClip", pixels: torch.Tensor) -> TowerPass:
    """Run one image (pixels of shape (1, 3, H, W)) through the tower with grad enabled for the caller."""
    if pixels.shape[0] != 1:
        raise ValueError(f"A label map is for one image at a time, not a batch of {pixels.shape[0]}.")
    if loaded.backend == "transformers":
        return _transformers_pass(loaded, pixels)
    blocks = check_open_clip_tower(loaded)
    with recording_attention(blocks) as probabilities:
        features = loaded.model.encode_image(pixels)
    if len(probabilities) != len(blocks):
        raise RuntimeError(f"Recorded {len(probabilities)} attention maps for {len(blocks)} blocks.")
    return TowerPass(features, probabilities, tuple(loaded.model.visual.grid_size))


def _transformers_pass(loaded: "LoadedClip", pixels: torch.Tensor) -> TowerPass:
    clip = loaded.model.model
    outputs = clip.get_image_features(pixel_values=pixels, output_attentions=True)
    if not outputs.attentions:
        raise RuntimeError(f"'{loaded.name}' returned no attentions: it must be loaded with eager attention.")
    patch = clip.config.vision_config.patch_size
    grid_size = (pixels.shape[-2] // patch, pixels.shape[-1] // patch)
    # Each is the very tensor the eager kernel multiplied by the values; indexing away its batch axis would
    # make a new view outside the graph, so it stays (1, heads, tokens, tokens).
    return TowerPass(outputs.pooler_output, list(outputs.attentions), grid_size)


def check_open_clip_tower(loaded: "LoadedClip") -> list[torch.nn.Module]:
    """The blocks of an open_clip ViT whose attention can be read; NoAttentionError for anything else."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    visual = loaded.model.visual
    kind = type(visual).__name__
    if not isinstance(visual, VisionTransformer):
        what = "a timm image tower" if kind == "TimmModel" else "a convolutional image tower"
        raise NoAttentionError(
            f"'{loaded.name}' has {what} ({kind}) whose attention ViT Studio cannot read, "
            f"so there is no label map; {_PICK_VIT}."
        )
    if visual.attn_pool is not None or visual.pool_type != "tok":
        raise NoAttentionError(
            f"'{loaded.name}' pools its image tokens without a CLS token, so a CLS relevance "
            f"map does not apply; {_PICK_VIT}."
        )
    blocks = list(visual.transformer.resblocks)
    if not all(
        isinstance(block, ResidualAttentionBlock) and isinstance(block.attn, torch.nn.MultiheadAttention)
        for block in blocks
    ):
        raise NoAttentionError(
            f"'{loaded.name}' uses open_clip's custom attention blocks, which never form "
            f"their attention probabilities (fused kernel); {_PICK_VIT}."
        )
    return blocks


@contextmanager
def recording_attention(blocks: list[torch.nn.Module]) -> Iterator[list[torch.Tensor]]:
    """While open, each block's nn.MultiheadAttention is asked for its per-head weights and the list fills
    with the probabilities it used, one (heads, tokens, tokens) tensor per block; the hooks go on exit.

    Only the opening thread is affected: the model is shared through the cache, and a zero_shot() call in
    another Gradio worker must neither pay for the weights nor leave its maps in this list.
    """
    owner = threading.get_ident()
    recorded: list[torch.Tensor] = []

    def ask_for_weights(module, args, kwargs):
        if threading.get_ident() != owner:
            return None
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep_weights(module, args, kwargs, output):
        if threading.get_ident() == owner:
            recorded.append(_probabilities_in_graph(output[1], module.num_heads))

    handles = []
    try:
        for block in blocks:
            attention = cast(torch.nn.Module, block.attn)
            handles.append(attention.register_forward_pre_hook(ask_for_weights, with_kwargs=True))
            handles.append(attention.register_forward_hook(keep_weights, with_kwargs=True))
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


def _probabilities_in_graph(weights: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The tensor MultiheadAttention multiplied by the values, of which `weights` is a reshaped view.

    The returned view itself is not upstream of the output (torch reshapes after the product), so a gradient
    with respect to it would be None; its base, (batch * heads, tokens, tokens), is. With one image that base
    is exactly (heads, tokens, tokens).
    """
    base = weights._base
    tokens = weights.shape[-1]
    if base is None or base.grad_fn is None or tuple(base.shape) != (num_heads, tokens, tokens):
        raise RuntimeError(
            "torch.nn.MultiheadAttention no longer returns a view of the probabilities it used; "
            "core.clip_maps needs updating for this torch version."
        )
    return base
