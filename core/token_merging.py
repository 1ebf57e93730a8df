"""Token merging (ToMe, Bolya et al. 2023) on Hugging Face ViT-family classifiers: fewer tokens per layer, same weights.

After each layer's attention, the r most similar patch tokens (cosine similarity of the attention keys, averaged over
heads) are merged into their best partners by a size-weighted average; later layers add log(size) to the attention
logits (proportional attention), so a merged token still weighs as much as the patches it stands for. Prefix tokens
(CLS, DeiT's distillation token) are never merged. `merging(model, r)` patches the layers' forward for the duration of
a `with` block and puts the originals back afterwards, so a model shared through the engine's cache is left as it was.
"""

from __future__ import annotations

import statistics
import threading
import time
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from .attention import model_input_image
from .classify import check_batch_size, label_names, preprocess, scores_from_logits, size_kwargs, top_predictions
from .gpu import gpu_work
from .images import ImageInput, load_images
from .models import LoadedModel, load_classifier
from .settings import DEFAULT_CLASSIFIER
from .types import OnLoad, Prediction, RunInfo, run_since

TOP_K = 5
DEFAULT_RS = (0, 2, 4, 8, 12, 16)


# --- bipartite soft matching: pure tensor maths -----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Matching:
    """One round of bipartite soft matching: where every token of a (batch, tokens) sequence goes.

    Tokens keep their relative order within each group of the merged sequence: prefix tokens first, then the
    unmerged tokens of set A, then every token of set B (each holding the A tokens merged into it)."""

    destination: torch.Tensor  # (batch, tokens) long: each input token's index in the merged sequence
    merged: int  # how many tokens were merged away (r after clamping)
    tokens_after: int

    def merge(self, x: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Size-weighted average of the tokens `x` (batch, tokens, dim) that land together, and their summed sizes
        (batch, tokens, 1) in float32."""
        if self.merged == 0:
            return x, sizes
        # As one batched matrix product, (merged tokens x tokens) weights times x: a scatter_add over x is several
        # times slower on CPU in bf16, and the product runs on the same matrix units as the rest of the model.
        targets = torch.arange(self.tokens_after, device=x.device).view(1, -1, 1)
        weights = (self.destination.unsqueeze(1) == targets).to(sizes.dtype) * sizes.transpose(1, 2)
        total = weights.sum(dim=-1, keepdim=True)
        return torch.bmm(weights.to(x.dtype), x) / total.to(x.dtype), total


def max_merge(tokens: int, prefix_tokens: int = 1) -> int:
    """The most tokens one round can merge: every token of set A, i.e. half the patch tokens, rounded down."""
    return max(0, tokens - prefix_tokens) // 2


def bipartite_soft_matching(keys: torch.Tensor, r: int, *, prefix_tokens: int = 1) -> Matching:
    """ToMe's matching on `keys` (tokens, dim) or (batch, tokens, dim): the first `prefix_tokens` stay out; the
    remaining tokens alternate into sets A (even) and B (odd); each A token's best B match by cosine similarity;
    the r A tokens with the most similar matches merge into them. r is clamped to max_merge (as ToMe does per
    layer); a negative r raises ValueError."""
    check_r(r)
    if keys.dim() == 2:
        keys = keys.unsqueeze(0)
    batch, tokens, _ = keys.shape
    if not 0 <= prefix_tokens <= tokens:
        raise ValueError(f"prefix_tokens must be between 0 and the {tokens} tokens, not {prefix_tokens}.")
    r = min(r, max_merge(tokens, prefix_tokens))
    device = keys.device
    identity = torch.arange(tokens, device=device).expand(batch, tokens)
    if r == 0:
        return Matching(destination=identity.clone(), merged=0, tokens_after=tokens)
    with torch.no_grad():
        patches = keys[:, prefix_tokens:].float()
        patches = patches / patches.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        set_a, set_b = patches[:, 0::2], patches[:, 1::2]
        best_score, best_b = (set_a @ set_b.transpose(1, 2)).max(dim=-1)  # (batch, |A|)
        order = best_score.argsort(dim=-1, descending=True, stable=True)
        merged_a, kept_a = order[:, :r], order[:, r:].sort(dim=-1).values
        count_a, count_b = set_a.shape[1], set_b.shape[1]
        start_b = prefix_tokens + count_a - r  # where set B begins in the merged sequence
        a_position = prefix_tokens + 2 * torch.arange(count_a, device=device)  # A token i's index in the input
        b_position = prefix_tokens + 1 + 2 * torch.arange(count_b, device=device)
        destination = identity.clone()
        destination[:, b_position] = start_b + torch.arange(count_b, device=device)
        kept_targets = prefix_tokens + torch.arange(count_a - r, device=device).expand(batch, -1)
        destination.scatter_(1, a_position[kept_a], kept_targets)
        destination.scatter_(1, a_position[merged_a], start_b + best_b.gather(1, merged_a))
    return Matching(destination=destination, merged=r, tokens_after=tokens - r)


def check_r(r: int) -> None:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
        raise ValueError(f"r (tokens merged per layer) must be a whole number of at least 0, not {r!r}.")


# --- patching a model's layers ----------------------------------------------------------------------------------


@dataclass
class MergeState:
    """What one forward pass carries from layer to layer while merging is installed."""

    r: int
    patch_size: tuple[int, int]
    thread: int  # only this thread's forward passes merge; others sharing the model run it unchanged
    prefix_tokens: int = 1
    grid_size: tuple[int, int] = (0, 0)
    sizes: torch.Tensor | None = None  # (batch, tokens, 1): how many original patches (or prefix) each token is
    sources: torch.Tensor | None = None  # (batch, patches): each original patch's token index in the sequence
    tokens_per_layer: list[int] = field(default_factory=list)
    source_maps: list[torch.Tensor] = field(default_factory=list)  # per layer, sources after its merge

    def active(self) -> bool:
        return threading.get_ident() == self.thread


_INSTALL_LOCK = threading.Lock()  # one `merging` block at a time per process: the patch lives on shared modules
_INSTALLED_BY: dict[int, int] = {}  # id(model) -> the thread whose `merging` block is patching it


def vit_layers(model: Any) -> list[torch.nn.Module]:
    """The transformer layers of a ViT-family model (ViT, DeiT) whose forward merging can replace; ValueError
    naming the supported models otherwise."""
    layers = [module for module in model.modules() if _is_vit_layer(module)]
    if not layers or _embeddings(model) is None:
        raise ValueError(
            f"Token merging needs a ViT-family classifier (ViT, DeiT) with q/k/v projections; "
            f"{type(model).__name__} is not one. Pick e.g. google/vit-base-patch16-224."
        )
    return layers


def _is_vit_layer(module: torch.nn.Module) -> bool:
    attention = getattr(module, "attention", None)
    needed = ("q_proj", "k_proj", "v_proj", "o_proj", "num_attention_heads", "head_dim", "scaling")
    return (
        attention is not None
        and all(hasattr(attention, name) for name in needed)
        and all(hasattr(module, name) for name in ("layernorm_before", "layernorm_after", "mlp", "dropout"))
    )


def _embeddings(model: Any) -> torch.nn.Module | None:
    return next((m for m in model.modules() if hasattr(m, "patch_embeddings") and hasattr(m, "cls_token")), None)


def _patch_size(config: Any) -> tuple[int, int]:
    patch = config.patch_size
    return (patch, patch) if isinstance(patch, int) else (int(patch[0]), int(patch[1]))


@contextmanager
def merging(model: Any, r: int) -> Iterator[MergeState]:
    """Within the block, every forward pass of `model` (from this thread) merges r tokens after each layer's
    attention; the state yielded holds the last pass's token counts and source maps. On exit the model's own
    forward methods are back (merging installs instance attributes and deletes them again)."""
    check_r(r)
    layers = vit_layers(model)
    embeddings = _embeddings(model)
    assert embeddings is not None  # vit_layers checked
    state = MergeState(r=int(r), patch_size=_patch_size(model.config), thread=threading.get_ident())
    if any("forward" in vars(layer) for layer in layers) and _INSTALLED_BY.get(id(model)) == state.thread:
        # Waiting for the lock here would wait for this very thread: a deadlock.
        raise ValueError("merging() is already active on this model; leave that with-block before starting another.")
    with _INSTALL_LOCK:
        _INSTALLED_BY[id(model)] = state.thread
        hook = embeddings.register_forward_hook(_pass_starter(state))
        for layer in layers:
            layer.forward = types.MethodType(_merged_layer_forward(state), layer)
        try:
            yield state
        finally:
            hook.remove()
            for layer in layers:
                del layer.forward  # the class's forward shows through again
            del _INSTALLED_BY[id(model)]


def _pass_starter(state: MergeState):
    """A forward hook on the embeddings that starts a pass: grid and prefix from the pixels, sizes all one."""

    def start_pass(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        if not state.active():
            return
        pixel_values = args[0]
        grid = (pixel_values.shape[-2] // state.patch_size[0], pixel_values.shape[-1] // state.patch_size[1])
        batch, tokens, _ = output.shape
        state.grid_size = grid
        state.prefix_tokens = tokens - grid[0] * grid[1]
        state.sizes = torch.ones(batch, tokens, 1, dtype=torch.float32, device=output.device)
        patches = torch.arange(state.prefix_tokens, tokens, device=output.device)
        state.sources = patches.expand(batch, -1).clone()
        state.tokens_per_layer = []
        state.source_maps = []

    return start_pass


def _merged_layer_forward(state: MergeState):
    """A ViTLayer/DeiTLayer forward: attention with the size bias, then a merge before the MLP (as ToMe does)."""

    def forward(
        layer: Any, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        if not state.active() or state.sizes is None:
            return type(layer).forward(layer, hidden_states, attention_mask, **kwargs)
        if attention_mask is not None:
            raise ValueError("Token merging cannot honour an attention mask: the token count changes per layer.")
        residual = hidden_states
        attended, keys = _attention_with_sizes(layer.attention, layer.layernorm_before(hidden_states), state.sizes)
        hidden_states = layer.dropout(attended) + residual
        if min(state.r, max_merge(hidden_states.shape[1], state.prefix_tokens)) > 0:  # else nothing to match
            heads = layer.attention.num_attention_heads
            # The sum over heads: ToMe's mean up to a factor, which cosine similarity ignores.
            metric = keys.view(*keys.shape[:2], heads, -1).sum(dim=2)
            matching = bipartite_soft_matching(metric, state.r, prefix_tokens=state.prefix_tokens)
            hidden_states, state.sizes = matching.merge(hidden_states, state.sizes)
            assert state.sources is not None
            state.sources = matching.destination.gather(1, state.sources)
        state.tokens_per_layer.append(hidden_states.shape[1])
        assert state.sources is not None
        state.source_maps.append(state.sources)
        residual = hidden_states
        hidden_states = layer.dropout(layer.mlp(layer.layernorm_after(hidden_states)))
        return hidden_states + residual

    return forward


def _attention_with_sizes(
    attention: Any, hidden_states: torch.Tensor, sizes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ViTAttention's maths, softmax(q k^T * scale + log(size)) v, with the size bias that transformers' attention
    interface has no slot for; also the keys (batch, tokens, heads * head_dim) that ToMe's similarity is made of.

    The bias goes in as SDPA's additive mask: the eager formula's sum, computed by the fused kernel (the eager
    matmul-softmax-matmul in Python made ToMe slower than the unmerged SDPA model on CPU)."""
    batch, tokens, _ = hidden_states.shape
    shape = (batch, tokens, -1, attention.head_dim)
    query = attention.q_proj(hidden_states).view(shape).transpose(1, 2)
    keys = attention.k_proj(hidden_states)  # (batch, tokens, heads * head_dim)
    key = keys.view(shape).transpose(1, 2)
    value = attention.v_proj(hidden_states).view(shape).transpose(1, 2)
    bias = sizes.log().view(batch, 1, 1, tokens).to(query.dtype)
    output = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=bias,
        dropout_p=attention.attention_dropout if attention.training else 0.0,
        scale=attention.scaling,
    )
    output = output.transpose(1, 2).reshape(batch, tokens, -1)
    return attention.o_proj(output), keys


