"""Token merging (ToMe) on real tiny ViT-family models: the matching on hand-made tokens, the patched forward,
the source maps, the context manager's clean-up and the `python -m bench prune --quick` smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.classify import preprocess
from core.models import load_classifier
from core.token_merging import (
    MergePoint,
    MergeResult,
    agreement_curve,
    bipartite_soft_matching,
    max_merge,
    merged_logits,
    merging,
    token_merging,
)

# Tiny models: 32x32 input, 8x8 patches -> 16 patches + CLS (+ distillation token for DeiT), 2 layers.
PATCHES = 16


def hand_made_keys() -> torch.Tensor:
    """CLS, then 6 patch tokens alternating into A (1, 3, 5) and B (2, 4, 6). Token 3 is an exact copy of B token 4;
    the CLS key equals token 2's, so a matcher that let CLS in would merge it first."""
    return torch.tensor(
        [
            [0.0, 1.0, 0.0],  # 0 CLS
            [1.0, 0.0, 0.0],  # 1 A
            [0.0, 1.0, 0.0],  # 2 B
            [0.0, 0.0, 1.0],  # 3 A, identical to 4
            [0.0, 0.0, 1.0],  # 4 B
            [1.0, 0.3, -0.2],  # 5 A, close to nothing in B
            [-1.0, -1.0, 0.0],  # 6 B
        ]
    )


def test_two_identical_tokens_merge_first():
    matching = bipartite_soft_matching(hand_made_keys(), 1, prefix_tokens=1)
    destination = matching.destination[0].tolist()
    assert matching.merged == 1 and matching.tokens_after == 6
    assert destination[3] == destination[4]  # the identical pair shares a token
    assert len(set(destination)) == 6  # everything else kept its own


def test_cls_is_never_merged_and_keeps_index_zero():
    for r in range(0, 4):
        destination = bipartite_soft_matching(hand_made_keys(), r, prefix_tokens=1).destination[0].tolist()
        assert destination[0] == 0
        assert destination.count(0) == 1


def test_sizes_add_and_the_merge_is_size_weighted():
    matching = bipartite_soft_matching(hand_made_keys(), 1, prefix_tokens=1)
    x = torch.arange(7, dtype=torch.float32).view(1, 7, 1)
    sizes = torch.tensor([1.0, 1, 1, 3, 1, 1, 1]).view(1, 7, 1)  # token 3 already stands for 3 patches
    merged, merged_sizes = matching.merge(x, sizes)
    target = int(matching.destination[0, 3])
    assert merged_sizes[0, target, 0] == 4
    assert merged[0, target, 0] == pytest.approx((3 * 3 + 4 * 1) / 4)
    assert merged_sizes.sum() == sizes.sum()


@pytest.mark.parametrize("r", [0, 1, 2, 3])
def test_token_count_drops_by_exactly_r(r):
    keys = torch.randn(2, 17, 8)
    matching = bipartite_soft_matching(keys, r, prefix_tokens=1)
    assert matching.tokens_after == 17 - r
    assert all(sorted(set(row.tolist())) == list(range(17 - r)) for row in matching.destination)


def test_r_is_clamped_to_half_the_patch_tokens_and_negative_r_is_refused():
    assert max_merge(17, prefix_tokens=1) == 8
    assert bipartite_soft_matching(torch.randn(17, 4), 100, prefix_tokens=1).tokens_after == 9
    with pytest.raises(ValueError, match="at least 0"):
        bipartite_soft_matching(torch.randn(17, 4), -1)


def _pixels(model_dir, photos, precision="fp32"):
    loaded = load_classifier(str(model_dir), device="cpu", precision=precision)
    return loaded, preprocess(loaded, [photos["chelsea"], photos["astronaut"], photos["coffee"]])


def test_r_zero_gives_the_plain_models_logits(tiny_vit_dir, photos):
    loaded, pixels = _pixels(tiny_vit_dir, photos)
    plain = merged_logits(loaded, pixels, None)
    with merging(loaded.model, 0) as state:
        merged = merged_logits(loaded, pixels, None)
    assert state.tokens_per_layer == [PATCHES + 1, PATCHES + 1]  # the patched path did run
    torch.testing.assert_close(merged, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("fixture", "prefix"), [("tiny_vit_dir", 1), ("tiny_deit_dir", 2)])
