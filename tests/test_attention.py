"""core.attention: rollout and gradient rollout checked against independent implementations of the papers'
recipes, raw attention maps, overlays, features, and explain() on tiny real models loaded by the real loader.

The references below are written from DESIGN.md ("Attention rollout, exactly") and from Chefer et al. (2021)
in torch and plain Python (sorted on (weight, index), row loops), deliberately not the way core/attention.py does
it (numpy, argsort).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import NoAttentionError, classify, explain, features, overlay, rollout
from core.attention import (
    attention_map,
    grad_rollout,
    head_maps,
    patch_grid_image,
    rollout_per_layer,
    scale_map,
)

FP32_TOLERANCE = 1e-5
PHOTOS = ("chelsea", "astronaut", "coffee", "camera")
METHODS = ("rollout", "grad_rollout", "attention")
# The class names of the tiny models (tests/conftest.py's TINY_LABELS; the tiny_labels fixture checks they agree).
TINY_LABELS = ("tabby cat", "astronaut", "coffee cup", "space rocket", "cameraman")


# --- independent references ---------------------------------------------------------------------------------


def _to_torch_layers(attentions) -> list[torch.Tensor]:
    """float64 (heads, tokens, tokens) tensors, whatever came in."""
    layers = []
    for layer in attentions:
        tensor = (
            layer.detach().to(torch.float64)
            if isinstance(layer, torch.Tensor)
            else torch.tensor(np.asarray(layer), dtype=torch.float64)
        )
        while tensor.dim() > 3:
            tensor = tensor.squeeze(0)
        layers.append(tensor)
    return layers


def _cls_row_as_map(matrix: torch.Tensor, num_prefix_tokens: int, grid_size) -> np.ndarray:
    row = matrix[0, num_prefix_tokens:]
    if grid_size is None:
        side = math.isqrt(row.numel())
        grid_size = (side, side)
    grid = row.reshape(grid_size[0], grid_size[1]).numpy().astype(np.float64)
    top = float(grid.max())
    return grid / top if top > 0 else np.zeros_like(grid)


def reference_rollout(attentions, head_fusion="mean", discard_ratio=0.0, num_prefix_tokens=1, grid_size=None):
    """Abnar & Zuidema (2020), step by step as DESIGN.md states it (the discard as jacobgil's vit-explain does it)."""
    layers = _to_torch_layers(attentions)
    tokens = layers[0].shape[-1]
    eye = torch.eye(tokens, dtype=torch.float64)
    result = eye.clone()
    for heads in layers:
        if head_fusion == "mean":
            fused = heads.sum(dim=0) / heads.shape[0]
        elif head_fusion == "max":
            fused = heads.amax(dim=0)
        elif head_fusion == "min":
            fused = heads.amin(dim=0)
        else:
            raise AssertionError(head_fusion)
        if discard_ratio > 0:
            flat = fused.flatten().clone()
            count = int(tokens * tokens * discard_ratio)
            # The lowest `count` weights; equal weights (real models have them, e.g. DeiT's CLS and distillation
            # tokens) are taken in flat-index order, so the choice is well defined.
            values = flat.tolist()
            lowest = sorted(range(len(values)), key=lambda index: (values[index], index))[:count]
            for index in lowest:
                if index != 0:  # never the CLS-to-CLS weight
                    flat[index] = 0.0
            fused = flat.view(tokens, tokens)
        step = (fused + eye) / 2
        for row in range(tokens):
            step[row] = step[row] / step[row].sum()
        result = torch.matmul(step, result)
    return _cls_row_as_map(result, num_prefix_tokens, grid_size)


def reference_grad_rollout(attentions, gradients, num_prefix_tokens=1, grid_size=None):
    """Chefer et al. (2021), Generic Attention-model Explainability, their ViT rule:
    R = I; per layer R += mean_heads(clamp(grad * A, min=0)) @ R; CLS row over the patches, max 1."""
    layers, grads = _to_torch_layers(attentions), _to_torch_layers(gradients)
    tokens = layers[0].shape[-1]
    relevance = torch.eye(tokens, dtype=torch.float64)
    for attention, gradient in zip(layers, grads):
        cam = (gradient * attention).clamp(min=0).mean(dim=0)
        relevance = relevance + torch.matmul(cam, relevance)
    return _cls_row_as_map(relevance, num_prefix_tokens, grid_size)


def random_attentions(seed, layers=3, heads=4, tokens=17, temperature=2.0) -> list[np.ndarray]:
    """Seeded softmax-normalised rows, one (heads, tokens, tokens) array per layer."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(layers, heads, tokens, tokens, generator=generator, dtype=torch.float64) * temperature
    probabilities = torch.softmax(logits, dim=-1).numpy()
    assert np.allclose(probabilities.sum(-1), 1)
    return [probabilities[index] for index in range(layers)]


def as_kind(layers: list[np.ndarray], kind: str):
    if kind == "numpy":
        return layers
    if kind == "torch":
        return tuple(torch.from_numpy(layer) for layer in layers)  # a tuple, as transformers returns them
    if kind == "numpy-batch":
        return [layer[None] for layer in layers]
    if kind == "torch-batch":
        return tuple(torch.from_numpy(layer).unsqueeze(0) for layer in layers)
    if kind == "torch-float32":
        return [torch.from_numpy(layer).float() for layer in layers]
    raise AssertionError(kind)


# --- rollout against the reference --------------------------------------------------------------------------

GRIDS = [  # (num_prefix_tokens, grid_size passed, grid the map has)
    (1, None, (4, 4)),
    (2, None, (4, 4)),
    (1, (3, 5), (3, 5)),
    (2, (5, 3), (5, 3)),
]


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard_ratio", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("prefix, grid_size, grid", GRIDS)
def test_rollout_matches_the_papers_recipe(head_fusion, discard_ratio, prefix, grid_size, grid):
    tokens = prefix + grid[0] * grid[1]
    layers = random_attentions(seed=tokens * 100 + int(discard_ratio * 100), tokens=tokens)
    expected = reference_rollout(layers, head_fusion, discard_ratio, prefix, grid_size)
    actual = rollout(
        layers, head_fusion=head_fusion, discard_ratio=discard_ratio, num_prefix_tokens=prefix, grid_size=grid_size
    )
    assert isinstance(actual, np.ndarray) and actual.shape == grid
    assert not np.isnan(actual).any()
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)
    assert actual.min() >= 0
    assert actual.max() == pytest.approx(1.0) or not actual.any()


@pytest.mark.parametrize("kind", ["numpy", "torch", "numpy-batch", "torch-batch", "torch-float32"])
@pytest.mark.parametrize("discard_ratio", [0.0, 0.5])
def test_rollout_accepts_numpy_torch_and_a_batch_axis_of_one(kind, discard_ratio):
    layers = random_attentions(seed=7, tokens=1 + 15)
    expected = reference_rollout(layers, "mean", discard_ratio, 1, (3, 5))
    actual = rollout(as_kind(layers, kind), discard_ratio=discard_ratio, grid_size=(3, 5))
    assert actual.shape == (3, 5) and actual.max() == pytest.approx(1.0)
    np.testing.assert_allclose(actual, expected, rtol=FP32_TOLERANCE, atol=1e-6)


def test_rollout_of_a_single_stacked_array_treats_the_first_axis_as_layers():
    layers = random_attentions(seed=8)
    np.testing.assert_allclose(rollout(np.stack(layers)), reference_rollout(layers), rtol=1e-9)


def test_rollout_defaults_are_mean_no_discard_one_cls_token():
    layers = random_attentions(seed=9)
    np.testing.assert_allclose(rollout(layers), reference_rollout(layers, "mean", 0.0, 1), rtol=1e-9)


def test_the_head_fusions_give_different_maps():
    """So the parametrised comparisons above really tell mean, max and min apart."""
    layers = random_attentions(seed=10)
    maps = {fusion: rollout(layers, head_fusion=fusion) for fusion in ("mean", "max", "min")}
    assert not np.allclose(maps["mean"], maps["max"])
    assert not np.allclose(maps["mean"], maps["min"])
    assert not np.allclose(maps["max"], maps["min"])


def test_cls_to_cls_weight_is_never_discarded():
    """Put the CLS-to-CLS weight among the lowest half of every layer (but far from zero): the discard must
    skip it (flat index 0)."""
    layers = random_attentions(seed=11)
    count = int(17 * 17 * 0.5)
    for layer in layers:
        layer[:, 0, 0] = np.quantile(layer.mean(axis=0), 0.25)
        layer[:, 0] /= layer[:, 0].sum(axis=-1, keepdims=True)
        assert 0 in np.argsort(layer.mean(axis=0).reshape(-1))[:count]
    expected = reference_rollout(layers, "mean", 0.5)
    np.testing.assert_allclose(rollout(layers, discard_ratio=0.5), expected, rtol=1e-9)

    # The same recipe with index 0 zeroed too differs, so the check above can tell.
    tokens = layers[0].shape[-1]
    joint = np.eye(tokens)
    for layer in layers:
        fused = layer.mean(axis=0).reshape(-1).copy()
        fused[np.argsort(fused)[:count]] = 0
        step = (fused.reshape(tokens, tokens) + np.eye(tokens)) / 2
        joint = (step / step.sum(axis=1, keepdims=True)) @ joint
    wrong = joint[0, 1:].reshape(4, 4) / joint[0, 1:].max()
    assert not np.allclose(wrong, expected)


def test_discard_zeroes_the_lowest_weights_so_patches_can_drop_to_zero():
    layers = random_attentions(seed=12)
    kept = rollout(layers, discard_ratio=0.0)
    assert kept.min() > 0
    assert rollout(layers, discard_ratio=0.9).min() == 0


# --- the all-zero map ---------------------------------------------------------------------------------------


def cls_looks_only_at_itself(seed=13, prefix=1, tokens=17) -> list[np.ndarray]:
    """Random attention, except CLS puts (almost) all its weight on itself: its weights to the other tokens
    are the smallest of the matrix, so a high discard ratio removes every one of them."""
    layers = random_attentions(seed=seed, tokens=tokens)
    for layer in layers:
        layer[:, 0, :] = 1e-12
        layer[:, 0, 0] = 1.0
        layer[:, 0] /= layer[:, 0].sum(axis=-1, keepdims=True)
    return layers


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("prefix", [1, 2])
def test_an_all_zero_map_stays_all_zero_never_nan(head_fusion, prefix):
    layers = cls_looks_only_at_itself(prefix=prefix, tokens=prefix + 16)
    heatmap = rollout(layers, head_fusion=head_fusion, discard_ratio=0.99, num_prefix_tokens=prefix)
    assert heatmap.shape == (4, 4)
    assert not np.isnan(heatmap).any()
    assert not heatmap.any()
    np.testing.assert_array_equal(heatmap, reference_rollout(layers, head_fusion, 0.99, prefix))
    for per_layer in rollout_per_layer(layers, head_fusion, 0.99, prefix):
        assert not np.isnan(per_layer).any() and not per_layer.any()
    # Without the discard the tiny weights survive, so the map is a real one (max 1): the zeros above came
    # from the discard, not from the arrays.
    undiscarded = rollout(layers, head_fusion=head_fusion, num_prefix_tokens=prefix)
    assert undiscarded.max() == pytest.approx(1.0)


def test_zero_cls_attention_and_zero_gradients_give_zero_maps_not_nan():
    layers = cls_looks_only_at_itself()
    for layer in layers:
        layer[:, 0, 1:] = 0.0
    raw = attention_map(layers, layer=1)
    assert not np.isnan(raw).any() and not raw.any()
    heads = head_maps(layers, layer=2)
    assert heads.shape == (4, 4, 4) and not np.isnan(heads).any() and not heads.any()
    relevance = grad_rollout(layers, [np.zeros_like(layer) for layer in layers])
    assert not np.isnan(relevance).any() and not relevance.any()


# --- up_to_layer and rollout_per_layer ----------------------------------------------------------------------


@pytest.mark.parametrize("discard_ratio", [0.0, 0.5])
@pytest.mark.parametrize("prefix, grid_size, grid", GRIDS[1:3])
def test_up_to_layer_is_rollout_of_the_first_layers_and_the_per_layer_map(discard_ratio, prefix, grid_size, grid):
    layers = random_attentions(seed=14, layers=4, tokens=prefix + grid[0] * grid[1])
    per_layer = rollout_per_layer(layers, "max", discard_ratio, prefix, grid_size)
    assert len(per_layer) == 4 and all(heatmap.shape == grid for heatmap in per_layer)
    for stop in range(1, 5):
        partial = rollout(layers, "max", discard_ratio, prefix, grid_size, up_to_layer=stop)
        np.testing.assert_allclose(partial, rollout(layers[:stop], "max", discard_ratio, prefix, grid_size), rtol=1e-12)
        np.testing.assert_allclose(partial, per_layer[stop - 1], rtol=1e-12)
        np.testing.assert_allclose(
            partial, reference_rollout(layers[:stop], "max", discard_ratio, prefix, grid_size), rtol=1e-9
        )
    np.testing.assert_allclose(per_layer[-1], rollout(layers, "max", discard_ratio, prefix, grid_size), rtol=1e-12)
    assert not np.allclose(per_layer[0], per_layer[-1])


def test_grad_rollout_up_to_layer_uses_the_first_layers():
    layers = random_attentions(seed=15, layers=3)
    gradients = [np.random.default_rng(15 + index).normal(size=layer.shape) for index, layer in enumerate(layers)]
    for stop in (1, 2, 3):
        np.testing.assert_allclose(
            grad_rollout(layers, gradients, up_to_layer=stop),
            reference_grad_rollout(layers[:stop], gradients[:stop]),
            rtol=1e-9,
        )


# --- gradient rollout against the reference -----------------------------------------------------------------


@pytest.mark.parametrize("prefix, grid_size, grid", GRIDS)
@pytest.mark.parametrize("kind", ["numpy", "torch", "torch-batch"])
def test_grad_rollout_matches_chefer_et_al(prefix, grid_size, grid, kind):
    tokens = prefix + grid[0] * grid[1]
    layers = random_attentions(seed=16 + tokens, tokens=tokens)
    rng = np.random.default_rng(tokens)
    gradients = [rng.normal(size=layer.shape) for layer in layers]
    expected = reference_grad_rollout(layers, gradients, prefix, grid_size)
    actual = grad_rollout(
        as_kind(layers, kind), as_kind(gradients, kind), num_prefix_tokens=prefix, grid_size=grid_size
    )
    assert actual.shape == grid and actual.max() == pytest.approx(1.0) and actual.min() >= 0
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)
    # Negative products are clamped away: flipping every gradient's sign gives another map.
    flipped = grad_rollout(layers, [-gradient for gradient in gradients], num_prefix_tokens=prefix, grid_size=grid_size)
    np.testing.assert_allclose(
        flipped, reference_grad_rollout(layers, [-g for g in gradients], prefix, grid_size), rtol=1e-9, atol=1e-12
    )
    assert not np.allclose(flipped, actual)


# --- raw attention and head maps ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix, grid_size, grid", GRIDS)
def test_attention_map_is_the_raw_cls_row_of_the_layer_and_head(prefix, grid_size, grid):
    layers = random_attentions(seed=17, layers=3, heads=3, tokens=prefix + grid[0] * grid[1])
    for layer in (1, 2, 3):
        for head in range(3):
            row = layers[layer - 1][head, 0, prefix:].reshape(grid)
            actual = attention_map(layers, layer, head=head + 1, num_prefix_tokens=prefix, grid_size=grid_size)
            np.testing.assert_allclose(actual, row / row.max(), rtol=1e-12)
            assert actual.max() == 1.0
        for fusion, fuse in (("mean", np.mean), ("max", np.max), ("min", np.min)):
            row = fuse(layers[layer - 1][:, 0, prefix:], axis=0).reshape(grid)
            actual = attention_map(layers, layer, head_fusion=fusion, num_prefix_tokens=prefix, grid_size=grid_size)
            np.testing.assert_allclose(actual, row / row.max(), rtol=1e-12)


@pytest.mark.parametrize("prefix, grid_size, grid", GRIDS)
def test_head_maps_are_every_heads_cls_row(prefix, grid_size, grid):
    layers = as_kind(random_attentions(seed=18, layers=2, heads=3, tokens=prefix + grid[0] * grid[1]), "torch-batch")
    for layer in (1, 2):
        maps = head_maps(layers, layer, num_prefix_tokens=prefix, grid_size=grid_size)
        assert maps.shape == (3, *grid)
        for head in range(3):
            row = layers[layer - 1][0, head, 0, prefix:].numpy().reshape(grid)
            np.testing.assert_allclose(maps[head], row / row.max(), rtol=1e-12)
            assert maps[head].max() == 1.0


# --- bad inputs ---------------------------------------------------------------------------------------------

_LAYERS = random_attentions(seed=19, layers=3, heads=4, tokens=17)
_GRADIENTS = [np.ones_like(layer) for layer in _LAYERS]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rollout(_LAYERS, discard_ratio=-0.1), r"discard_ratio must be at least 0 and below 1, not -0\.1"),
        (lambda: rollout(_LAYERS, discard_ratio=1.0), r"discard_ratio must be at least 0 and below 1, not 1\.0"),
        (lambda: rollout_per_layer(_LAYERS, discard_ratio=1.5), r"discard_ratio must be at least 0 and below 1"),
        (lambda: rollout(_LAYERS, head_fusion="median"), r"Unknown head fusion 'median'; choose one of mean, max, min"),
        (lambda: rollout_per_layer(_LAYERS, head_fusion="sum"), r"Unknown head fusion 'sum'"),
        (lambda: attention_map(_LAYERS, 1, head_fusion="median"), r"Unknown head fusion 'median'"),
        (lambda: rollout(_LAYERS, up_to_layer=0), r"Layer 0 is out of range: this model has layers 1 to 3"),
        (lambda: rollout(_LAYERS, up_to_layer=4), r"Layer 4 is out of range: this model has layers 1 to 3"),
        (lambda: rollout(_LAYERS, up_to_layer=True), r"out of range"),
        (lambda: grad_rollout(_LAYERS, _GRADIENTS, up_to_layer=4), r"Layer 4 is out of range"),
        (lambda: attention_map(_LAYERS, 0), r"Layer 0 is out of range: this model has layers 1 to 3"),
        (lambda: attention_map(_LAYERS, 4), r"Layer 4 is out of range"),
        (lambda: head_maps(_LAYERS, 0), r"Layer 0 is out of range"),
        (lambda: head_maps(_LAYERS, 4), r"Layer 4 is out of range"),
        (lambda: attention_map(_LAYERS, 1, head=5), r"Head 5 is out of range: this layer has heads 1 to 4"),
        (lambda: attention_map(_LAYERS, 1, head=0), r"Head 0 is out of range: this layer has heads 1 to 4"),
        (lambda: rollout([]), r"No attention layers given"),
        (lambda: rollout(()), r"No attention layers given"),
        (lambda: grad_rollout([], []), r"No attention layers given"),
        (lambda: head_maps([], 1), r"No attention layers given"),
        (lambda: rollout(_LAYERS, grid_size=(3, 5)), r"A 3x5 grid does not fit 16 patch tokens"),
        (lambda: rollout(_LAYERS, num_prefix_tokens=2), r"15 patch tokens do not form a square grid; pass grid_size"),
        (lambda: rollout(_LAYERS, num_prefix_tokens=0), r"num_prefix_tokens must be between 1 and 16"),
        (lambda: rollout(_LAYERS, num_prefix_tokens=17), r"num_prefix_tokens must be between 1 and 16"),
        (lambda: attention_map(_LAYERS, 1, grid_size=(2, 2)), r"A 2x2 grid does not fit 16 patch tokens"),
        (lambda: rollout([_LAYERS[0], _LAYERS[1][:, :16, :16]]), r"same number of tokens"),
        (
            lambda: rollout([_LAYERS[0][:, :, :16]]),
            r"Layer 1 has shape \(4, 17, 16\); expected \(heads, tokens, tokens\)",
        ),
        (lambda: rollout([_LAYERS[0][0]]), r"Layer 1 has shape \(17, 17\); expected \(heads, tokens, tokens\)"),
        (lambda: rollout([np.stack([_LAYERS[0], _LAYERS[0]])]), r"expected \(heads, tokens, tokens\)"),
        (lambda: grad_rollout(_LAYERS, _GRADIENTS[:2]), r"same number of layers and the same shapes"),
        (lambda: grad_rollout(_LAYERS, [g[:2] for g in _GRADIENTS]), r"same number of layers and the same shapes"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_inputs_raise_a_value_error_that_says_what_to_do(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- tiny models: folders written by save_pretrained, loaded by the engine's real loader -----------------------


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run each op in microseconds; on a shared 2-core machine, OpenMP threads waiting for each
    other make that milliseconds (100x slower). One thread, for this module only."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _save_vit(kwargs: dict, folder: Path, seed: int, image_size, processor_size: dict, with_head=True) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel

    kwargs["image_size"] = image_size
    torch.manual_seed(seed)
    if with_head:
        model = ViTForImageClassification(ViTConfig(**kwargs))
    else:
        for key in ("num_labels", "id2label", "label2id"):
            kwargs.pop(key)
        model = ViTModel(ViTConfig(**kwargs))
    model.save_pretrained(folder)
    ViTImageProcessor(size=processor_size).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vit_backbone_dir(tmp_path_factory, tiny_config) -> Path:
    """A backbone-only checkpoint: ViTModel, architectures ["ViTModel"], no classifier head."""
    folder = _save_vit(
        tiny_config(), tmp_path_factory.mktemp("tiny-vit-backbone"), 2, 32, {"height": 32, "width": 32}, with_head=False
    )
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["ViTModel"]
    return folder


@pytest.fixture(scope="module")
def tiny_resnet_dir(tmp_path_factory) -> Path:
    """A tiny convolutional classifier (no attention at all)."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(3)
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=len(TINY_LABELS),
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: index for index, label in enumerate(TINY_LABELS)},
    )
    folder = tmp_path_factory.mktemp("tiny-resnet")
    ResNetForImageClassification(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vit_wide_dir(tmp_path_factory, tiny_config) -> Path:
    """A ViT trained (here: built) at 32x48 (height x width), its processor resizing to 32x48."""
    return _save_vit(tiny_config(), tmp_path_factory.mktemp("tiny-vit-32x48"), 4, [32, 48], {"height": 32, "width": 48})


@pytest.fixture(scope="module")
def tiny_vit_resized_dir(tmp_path_factory, tiny_config) -> Path:
    """A square 32x32 ViT whose processor was set to 32x48: the position embeddings must be interpolated."""
    return _save_vit(tiny_config(), tmp_path_factory.mktemp("tiny-vit-32-at-32x48"), 5, 32, {"height": 32, "width": 48})


@pytest.fixture(scope="module")
def tiny_vit_48_dir(tmp_path_factory, tiny_config) -> Path:
    """The 384-style case in small: image_size 48, patch 8, so a 6x6 grid (never a hard-coded 14x14)."""
    return _save_vit(tiny_config(), tmp_path_factory.mktemp("tiny-vit-48"), 6, 48, {"height": 48, "width": 48})


@pytest.fixture(scope="module")
def models(tiny_vit_dir, tiny_deit_dir, tiny_labels) -> dict[str, Path]:
    assert tuple(tiny_labels) == TINY_LABELS
    return {"vit": tiny_vit_dir, "deit": tiny_deit_dir}


def config_grid(model_dir: Path) -> tuple[int, int]:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    size, patch = config["image_size"], config["patch_size"]
    height, width = (size, size) if isinstance(size, int) else size
    return height // patch, width // patch


@lru_cache(maxsize=None)
def transformers_model(model_dir: str):
    """The same checkpoint loaded with plain transformers (eager attention, fp32) and its processor."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

    architectures = AutoConfig.from_pretrained(model_dir).architectures
    auto = AutoModelForImageClassification if "ForImageClassification" in architectures[0] else AutoModel
    model = auto.from_pretrained(model_dir, attn_implementation="eager").eval()
    assert model.dtype == torch.float32
    return model, AutoImageProcessor.from_pretrained(model_dir)


def direct_forward(model_dir: Path, array: np.ndarray, target: int | None = None, interpolate: bool = False):
    """Attentions, hidden states, logits and (for a target) d logit / d attention, straight from transformers."""
    model, processor = transformers_model(str(model_dir))
    pixel_values = processor(images=[Image.fromarray(array).convert("RGB")], return_tensors="pt")["pixel_values"]
    extra = {"interpolate_pos_encoding": True} if interpolate else {}
    with torch.enable_grad():
        outputs = model(pixel_values=pixel_values, output_attentions=True, output_hidden_states=True, **extra)
        gradients = None
        if target is not None:
            gradients = torch.autograd.grad(outputs.logits[0, target], outputs.attentions)
    return outputs, gradients


# --- explain() on tiny ViT and DeiT with real photos -----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name, prefix", [("vit", 1), ("deit", 2)])
def test_explain_on_real_photos_gives_a_grid_map_an_overlay_and_the_classifiers_predictions(
    models, photos, name, prefix, method
):
    model_dir = str(models[name])
    grid = config_grid(models[name])
    assert grid == (4, 4)
    for photo in PHOTOS:
        array = photos[photo]
        result = explain(array, model=model_dir, method=method, discard_ratio=0.5, precision="fp32")
        assert result.heatmap.shape == grid and result.grid_size == grid
        assert not np.isnan(result.heatmap).any()
        assert result.heatmap.min() >= 0 and result.heatmap.max() == pytest.approx(1.0)
        assert isinstance(result.overlay, Image.Image) and result.overlay.mode == "RGB"
        assert result.overlay.size == (array.shape[1], array.shape[0])
        assert result.method == method and result.num_prefix_tokens == prefix
        assert result.num_layers == 2 and result.num_heads == 2
        assert len(result.layer_maps) == 2 and all(m.shape == grid for m in result.layer_maps)
        assert result.head_maps.shape == (2, *grid)
        assert result.model_input.size == (32, 32)
        expected = classify(array, model=model_dir, top_k=5, precision="fp32")
        assert [p.label for p in result.predictions] == [p.label for p in expected]
        for got, want in zip(result.predictions, expected):
            assert got.score == pytest.approx(want.score, abs=FP32_TOLERANCE)
        if method == "grad_rollout":
            assert result.target == expected[0].label  # default target: the top label
        else:
            assert result.target is None


@pytest.mark.parametrize("name", ["vit", "deit"])
def test_explain_top_k_and_default_discard_ratio_never_give_nan(models, chelsea, name):
    """With 16 patches a 0.9 discard may zero the whole map; it must then be all zeros, not NaN."""
    result = explain(chelsea, model=str(models[name]), top_k=2)
    assert len(result.predictions) == 2
    assert not np.isnan(result.heatmap).any()
    assert result.heatmap.max() in (0.0, pytest.approx(1.0))
    assert result.overlay.size == (chelsea.shape[1], chelsea.shape[0])


@pytest.mark.parametrize("discard_ratio", [0.0, 0.5])
@pytest.mark.parametrize("name, prefix", [("vit", 1), ("deit", 2)])
@pytest.mark.parametrize("photo", ["chelsea", "astronaut", "camera"])
def test_explain_rollout_equals_rollout_of_attentions_from_transformers(
    models, photos, name, prefix, photo, discard_ratio
):
    outputs, _ = direct_forward(models[name], photos[photo])
    attentions = [attention.detach() for attention in outputs.attentions]
    result = explain(
        photos[photo], model=str(models[name]), method="rollout", discard_ratio=discard_ratio, precision="fp32"
    )
    np.testing.assert_allclose(
        result.heatmap, rollout(attentions, discard_ratio=discard_ratio, num_prefix_tokens=prefix), atol=FP32_TOLERANCE
    )
    np.testing.assert_allclose(
        result.heatmap, reference_rollout(attentions, "mean", discard_ratio, prefix), atol=FP32_TOLERANCE
    )
    for index, layer_map in enumerate(result.layer_maps, start=1):
        np.testing.assert_allclose(
            layer_map, reference_rollout(attentions[:index], "mean", discard_ratio, prefix), atol=FP32_TOLERANCE
        )
    last = attentions[-1][0].numpy()
    max_scaled = explain(
        photos[photo],
        model=str(models[name]),
        method="rollout",
        discard_ratio=discard_ratio,
        precision="fp32",
        scaling="max",
    )
    assert result.scaling == "max" and result.head_scaling == "minmax"
    for head in range(2):
        row = last[head, 0, prefix:].reshape(4, 4)
        # The per-head maps are stretched min to max by default; asked for, divided by their max.
        np.testing.assert_allclose(result.head_maps[head], _minmax(row), atol=MINMAX_TOLERANCE)
        np.testing.assert_allclose(max_scaled.head_maps[head], row / row.max(), atol=FP32_TOLERANCE)
        assert result.head_ranges[head] == pytest.approx((row.min(), row.max()), abs=FP32_TOLERANCE)
    np.testing.assert_allclose(max_scaled.heatmap, result.heatmap)


@pytest.mark.parametrize("name, prefix", [("vit", 1), ("deit", 2)])
def test_explain_raw_attention_of_a_layer_and_head_is_transformers_cls_row(models, chelsea, name, prefix):
    outputs, _ = direct_forward(models[name], chelsea)
    for layer in (1, 2):
        weights = outputs.attentions[layer - 1][0].detach().numpy()
        for head in (0, 1):
            result = explain(
                chelsea, model=str(models[name]), method="attention", layer=layer, head=head + 1, precision="fp32"
            )
            row = weights[head, 0, prefix:].reshape(4, 4)
            np.testing.assert_allclose(result.heatmap, _minmax(row), atol=MINMAX_TOLERANCE)
            assert result.scaling == "minmax"
            assert result.value_range == pytest.approx((row.min(), row.max()), abs=FP32_TOLERANCE)
        fused = explain(
            chelsea,
            model=str(models[name]),
            method="attention",
            layer=layer,
            head_fusion="max",
            precision="fp32",
            scaling="max",
        )
        row = weights[:, 0, prefix:].max(axis=0).reshape(4, 4)
        np.testing.assert_allclose(fused.heatmap, row / row.max(), atol=FP32_TOLERANCE)
        assert fused.scaling == "max"
        rolled = explain(chelsea, model=str(models[name]), layer=layer, discard_ratio=0, precision="fp32")
        np.testing.assert_allclose(rolled.heatmap, rolled.layer_maps[layer - 1], atol=1e-12)


@pytest.mark.parametrize("name, prefix", [("vit", 1), ("deit", 2)])
def test_explain_grad_rollout_equals_chefer_on_transformers_gradients(models, astronaut_and_chelsea, name, prefix):
    for array in astronaut_and_chelsea:
        for target in (0, 3):
            outputs, gradients = direct_forward(models[name], array, target=target)
            expected = reference_grad_rollout([a.detach() for a in outputs.attentions], gradients, prefix)
            result = explain(array, model=str(models[name]), method="grad_rollout", target=target, precision="fp32")
            assert result.target == TINY_LABELS[target]
            np.testing.assert_allclose(result.heatmap, expected, atol=FP32_TOLERANCE)


@pytest.fixture(scope="module")
def astronaut_and_chelsea(photos):
    return [photos["astronaut"], photos["chelsea"]]


@pytest.mark.parametrize("name", ["vit", "deit"])
def test_grad_rollout_depends_on_the_target_class_and_takes_a_name_or_an_index(models, chelsea, name):
    model_dir = str(models[name])
    maps = [
        explain(chelsea, model=model_dir, method="grad_rollout", target=index, precision="fp32").heatmap
        for index in range(len(TINY_LABELS))
    ]
    assert not np.allclose(maps[1], maps[2], atol=1e-3)
    for index, label in enumerate(TINY_LABELS):
        by_name = explain(chelsea, model=model_dir, method="grad_rollout", target=label, precision="fp32")
        assert by_name.target == label
        np.testing.assert_array_equal(by_name.heatmap, maps[index])
    default = explain(chelsea, model=model_dir, method="grad_rollout", precision="fp32")
    top = TINY_LABELS.index(default.predictions[0].label)
    np.testing.assert_array_equal(default.heatmap, maps[top])


@pytest.mark.parametrize(
    "target, message",
    [
        ("zebra", r"'zebra' is not one of this model's labels \(e\.g\. tabby cat, astronaut, coffee cup\)"),
        (5, r"Class index 5 is out of range: this model has classes 0 to 4"),
        (-1, r"Class index -1 is out of range"),
    ],
)
def test_grad_rollout_unknown_target_is_a_value_error(tiny_vit_dir, chelsea, target, message):
    with pytest.raises(ValueError, match=message):
        explain(chelsea, model=str(tiny_vit_dir), method="grad_rollout", target=target)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="gradcam"), r"Unknown method 'gradcam'; choose one of rollout, grad_rollout, attention"),
        (dict(head_fusion="median"), r"Unknown head fusion 'median'"),
        (dict(discard_ratio=1.0), r"discard_ratio must be at least 0 and below 1"),
        (dict(discard_ratio=-0.1), r"discard_ratio must be at least 0 and below 1"),
        (dict(layer=0), r"Layer 0 is out of range: this model has layers 1 to 2"),
        (dict(layer=3), r"Layer 3 is out of range: this model has layers 1 to 2"),
        (dict(method="attention", layer=0), r"Layer 0 is out of range: this model has layers 1 to 2"),
        (dict(method="attention", layer=3), r"Layer 3 is out of range"),
        (dict(method="grad_rollout", layer=0), r"Layer 0 is out of range"),
        (dict(method="grad_rollout", layer=3), r"Layer 3 is out of range"),
        (dict(method="attention", head=3), r"Head 3 is out of range: this layer has heads 1 to 2"),
        (dict(alpha=1.5), r"alpha \(opacity\) must be between 0 and 1"),
        (dict(cmap="rainbowz"), r"Unknown colormap 'rainbowz'"),
    ],
)
def test_explain_bad_arguments_raise_value_errors(tiny_vit_dir, chelsea, kwargs, message):
    with pytest.raises(ValueError, match=message):
        explain(chelsea, model=str(tiny_vit_dir), **kwargs)


def test_explain_in_bf16_still_gives_a_map_in_range(tiny_vit_dir, chelsea):
    for method in METHODS:
        result = explain(chelsea, model=str(tiny_vit_dir), method=method, discard_ratio=0.5, precision="bf16")
        assert result.heatmap.shape == (4, 4) and result.heatmap.dtype == np.float64
        assert not np.isnan(result.heatmap).any() and result.heatmap.max() == pytest.approx(1.0)
        assert len(result.predictions) == 5


# --- models that are not plain classifiers --------------------------------------------------------------------


def test_a_backbone_without_head_explains_with_no_predictions(tiny_vit_backbone_dir, chelsea):
    model_dir = str(tiny_vit_backbone_dir)
    outputs, _ = direct_forward(tiny_vit_backbone_dir, chelsea)
    for method in ("rollout", "attention"):
        result = explain(chelsea, model=model_dir, method=method, discard_ratio=0, precision="fp32")
        assert result.predictions == () and result.target is None
        assert result.heatmap.shape == (4, 4) and result.heatmap.max() == pytest.approx(1.0)
        assert result.head_maps.shape == (2, 4, 4)
        assert result.num_prefix_tokens == 1
    rolled = explain(chelsea, model=model_dir, discard_ratio=0, precision="fp32")
    np.testing.assert_allclose(
        rolled.heatmap, reference_rollout([a.detach() for a in outputs.attentions]), atol=FP32_TOLERANCE
    )


def test_grad_rollout_on_a_backbone_says_there_is_no_classifier_head(tiny_vit_backbone_dir, chelsea):
    with pytest.raises(ValueError, match="no classifier head"):
        explain(chelsea, model=str(tiny_vit_backbone_dir), method="grad_rollout")


@pytest.mark.parametrize("method", METHODS)
def test_a_convolutional_classifier_has_no_attention_but_still_classifies(tiny_resnet_dir, chelsea, method):
    with pytest.raises(NoAttentionError, match="convolutional") as raised:
        explain(chelsea, model=str(tiny_resnet_dir), method=method)
    assert isinstance(raised.value, ValueError)
    assert "ResNetConfig" in str(raised.value) and "ViT" in str(raised.value)
    predictions = classify(chelsea, model=str(tiny_resnet_dir), top_k=3)
    assert len(predictions) == 3 and {p.label for p in predictions} <= set(TINY_LABELS)


# --- grids other than 4x4 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture, interpolate", [("tiny_vit_wide_dir", False), ("tiny_vit_resized_dir", True)])
def test_a_non_square_input_gives_a_non_square_grid(request, photos, fixture, interpolate):
    model_dir = request.getfixturevalue(fixture)
    for photo in ("chelsea", "astronaut"):
        array = photos[photo]
        for method in METHODS:
            result = explain(array, model=str(model_dir), method=method, discard_ratio=0, precision="fp32")
            assert result.heatmap.shape == (4, 6) and result.grid_size == (4, 6)
            assert result.heatmap.max() == pytest.approx(1.0) and result.heatmap.min() >= 0
            assert result.head_maps.shape == (2, 4, 6) and all(m.shape == (4, 6) for m in result.layer_maps)
            assert result.model_input.size == (48, 32)
            assert result.overlay.size == (array.shape[1], array.shape[0])
            assert result.num_prefix_tokens == 1
        outputs, _ = direct_forward(model_dir, array, interpolate=interpolate)
        rolled = explain(array, model=str(model_dir), discard_ratio=0, precision="fp32")
        np.testing.assert_allclose(
            rolled.heatmap,
            reference_rollout([a.detach() for a in outputs.attentions], grid_size=(4, 6)),
            atol=FP32_TOLERANCE,
        )


def test_a_natively_non_square_model_classifies_like_it_explains(tiny_vit_wide_dir, chelsea):
    result = explain(chelsea, model=str(tiny_vit_wide_dir), discard_ratio=0, precision="fp32")
    expected = classify(chelsea, model=str(tiny_vit_wide_dir), precision="fp32")
    assert [p.label for p in result.predictions] == [p.label for p in expected]


def test_a_384_style_model_gets_its_own_grid(tiny_vit_48_dir, photos):
    assert config_grid(tiny_vit_48_dir) == (6, 6)
    for method in METHODS:
        result = explain(
            photos["coffee"], model=str(tiny_vit_48_dir), method=method, discard_ratio=0.5, precision="fp32"
        )
        assert result.heatmap.shape == (6, 6) and result.grid_size == (6, 6)
        assert result.head_maps.shape == (2, 6, 6)
        assert result.heatmap.max() == pytest.approx(1.0)
        assert result.model_input.size == (48, 48)
    outputs, _ = direct_forward(tiny_vit_48_dir, photos["coffee"])
    last = outputs.attentions[-1][0].detach().numpy().mean(axis=0)[0, 1:].reshape(6, 6)
    np.testing.assert_allclose(result.heatmap, _minmax(last), atol=MINMAX_TOLERANCE)  # method "attention"
    rolled = explain(photos["coffee"], model=str(tiny_vit_48_dir), discard_ratio=0.5, precision="fp32")
    np.testing.assert_allclose(
        rolled.heatmap, reference_rollout([a.detach() for a in outputs.attentions], "mean", 0.5), atol=FP32_TOLERANCE
    )
    extracted = features(photos["coffee"], model=str(tiny_vit_48_dir), precision="fp32")
    assert extracted.patches.shape == (6, 6, 32)


# --- overlay() --------------------------------------------------------------------------------------------------


def jet(value: float) -> np.ndarray:
    from matplotlib import colormaps

    return np.round(np.asarray(colormaps["jet"](value)[:3]) * 255)


def test_overlay_has_the_image_size_and_alpha_zero_gives_the_image_back(photos):
    heatmap = np.random.default_rng(0).random((4, 6))
    for name in ("chelsea", "astronaut", "camera"):
        array = photos[name]
        blended = overlay(array, heatmap, alpha=0.0)
        assert isinstance(blended, Image.Image) and blended.mode == "RGB"
        assert blended.size == (array.shape[1], array.shape[0])
        original = np.asarray(Image.fromarray(array).convert("RGB"), dtype=np.int16)
        assert np.abs(np.asarray(blended, dtype=np.int16) - original).max() <= 1
        assert overlay(Image.fromarray(array), heatmap).size == blended.size


def test_overlay_alpha_one_is_pure_colormap_colours_in_the_right_place(chelsea):
    height, width = chelsea.shape[:2]
    uniform = np.asarray(overlay(chelsea, np.full((3, 3), 0.25), alpha=1.0), dtype=np.float64)
    assert np.abs(uniform - jet(0.25)).max() <= 1
    # Top row hot, bottom row cold, on a (2, 3) map: the top of the image is jet(1), the bottom jet(0).
    picture = np.asarray(overlay(chelsea, np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), alpha=1.0), dtype=np.float64)
    assert picture.shape == (height, width, 3)
    assert np.abs(picture[0] - jet(1.0)).max() <= 1
    assert np.abs(picture[-1] - jet(0.0)).max() <= 1
    # Left column hot: the heatmap's columns map to the image's x axis.
    sideways = np.asarray(overlay(chelsea, np.array([[1.0, 0.0, 0.0]] * 2), alpha=1.0), dtype=np.float64)
    assert np.abs(sideways[:, 0] - jet(1.0)).max() <= 1
    assert np.abs(sideways[:, -1] - jet(0.0)).max() <= 1


def test_overlay_half_alpha_blends_image_and_colour(chelsea):
    blended = np.asarray(overlay(chelsea, np.full((2, 2), 1.0), alpha=0.5), dtype=np.float64)
    expected = 0.5 * chelsea.astype(np.float64) + 0.5 * jet(1.0)
    assert np.abs(blended - expected).max() <= 1
    viridis = np.asarray(overlay(chelsea, np.full((2, 2), 1.0), alpha=1.0, cmap="viridis"), dtype=np.float64)
    assert np.abs(viridis - jet(1.0)).max() > 50


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cmap="not-a-colormap"), r"Unknown colormap 'not-a-colormap'"),
        (dict(alpha=-0.1), r"alpha \(opacity\) must be between 0 and 1, not -0\.1"),
        (dict(alpha=1.01), r"alpha \(opacity\) must be between 0 and 1"),
        (dict(heatmap=np.zeros((0, 0))), r"heatmap must be a non-empty 2-D array, not shape \(0, 0\)"),
        (dict(heatmap=np.zeros((4, 0))), r"non-empty 2-D array"),
        (dict(heatmap=np.ones(16)), r"heatmap must be a non-empty 2-D array, not shape \(16,\)"),
        (dict(heatmap=np.ones((2, 4, 4))), r"non-empty 2-D array"),
    ],
)
def test_overlay_bad_arguments_raise_value_errors(chelsea, kwargs, message):
    arguments = dict(heatmap=np.ones((4, 4)), alpha=0.5, cmap="jet") | kwargs
    with pytest.raises(ValueError, match=message):
        overlay(chelsea, **arguments)


# --- features() -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, prefix", [("vit", 1), ("deit", 2)])
def test_features_match_transformers_hidden_states(models, chelsea, name, prefix):
    outputs, _ = direct_forward(models[name], chelsea)
    hidden_states = [state[0].detach().numpy() for state in outputs.hidden_states]
    assert len(hidden_states) == 3
    for layer, index in ((0, 0), (1, 1), (2, 2), (-1, 2)):
        extracted = features(chelsea, model=str(models[name]), layer=layer, precision="fp32")
        assert extracted.layer == index
        assert extracted.cls.shape == (32,) and extracted.patches.shape == (4, 4, 32)
        np.testing.assert_allclose(extracted.cls, hidden_states[index][0], atol=FP32_TOLERANCE)
        np.testing.assert_allclose(
            extracted.patches, hidden_states[index][prefix:].reshape(4, 4, 32), atol=FP32_TOLERANCE
        )
    assert not np.allclose(
        features(chelsea, model=str(models[name]), layer=0, precision="fp32").cls,
        features(chelsea, model=str(models[name]), layer=-1, precision="fp32").cls,
    )


def test_final_norm_features_are_the_models_last_hidden_state(models, chelsea):
    """hidden_states stop before the final layernorm; the tokens DINO reads come after it."""
    outputs, _ = direct_forward(models["vit"], chelsea)
    model, _ = transformers_model(str(models["vit"]))
    normed = features(chelsea, model=str(models["vit"]), final_norm=True, precision="fp32")
    last = model.vit.layernorm(outputs.hidden_states[-1])[0].detach().numpy()
    np.testing.assert_allclose(normed.cls, last[0], atol=FP32_TOLERANCE)
    np.testing.assert_allclose(normed.patches, last[1:].reshape(4, 4, 32), atol=FP32_TOLERANCE)
    plain = features(chelsea, model=str(models["vit"]), precision="fp32")
    assert not np.allclose(plain.patches, normed.patches)
    middle = features(chelsea, model=str(models["vit"]), layer=1, final_norm=True, precision="fp32")
    np.testing.assert_allclose(
        middle.patches, outputs.hidden_states[1][0, 1:].detach().numpy().reshape(4, 4, 32), atol=FP32_TOLERANCE
    )


def test_features_of_a_list_is_a_list_in_order(tiny_vit_dir, photos):
    arrays = [photos["chelsea"], photos["camera"]]
    extracted = features(arrays, model=str(tiny_vit_dir), precision="fp32")
    assert isinstance(extracted, list) and len(extracted) == 2
    for array, one in zip(arrays, extracted):
        np.testing.assert_allclose(
            one.cls, features(array, model=str(tiny_vit_dir), precision="fp32").cls, atol=FP32_TOLERANCE
        )


def test_features_of_a_non_square_model_keep_the_grid(tiny_vit_wide_dir, chelsea):
    extracted = features(chelsea, model=str(tiny_vit_wide_dir), layer=1, precision="fp32")
    assert extracted.patches.shape == (4, 6, 32)


@pytest.mark.parametrize("layer", [3, -2, 10])
def test_features_layer_out_of_range_is_a_value_error(tiny_vit_dir, chelsea, layer):
    with pytest.raises(ValueError, match=rf"Layer {layer} is out of range: use 0 \(embeddings\) to 2, or -1"):
        features(chelsea, model=str(tiny_vit_dir), layer=layer)


# --- patch_grid_image() ------------------------------------------------------------------------------------------


def red_lines(picture: Image.Image) -> tuple[set[int], set[int], np.ndarray]:
    """The columns and rows drawn red from edge to edge, and the red mask."""
    red = (np.asarray(picture) == (255, 0, 0)).all(axis=-1)
    return (
        {x for x in range(red.shape[1]) if red[:, x].all()},
        {y for y in range(red.shape[0]) if red[y, :].all()},
        red,
    )


@pytest.mark.parametrize("size, grid", [((480, 320), (4, 6)), ((224, 224), (14, 14)), ((700, 300), (3, 7))])
def test_patch_grid_image_keeps_the_size_and_draws_lines_between_the_patches(size, grid):
    width, height = size
    rows, columns = grid
    black = Image.new("RGB", size)
    drawn = patch_grid_image(black, grid, colour=(255, 0, 0))
    assert drawn.size == size and drawn.mode == "RGB"
    assert not np.asarray(black).any()  # the input is left alone
    full_columns, full_rows, red = red_lines(drawn)
    assert full_columns == {round(column * width / columns) for column in range(1, columns)}
    assert full_rows == {round(row * height / rows) for row in range(1, rows)}
    # Nothing but the lines: every red pixel is on one of them.
    assert red.sum() == len(full_columns) * height + len(full_rows) * width - len(full_columns) * len(full_rows)


@pytest.mark.parametrize("size, grid", [((48, 32), (4, 6)), ((32, 32), (4, 4))])
def test_patch_grid_image_with_min_side_1_is_the_model_input_size(size, grid):
    drawn = patch_grid_image(Image.new("RGB", size), grid, colour=(255, 0, 0), min_side=1)
    assert drawn.size == size
    full_columns, full_rows, _ = red_lines(drawn)
    assert full_columns == {8 * column for column in range(1, grid[1])}
    assert full_rows == {8 * row for row in range(1, grid[0])}


def test_patch_grid_image_enlarges_a_small_input_by_a_whole_factor_and_keeps_the_pixels(chelsea):
    small = Image.fromarray(chelsea).resize((48, 32))
    drawn = patch_grid_image(small, (4, 6), colour=(255, 0, 0))  # default min_side 224: 32 * 7 = 224
    assert drawn.size == (48 * 7, 32 * 7)
    full_columns, full_rows, red = red_lines(drawn)
    assert full_columns == {56 * column for column in range(1, 6)}  # 8-pixel patches, 7x enlarged
    assert full_rows == {56 * row for row in range(1, 4)}
    enlarged = np.asarray(small.resize(drawn.size, Image.Resampling.NEAREST))
    np.testing.assert_array_equal(np.asarray(drawn)[~red], enlarged[~red])


def test_patch_grid_image_on_explains_model_input(tiny_vit_wide_dir, chelsea):
    result = explain(chelsea, model=str(tiny_vit_wide_dir), discard_ratio=0)
    drawn = patch_grid_image(result.model_input, result.grid_size, min_side=1)
    assert drawn.size == result.model_input.size == (48, 32)
    white = (np.asarray(drawn) == 255).all(axis=-1)
    assert all(white[:, x].all() for x in (8, 16, 24, 32, 40))
    assert all(white[y, :].all() for y in (8, 16, 24))


def test_explain_refuses_a_top_k_below_one_before_any_work(tiny_vit_dir, chelsea):
    for top_k in (0, -1):
        with pytest.raises(ValueError, match="top_k must be a whole number of at least 1"):
            explain(chelsea, model=str(tiny_vit_dir), top_k=top_k)


def test_features_of_a_convolutional_network_say_why_there_are_none(tiny_resnet_dir, chelsea):
    with pytest.raises(NoAttentionError, match="ResNetConfig.*not a Vision Transformer"):
        features(chelsea, model=str(tiny_resnet_dir))


def test_head_grid_captions_count_heads_from_one_like_attention_map(tiny_vit_dir, chelsea):
    from ui.shared.attention import head_grid

    result = explain(chelsea, model=str(tiny_vit_dir), method="attention", head=2, discard_ratio=0.0)
    captions = [caption for _, caption in head_grid(result)]
    assert captions == ["head 1", "head 2"]
    np.testing.assert_allclose(result.heatmap, result.head_maps[1])


def test_a_comparison_keeps_the_class_only_for_the_same_model():
    from ui.shared.attention import comparison_target

    assert (
        comparison_target("tabby cat", "google/vit-base-patch16-224", other_model="google/vit-base-patch16-224")
        == "tabby cat"
    )
    assert (
        comparison_target("tabby cat", "google/vit-base-patch16-224", other_model="facebook/deit-small-patch16-224")
        is None
    )
    assert comparison_target(None, "a", other_model="a") is None


def test_explain_and_features_carry_what_they_ran_on(tiny_vit_dir, photos, empty_model_cache):
    loads: list[str] = []
    result = explain(photos["chelsea"], model=str(tiny_vit_dir), precision="fp32", device="cpu", on_load=loads.append)
    assert loads == [str(tiny_vit_dir.resolve())]
    assert result.run.model == result.model == str(tiny_vit_dir.resolve())
    assert (result.run.device, result.run.dtype) == ("cpu", "float32") and result.run.milliseconds >= 0
    # features() loads the same eager model: a hit, so nothing is announced; each image has its own run
    extracted = features(
        [photos["chelsea"], photos["coffee"]],
        model=str(tiny_vit_dir),
        precision="fp32",
        device="cpu",
        on_load=loads.append,
    )
    assert len(loads) == 1
    assert [item.run.model for item in extracted] == [result.model] * 2
    assert all(item.run.dtype == "float32" and item.run.milliseconds >= 0 for item in extracted)


# ---- controls that follow the model, and maps that show a nearly flat attention ------------------------------

# Min-max scaling divides by the spread, not the max, so fp32 differences grow by max/spread.
MINMAX_TOLERANCE = 1e-3


def _minmax(row: np.ndarray) -> np.ndarray:
    """Min-max scaling; a row with no spread (a tiny random head can attend exactly evenly) divided by its max."""
    spread = row.max() - row.min()
    return (row - row.min()) / spread if spread > 1e-6 * row.max() else row / row.max()


@pytest.fixture(scope="module")
def six_layer_vit_dir(tmp_path_factory) -> Path:
    """A tiny ViT with 6 layers of 3 heads: more than the suite's 2x2, fewer than the sliders' defaults."""
    from conftest import save_tiny_model, tiny_config_kwargs
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(6)
    config = ViTConfig(**{**tiny_config_kwargs(), "num_hidden_layers": 6, "num_attention_heads": 3, "hidden_size": 48})
    return save_tiny_model(ViTForImageClassification(config), tmp_path_factory.mktemp("tiny-vit-6x3"))


def test_attention_shape_reads_layers_and_heads_from_the_config(six_layer_vit_dir, tiny_vit_dir, tiny_deit_dir):
    from core import AttentionShape, attention_shape

    assert attention_shape(str(six_layer_vit_dir)) == AttentionShape(num_layers=6, num_heads=3)
    assert attention_shape(str(tiny_vit_dir)) == attention_shape(str(tiny_deit_dir)) == AttentionShape(2, 2)
    # the counts explain() then reports, from a forward pass
    result = explain(np.zeros((32, 32, 3), np.uint8), model=str(six_layer_vit_dir), precision="fp32")
    assert (result.num_layers, result.num_heads, len(result.head_maps)) == (6, 3, 3)


def test_attention_shape_is_none_when_the_config_is_not_here_or_has_no_single_count(tmp_path, tiny_resnet_dir):
    from core import attention_shape

    assert attention_shape(str(tmp_path / "no-such-model")) is None
    assert attention_shape("someone/not-downloaded-vit") is None  # the Hub is off in tests: nothing local
    assert attention_shape(str(tiny_resnet_dir)) is None  # a CNN has no attention heads
    assert attention_shape("") is None


def test_minmax_scaling_of_a_nearly_flat_map_spans_zero_to_one():
    nearly_flat = np.full((4, 4), 1 / 17) + np.linspace(0, 1e-4, 16).reshape(4, 4)
    stretched = scale_map(nearly_flat, "minmax")
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    assert np.ptp(scale_map(nearly_flat, "max")) < 0.002  # what max scaling shows: one solid colour
    np.testing.assert_allclose(stretched, _minmax(nearly_flat))
    # no spread at all: nothing to stretch, and no NaN
    assert (scale_map(np.full((2, 2), 0.25), "minmax") == 1.0).all()
    assert (scale_map(np.zeros((2, 2)), "minmax") == 0.0).all()
    with pytest.raises(ValueError, match="Unknown scaling 'log'; choose one of max, minmax"):
        scale_map(nearly_flat, "log")


def test_explain_stretches_a_nearly_flat_raw_map_and_keeps_its_raw_range(tiny_vit_dir, chelsea, monkeypatch):
    """Nearly uniform CLS attention (as a ViT's early layers give): the raw map fills the colour range."""
    import core.attention as attention

    real_forward = attention._forward

    def flattened(*args, **kwargs):
        forward = real_forward(*args, **kwargs)
        tokens = forward.attentions[0].shape[-1]
        ramp = np.linspace(-1e-4, 1e-4, tokens)
        flat = [np.broadcast_to(1 / tokens + ramp, layer.shape).copy() for layer in forward.attentions]
        return attention._ForwardPass(**{**forward.__dict__, "attentions": flat})

    monkeypatch.setattr(attention, "_forward", flattened)
    raw = explain(chelsea, model=str(tiny_vit_dir), method="attention", precision="fp32")
    assert raw.scaling == "minmax" and raw.heatmap.min() == 0.0 and raw.heatmap.max() == pytest.approx(1.0)
    assert raw.head_maps.min() == 0.0 and raw.head_maps.max() == pytest.approx(1.0)
    low, high = raw.value_range
    assert low == pytest.approx(1 / 17 - 1e-4 + 2e-4 / 16) and high == pytest.approx(1 / 17 + 1e-4)
    by_max = explain(chelsea, model=str(tiny_vit_dir), method="attention", precision="fp32", scaling="max")
    assert by_max.heatmap.min() > 0.99  # the solid colour the issue saw
    assert by_max.value_range == raw.value_range
    with pytest.raises(ValueError, match="Unknown scaling 'log'"):
        explain(chelsea, model=str(tiny_vit_dir), scaling="log")


def test_rollout_keeps_its_max_scaling_by_default(tiny_vit_dir, chelsea):
    result = explain(chelsea, model=str(tiny_vit_dir), discard_ratio=0.0, precision="fp32")
    assert result.scaling == "max" and result.heatmap.max() == pytest.approx(1.0) and result.heatmap.min() > 0
    low, high = result.value_range
    np.testing.assert_allclose(result.heatmap, result.layer_maps[-1])
    assert result.heatmap.min() == pytest.approx(low / high)


# ---- live redraw: the maps drawn again from the kept attentions, with no model -----------------------------------


def _assert_same_maps(redrawn, fresh) -> None:
    assert redrawn.method == fresh.method and redrawn.target == fresh.target
    assert (redrawn.scaling, redrawn.head_scaling) == (fresh.scaling, fresh.head_scaling)
    np.testing.assert_allclose(redrawn.heatmap, fresh.heatmap)
    assert len(redrawn.layer_maps) == len(fresh.layer_maps)
    for redrawn_map, fresh_map in zip(redrawn.layer_maps, fresh.layer_maps):
        np.testing.assert_allclose(redrawn_map, fresh_map)
    np.testing.assert_allclose(redrawn.head_maps, fresh.head_maps)
    np.testing.assert_allclose(redrawn.value_range, fresh.value_range)
    np.testing.assert_allclose(redrawn.head_ranges, fresh.head_ranges)
    assert redrawn.overlay.size == fresh.overlay.size
    np.testing.assert_allclose(np.asarray(redrawn.overlay, np.int16), np.asarray(fresh.overlay, np.int16), atol=1)


@pytest.fixture
def no_model(monkeypatch):
    """After the first explain: no model in the cache, and any load or forward pass fails the test."""
    import core.attention as attention
    from core import models

    def refuse(*args, **kwargs):
        raise AssertionError("redraw must not load a model or run a forward pass")

    def forbid() -> None:
        models.clear_cache()
        monkeypatch.setattr(attention, "load_explainable", refuse)
        monkeypatch.setattr(attention, "_forward", refuse)
        monkeypatch.setattr(models, "load_explainable", refuse)

    return forbid


SIX_LAYER_SETTINGS = [
    dict(method="rollout", discard_ratio=0.0),
    dict(method="rollout", discard_ratio=0.5, layer=2),
    dict(method="rollout", discard_ratio=0.9, layer=4, head_fusion="max"),
    dict(method="rollout", discard_ratio=0.3, layer=6, head_fusion="min", scaling="minmax"),
    dict(method="attention", layer=1, head=1),
    dict(method="attention", layer=3, head=2),
    dict(method="attention", layer=6, head=3, scaling="max"),
    dict(method="attention", layer=5, head=None, head_fusion="max"),
    dict(method="rollout", discard_ratio=0.9, alpha=0.0, cmap="viridis"),
    dict(method="attention", layer=2, head=3, alpha=1.0, cmap="magma"),
    dict(method="rollout", discard_ratio=0.1, layer=3, alpha=0.25, cmap="inferno"),
]


def test_redraw_gives_the_maps_a_fresh_explain_gives_without_touching_the_model(six_layer_vit_dir, chelsea, no_model):
    from core import redraw

    model = str(six_layer_vit_dir)
    fresh = [explain(chelsea, model=model, precision="fp32", **settings) for settings in SIX_LAYER_SETTINGS]
    stored = explain(chelsea, model=model, precision="fp32")  # default settings, as the Explain button gives
    assert len(stored.attentions) == 6 and all(a.shape == (3, 17, 17) for a in stored.attentions)
    assert all(a.dtype == np.float32 for a in stored.attentions) and stored.gradients == ()
    no_model()
    for settings, expected in zip(SIX_LAYER_SETTINGS, fresh):
        redrawn = redraw(stored, **settings)
        _assert_same_maps(redrawn, expected)
        # what the pass gave stays: predictions, the input, the timing
        assert redrawn.predictions == stored.predictions and redrawn.run == stored.run
        assert redrawn.model_input is stored.model_input and redrawn.attentions is stored.attentions
    # a redrawn explanation redraws again: back to the stored settings gives the stored maps
    _assert_same_maps(redraw(redraw(stored, method="attention", layer=2, head=1), method="rollout"), stored)


def test_opacity_and_colormap_change_only_the_overlay(six_layer_vit_dir, chelsea, no_model):
    from core import redraw

    stored = explain(chelsea, model=str(six_layer_vit_dir), precision="fp32", discard_ratio=0.5)
    no_model()
    clear = redraw(stored, discard_ratio=0.5, alpha=0.0)
    assert np.array_equal(np.asarray(clear.overlay), np.asarray(Image.fromarray(chelsea).convert("RGB")))
    for alpha, cmap in [(1.0, "jet"), (0.8, "viridis"), (0.3, "turbo")]:
        redrawn = redraw(stored, discard_ratio=0.5, alpha=alpha, cmap=cmap)
        np.testing.assert_array_equal(redrawn.heatmap, stored.heatmap)
        np.testing.assert_array_equal(
            np.asarray(redrawn.overlay), np.asarray(overlay(chelsea, stored.heatmap, alpha, cmap))
        )
        assert not np.array_equal(np.asarray(redrawn.overlay), np.asarray(stored.overlay))


def test_redraw_of_gradient_rollout_keeps_its_class_and_switches_methods(tiny_vit_dir, chelsea, no_model):
    from core import redraw

    model = str(tiny_vit_dir)
    fresh = {
        "grad": explain(chelsea, model=model, method="grad_rollout", target=1, precision="fp32"),
        "grad1": explain(chelsea, model=model, method="grad_rollout", target=1, layer=1, precision="fp32"),
        "rollout": explain(chelsea, model=model, discard_ratio=0.2, precision="fp32"),
        "head": explain(chelsea, model=model, method="attention", layer=1, head=2, precision="fp32"),
    }
    stored = explain(chelsea, model=model, method="grad_rollout", target="astronaut", precision="fp32")
    plain = explain(chelsea, model=model, precision="fp32")
    assert len(stored.gradients) == len(stored.attentions) == 2 and stored.gradient_target == "astronaut"
    no_model()
    _assert_same_maps(redraw(stored), fresh["grad"])
    _assert_same_maps(redraw(stored, layer=1), fresh["grad1"])
    to_rollout = redraw(stored, method="rollout", discard_ratio=0.2)
    _assert_same_maps(to_rollout, fresh["rollout"])
    assert to_rollout.target is None
    _assert_same_maps(redraw(stored, method="attention", layer=1, head=2), fresh["head"])
    _assert_same_maps(redraw(to_rollout, method="grad_rollout"), fresh["grad"])  # the gradients stay kept
    # explain() runs a backward pass only for gradient rollout, so another method's explanation cannot switch to it
    with pytest.raises(ValueError, match="Gradient rollout needs a backward pass .* press Explain"):
        redraw(plain, method="grad_rollout")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(layer=7), "Layer 7 is out of range: this model has layers 1 to 6"),
        (dict(layer=0), "Layer 0 is out of range: this model has layers 1 to 6"),
        (dict(method="attention", layer=2, head=4), "Head 4 is out of range: this layer has heads 1 to 3"),
        (dict(discard_ratio=1.0), "discard_ratio must be at least 0 and below 1"),
        (dict(head_fusion="median"), "Unknown head fusion 'median'"),
        (dict(method="gradcam"), "Unknown method 'gradcam'"),
        (dict(scaling="log"), "Unknown scaling 'log'"),
        (dict(alpha=1.5), r"alpha \(opacity\) must be between 0 and 1"),
        (dict(cmap="rainbowz"), "Unknown colormap 'rainbowz'"),
    ],
)
def test_redraw_refuses_what_explain_refuses_with_the_same_message(six_layer_vit_dir, chelsea, settings, message):
    from core import redraw

    stored = explain(chelsea, model=str(six_layer_vit_dir), precision="fp32")
    with pytest.raises(ValueError, match=message):
        redraw(stored, **settings)
    with pytest.raises(ValueError, match=message):
        explain(chelsea, model=str(six_layer_vit_dir), precision="fp32", **settings)