# --- engine calls -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MergeResult:
    """One image through the merged and the full model: both top-5s and, per layer, which patches merged."""

    predictions: tuple[Prediction, ...]  # the merged model's top-5, best first
    full_predictions: tuple[Prediction, ...]  # the unmerged model's top-5
    r: int  # tokens merged per layer, as asked (a layer with too few tokens left merges fewer)
    tokens_per_layer: tuple[int, ...]  # tokens (prefix included) left after each layer's merge
    # Per layer, a (grid_h, grid_w) int array: for each original patch, the index (0 = first patch token, prefix
    # tokens not counted) of the token it was merged into after that layer. Patches sharing a number are one token.
    source_maps: tuple[np.ndarray, ...]
    grid_size: tuple[int, int]
    num_prefix_tokens: int
    model_input: Image.Image  # the resized pixels the model saw
    model: str
    run: RunInfo

    @property
    def tokens_before(self) -> int:
        return self.grid_size[0] * self.grid_size[1] + self.num_prefix_tokens


@dataclass(frozen=True)
class MergePoint:
    """One r measured on a set of images: agreement with the unmerged model and the speed it bought."""

    r: int
    top1_agreement: float  # share of images whose top-1 label matches the unmerged model's
    images_per_s: float  # measured: median over the timed passes of all images
    tokens_left: int  # tokens (prefix included) after the last layer