def test_merged_forward_counts_tokens_and_maps_every_patch_once(fixture, prefix, photos, request):
    model_dir = request.getfixturevalue(fixture)
    result = token_merging(photos["chelsea"], str(model_dir), r=3, device="cpu", precision="fp32")
    assert isinstance(result, MergeResult)
    tokens = PATCHES + prefix
    assert result.num_prefix_tokens == prefix and result.tokens_before == tokens
    assert result.tokens_per_layer == (tokens - 3, tokens - 6)
    assert len(result.predictions) == len(result.full_predictions) == 5
    for layer, source_map in enumerate(result.source_maps):
        assert source_map.shape == result.grid_size == (4, 4)
        # Every patch sits in exactly one token, and every remaining patch token holds at least one patch.
        assert sorted(np.unique(source_map)) == list(range(result.tokens_per_layer[layer] - prefix))
    # Merging only joins: patches together after layer 1 stay together after layer 2.
    first, second = result.source_maps
    for token in np.unique(first):
        assert len(np.unique(second[first == token])) == 1


def test_merging_changes_the_logits_and_the_context_manager_restores_the_model(tiny_vit_dir, photos):
    loaded, pixels = _pixels(tiny_vit_dir, photos)
    before = merged_logits(loaded, pixels, None)
    merged = merged_logits(loaded, pixels, 4)
    assert not torch.allclose(merged, before)
    assert all("forward" not in vars(layer) for layer in loaded.model.vit.layers)
    torch.testing.assert_close(merged_logits(loaded, pixels, None), before, atol=0, rtol=0)


def test_other_threads_run_the_shared_model_unmerged_meanwhile(tiny_vit_dir, photos):
    import threading

    loaded, pixels = _pixels(tiny_vit_dir, photos)
    plain = merged_logits(loaded, pixels, None)
    seen: list[torch.Tensor] = []
    with merging(loaded.model, 4):
        other = threading.Thread(target=lambda: seen.append(merged_logits(loaded, pixels, None)))
        other.start()
        other.join()
        merged = merged_logits(loaded, pixels, None)
    torch.testing.assert_close(seen[0], plain, atol=0, rtol=0)
    assert not torch.allclose(merged, plain)


def test_nested_merging_on_one_model_is_refused_not_deadlocked(tiny_vit_dir, photos):
    loaded, pixels = _pixels(tiny_vit_dir, photos)
    with merging(loaded.model, 2), pytest.raises(ValueError, match="already active"):
        merged_logits(loaded, pixels, 4)
    assert merged_logits(loaded, pixels, 4).shape == (3, 5)  # usable again afterwards


def test_restored_even_when_the_forward_fails(tiny_vit_dir, photos):
    loaded, pixels = _pixels(tiny_vit_dir, photos)
    with pytest.raises(ValueError, match="channel"), merging(loaded.model, 2):
        loaded.model(pixel_values=pixels[:, :1])  # one channel: the patch embedding refuses it
    assert all("forward" not in vars(layer) for layer in loaded.model.vit.layers)


def test_token_merging_on_a_list_and_bad_r(tiny_vit_dir, photos):
    results = token_merging([photos["chelsea"], photos["rocket"]], str(tiny_vit_dir), r=2, precision="fp32")
    assert isinstance(results, list) and len(results) == 2
    assert results[0].run.dtype == "float32"
    with pytest.raises(ValueError, match="r .tokens merged per layer"):
        token_merging(photos["chelsea"], str(tiny_vit_dir), r=-2)


def test_agreement_curve_measures_each_r(tiny_vit_dir, photos):
    images = list(photos.values())
    points = agreement_curve(images, str(tiny_vit_dir), rs=(0, 2, 8), batch_size=2, precision="fp32")
    assert [point.r for point in points] == [0, 2, 8]
    assert all(isinstance(point, MergePoint) and point.images_per_s > 0 for point in points)
    assert points[0].top1_agreement == 1.0 and points[0].tokens_left == PATCHES + 1
    assert points[1].tokens_left == PATCHES + 1 - 4
    assert points[2].tokens_left == 1 + 4  # clamped per layer: 16 patches -> 8 -> 4
    assert all(0.0 <= point.top1_agreement <= 1.0 for point in points)


def test_bench_prune_quick_runs(monkeypatch, capsys):
    from conftest import save_tiny_model, tiny_config_kwargs
    from transformers import ViTConfig, ViTForImageClassification

    import bench.common
    from bench.__main__ import main

    def build_tiny_vit(folder, seed):
        save_tiny_model(ViTForImageClassification(ViTConfig(**tiny_config_kwargs())), folder)

    monkeypatch.setattr(bench.common, "build_random_vit", build_tiny_vit)
    assert main(["prune", "--quick", "--images", "4"]) == 0
    report = capsys.readouterr().out
    assert "ToMe r=8" in report and "unmerged" in report
    assert "top-1 agreement" in report