def preload_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    load_classifier(call["model"], device=call["device"], precision=call["precision"], on_load=on_load)


@gpu_work(preload=preload_for)
def token_merging(
    images: ImageInput | list[ImageInput],
    model: str = DEFAULT_CLASSIFIER,
    *,
    r: int = 8,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> MergeResult | list[MergeResult]:
    """Classify with ToMe merging r tokens per layer and without; one image in gives one MergeResult, a list a
    list. r larger than a layer allows is clamped per layer (max_merge); r=0 runs the unmerged model's maths."""
    check_r(r)
    single = not isinstance(images, (list, tuple))
    pictures = load_images(images)
    loaded = load_classifier(model, device=device, precision=precision, on_load=on_load)
    vit_layers(loaded.model)
    started = time.perf_counter()
    labels = label_names(loaded.model.config)
    results = []
    for picture in pictures:
        pixel_values = preprocess(loaded, [picture])
        full = _probabilities(loaded, pixel_values)
        with merging(loaded.model, r) as state:
            merged = _probabilities(loaded, pixel_values)
        grid = state.grid_size
        results.append(
            MergeResult(
                predictions=tuple(top_predictions(merged[0], labels, TOP_K)),
                full_predictions=tuple(top_predictions(full[0], labels, TOP_K)),
                r=int(r),
                tokens_per_layer=tuple(state.tokens_per_layer),
                source_maps=tuple(
                    (sources[0] - state.prefix_tokens).reshape(grid).cpu().numpy().astype(np.int64)
                    for sources in state.source_maps
                ),
                grid_size=grid,
                num_prefix_tokens=state.prefix_tokens,
                model_input=model_input_image(pixel_values, loaded.processor),
                model=loaded.name,
                run=run_since(loaded, started),
            )
        )
    return results[0] if single else results


def _probabilities(loaded: LoadedModel, pixel_values: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        logits = loaded.model(pixel_values=pixel_values, **size_kwargs(loaded, pixel_values)).logits.float()
    return scores_from_logits(logits, loaded.model.config).cpu().numpy()


def merged_logits(loaded: LoadedModel, pixel_values: torch.Tensor, r: int | None) -> torch.Tensor:
    """float32 logits of one batch: the model as it is for r=None, else with merging(r) installed."""
    with torch.inference_mode():
        if r is None:
            return loaded.model(pixel_values=pixel_values, **size_kwargs(loaded, pixel_values)).logits.float()
        with merging(loaded.model, r):
            return loaded.model(pixel_values=pixel_values, **size_kwargs(loaded, pixel_values)).logits.float()


def tokens_left(tokens: int, r: int, layers: int, prefix_tokens: int = 1) -> int:
    """Tokens after `layers` rounds of merging r, each clamped to what the round allows."""
    for _ in range(layers):
        tokens -= min(r, max_merge(tokens, prefix_tokens))
    return tokens


@gpu_work(preload=preload_for)
def agreement_curve(
    images: Sequence[ImageInput],
    model: str = DEFAULT_CLASSIFIER,
    *,
    rs: Sequence[int] = DEFAULT_RS,
    batch_size: int = 8,
    repeats: int = 1,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> list[MergePoint]:
    """For each r: top-1 agreement with the unmerged model and measured images/s over all `images`. r=0 is the
    unmerged model itself (no patch installed). The passes are timed after one warm-up batch, `repeats` times,
    the rs interleaved (rotating who goes first) so machine noise hits all alike; the median is reported."""
    for r in rs:
        check_r(r)
    if not rs:
        raise ValueError("rs is empty: give at least one r, e.g. (0, 8).")
    check_batch_size(batch_size)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1, not {repeats!r}.")
    pictures = load_images(list(images))
    if not pictures:
        raise ValueError("No images given: agreement_curve needs at least one picture.")
    loaded = load_classifier(model, device=device, precision=precision, on_load=on_load)
    layers = vit_layers(loaded.model)
    batches = [preprocess(loaded, pictures[i : i + batch_size]) for i in range(0, len(pictures), batch_size)]
    tokens, prefix = _token_layout(loaded, batches[0])
    reference = torch.cat([merged_logits(loaded, batch, None) for batch in batches]).argmax(-1)  # also a warm-up
    for r in rs:
        merged_logits(loaded, batches[0], r or None)  # warm-up: kernels for the new shapes
    seconds: dict[int, list[float]] = {r: [] for r in rs}
    predicted: dict[int, torch.Tensor] = {}
    distinct = list(dict.fromkeys(rs))
    for round_ in range(repeats):
        shift = round_ % len(distinct)
        for r in distinct[shift:] + distinct[:shift]:
            _sync(loaded.device)
            start = time.perf_counter()
            logits = [merged_logits(loaded, batch, r or None) for batch in batches]
            _sync(loaded.device)
            seconds[r].append(time.perf_counter() - start)
            predicted[r] = torch.cat(logits).argmax(-1)
    return [
        MergePoint(
            r=int(r),
            top1_agreement=float((predicted[r] == reference).float().mean()),
            images_per_s=len(pictures) / statistics.median(seconds[r]),
            tokens_left=tokens_left(tokens, r, len(layers), prefix),
        )
        for r in rs
    ]


def _token_layout(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[int, int]:
    """(tokens, prefix tokens) the model's layers see for these pixels, from one pass with nothing merged."""
    with merging(loaded.model, 0) as state, torch.inference_mode():
        loaded.model(pixel_values=pixel_values[:1], **size_kwargs(loaded, pixel_values[:1]))
    return state.tokens_per_layer[0], state.prefix_tokens


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
