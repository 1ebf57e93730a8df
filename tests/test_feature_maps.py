"""Feature PCA and patch similarity: the pure recipe on arrays with a known structure, then end to end on tiny ViT,
DINOv2 and DINOv2-with-registers folders loaded by the engine's real loading code."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core import FeaturePCA, Features, RunInfo, feature_pca, patch_similarity
from core.feature_maps import (
    centre_mask,
    components_rgb,
    foreground_mask,
    pca_colours,
    principal_components,
)
from tests.tiny_inside_models import DINO_CROP, NUM_REGISTERS, save_tiny_dinov2


def two_clusters(grid: int = 6, hidden: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (grid, grid, hidden) patch array: an 'object' square in the middle whose features sit far from the
    'background' ones along one direction, plus small noise; and the object's mask."""
    rng = np.random.default_rng(seed)
    obj = np.zeros((grid, grid), dtype=bool)
    obj[grid // 4 : grid - grid // 4, grid // 4 : grid - grid // 4] = True
    direction = rng.normal(size=hidden)
    patches = rng.normal(scale=0.05, size=(grid, grid, hidden)) + np.where(obj[..., None], 3.0, -1.0) * direction
    # Structure inside the object too, so the foreground PCA has something to colour.
    patches[obj] += np.linspace(-1, 1, int(obj.sum()))[:, None] * rng.normal(size=hidden)
    return patches, obj


def some_features(patches: np.ndarray) -> Features:
    run = RunInfo(model="test", device="cpu", dtype="float32", milliseconds=0.0)
    return Features(cls=patches.mean(axis=(0, 1)), patches=patches, layer=1, model="test", run=run)


# --- the pure recipe ------------------------------------------------------------------------------------------------


def test_the_first_component_separates_two_clusters_and_is_high_on_the_centre():
    patches, obj = two_clusters()
    pca = principal_components(patches.reshape(-1, patches.shape[-1]), centre=centre_mask(obj.shape))
    first = pca.projections[:, 0].reshape(obj.shape)
    assert first[obj].min() > first[~obj].max()  # the object, in the centre, comes out high: the sign rule
    assert pca.variance_ratios[0] > 0.5


def test_variance_ratios_are_descending_and_sum_to_at_most_one():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 12)) * np.linspace(3, 0.1, 12)
    pca = principal_components(vectors)
    ratios = pca.variance_ratios
    assert ratios.shape == (3,) and np.all(ratios > 0)
    assert np.all(np.diff(ratios) <= 0) and ratios.sum() <= 1 + 1e-12
    # They are the PCA's: the projections' variances over the total variance.
    total = ((vectors - vectors.mean(axis=0)) ** 2).sum()
    np.testing.assert_allclose(ratios, (pca.projections**2).sum(axis=0) / total)
    np.testing.assert_allclose(pca.axes @ pca.axes.T, np.eye(3), atol=1e-12)


def test_signs_are_deterministic_whichever_way_the_data_is_turned():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(30, 8)) * np.linspace(2, 0.5, 8)
    one = principal_components(vectors)
    # Reflecting the data reflects the axes; the sign rule puts the largest loading positive either way.
    other = principal_components(-vectors)
    np.testing.assert_allclose(one.axes, other.axes, atol=1e-9)
    np.testing.assert_allclose(one.projections, -other.projections, atol=1e-9)
    for axis in one.axes:
        assert axis[np.argmax(np.abs(axis))] > 0


def test_fewer_dimensions_than_components_and_identical_vectors_give_zeros_not_nans():
    flat = principal_components(np.ones((5, 4)))
    assert np.all(flat.projections == 0) and np.all(flat.variance_ratios == 0)
    narrow = principal_components(np.random.default_rng(0).normal(size=(6, 2)))
    assert narrow.projections.shape == (6, 3) and narrow.variance_ratios[2] == 0
    assert narrow.variance_ratios.sum() == pytest.approx(1.0)
    # Three vectors span two directions: the third component is exactly zero, not stretched rounding noise.
    three = principal_components(np.random.default_rng(1).normal(size=(3, 10)))
    assert three.variance_ratios[2] == 0 and np.all(three.projections[:, 2] == 0)
    assert np.all(components_rgb(three.projections)[:, 2] == 0)


def test_pca_refuses_what_is_not_a_feature_array():
    with pytest.raises(ValueError, match="non-empty"):
        principal_components(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        principal_components(np.full((3, 4), np.nan))


def test_the_foreground_mask_picks_the_object_cluster():
    patches, obj = two_clusters()
    colours = pca_colours(patches, background_threshold=0.5)
    np.testing.assert_array_equal(colours.foreground, obj)
    assert np.all(colours.rgb[~obj] == 0)  # background black
    assert colours.rgb.min() >= 0 and colours.rgb.max() <= 1
    assert colours.rgb[obj].max(axis=0).tolist() == [1.0, 1.0, 1.0]  # each channel spans the object
    assert colours.first_component.min() == 0 and colours.first_component.max() == 1
    assert colours.variance_ratios.sum() <= 1 and np.all(np.diff(colours.variance_ratios) <= 0)


def test_no_threshold_keeps_every_patch():
    patches, _ = two_clusters()
    colours = pca_colours(patches, background_threshold=None)
    assert colours.foreground.all()
    red = colours.rgb[..., 0]
    assert red.min() == 0 and red.max() == 1


def test_foreground_mask_thresholds_the_scaled_component():
    first = np.array([-2.0, 0.0, 1.0, 2.0])  # scaled: 0, 0.5, 0.75, 1
    assert foreground_mask(first, 0.6).tolist() == [False, False, True, True]
    assert foreground_mask(first, None).all()
    assert foreground_mask(np.zeros(4), 0.5).all()  # nothing to tell apart: nothing is removed
    with pytest.raises(ValueError, match="between 0 and 1"):
        foreground_mask(first, 1.5)


def test_rgb_channels_are_scaled_over_the_foreground():
    projections = np.array([[0.0, 1, 2], [10, -1, 4], [5, 0, 3], [100, 100, 100]])
    rgb = components_rgb(projections, np.array([True, True, True, False]))
    np.testing.assert_allclose(rgb, [[0, 1, 0], [1, 0, 1], [0.5, 0.5, 0.5], [0, 0, 0]])


# --- patch similarity -----------------------------------------------------------------------------------------------


def test_patch_similarity_is_one_at_the_clicked_patch_and_a_cosine_elsewhere():
    patches, _ = two_clusters(grid=5, hidden=8)
    extracted = some_features(patches)
    similarity = patch_similarity(extracted, 1, 3)
    assert similarity.shape == (5, 5) and similarity[1, 3] == 1.0
    assert similarity.min() >= -1 and similarity.max() <= 1
    clicked = patches[1, 3]
    direct = np.array(
        [[np.dot(p, clicked) / (np.linalg.norm(p) * np.linalg.norm(clicked)) for p in row] for row in patches]
    )
    np.testing.assert_allclose(similarity, direct, atol=1e-12)
    # Symmetric: how alike a is to b is how alike b is to a.
    assert patch_similarity(extracted, 4, 0)[1, 3] == pytest.approx(similarity[4, 0])


@pytest.mark.parametrize("row, col", [(-1, 0), (5, 0), (0, 5), (0, -1), (1.5, 0), (True, 0)])
def test_patch_similarity_refuses_patches_off_the_grid(row, col):
    extracted = some_features(two_clusters(grid=5, hidden=8)[0])
    with pytest.raises(ValueError, match="0 to 4"):
        patch_similarity(extracted, row, col)


# --- end to end -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dinov2_dir(tmp_path_factory) -> str:
    return str(save_tiny_dinov2(tmp_path_factory.mktemp("tiny-dinov2")))


@pytest.fixture(scope="module")
def tiny_dinov2_registers_dir(tmp_path_factory) -> str:
    return str(save_tiny_dinov2(tmp_path_factory.mktemp("tiny-dinov2-registers"), registers=True))


def check_result(result: FeaturePCA, grid: tuple[int, int], side: int) -> None:
    assert isinstance(result, FeaturePCA)
    assert result.grid_size == grid and result.rgb.shape == (*grid, 3) and result.foreground.shape == grid
    assert result.rgb.min() >= 0 and result.rgb.max() <= 1
    assert result.model_input.size == (side, side)
    assert result.picture.size == result.overlay.size == (side, side)
    ratios = result.explained_variance_ratio
    assert len(ratios) == 3 and sum(ratios) <= 1 + 1e-9 and list(ratios) == sorted(ratios, reverse=True)
    assert result.features.patches.shape[:2] == grid
    assert result.run.milliseconds > 0 and result.model == result.run.model
    # Nearest-neighbour upsampling: each patch is one flat block of its colour.
    pixels = np.asarray(result.picture)
    block = side // grid[0]
    expected = (result.rgb * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(pixels[::block, ::block][: grid[0], : grid[1]], expected)
    np.testing.assert_array_equal(pixels[block - 1 :: block, block - 1 :: block][: grid[0], : grid[1]], expected)
    # Background patches show the photo itself in the overlay, and are black in the picture.
    background = ~np.kron(result.foreground, np.ones((block, block), dtype=bool))
    np.testing.assert_array_equal(np.asarray(result.overlay)[background], np.asarray(result.model_input)[background])
    assert np.all(pixels[background] == 0)


def test_feature_pca_on_a_tiny_vit(tiny_vit_dir, chelsea):
    result = feature_pca(chelsea, model=str(tiny_vit_dir), precision="fp32")
    check_result(result, (4, 4), 32)
    assert result.layer == 2 and result.background_threshold == 0.5
    assert 0 < result.foreground.sum() < 16  # a random model still has a first component to cut
    everything = feature_pca(chelsea, model=str(tiny_vit_dir), layer=1, background_threshold=None, precision="fp32")
    assert everything.foreground.all() and everything.layer == 1


@pytest.mark.parametrize("registers", [False, True], ids=["dinov2", "dinov2-registers"])
def test_feature_pca_on_tiny_dinov2_skips_cls_and_register_tokens(
    registers, tiny_dinov2_dir, tiny_dinov2_registers_dir, photos
):
    import torch

    from core.classify import preprocess
    from core.models import load_explainable

    folder = tiny_dinov2_registers_dir if registers else tiny_dinov2_dir
    result = feature_pca(photos["astronaut"], model=folder, precision="fp32")
    check_result(result, (4, 4), DINO_CROP)
    # The patches are the last 16 tokens of the model's own last hidden state (after its final layernorm, as DINOv2
    # reads them): CLS and registers left out.
    loaded = load_explainable(folder, precision="fp32")
    assert type(loaded.model).__name__ == ("Dinov2WithRegistersModel" if registers else "Dinov2Model")
    with torch.inference_mode():
        hidden = loaded.model(
            pixel_values=preprocess(loaded, [Image.fromarray(photos["astronaut"])])
        ).last_hidden_state[0]
    prefix = 1 + (NUM_REGISTERS if registers else 0)
    assert hidden.shape[0] == prefix + 16
    np.testing.assert_allclose(result.features.patches.reshape(16, -1), hidden[prefix:].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.features.cls, hidden[0].numpy(), atol=1e-6)
    # A click answers from the kept features.
    similarity = patch_similarity(result.features, 3, 3)
    assert similarity.shape == (4, 4) and similarity[3, 3] == 1.0


def test_feature_pca_refuses_bad_settings_before_any_work(tiny_vit_dir, chelsea):
    with pytest.raises(ValueError, match="background_threshold"):
        feature_pca(chelsea, model=str(tiny_vit_dir), background_threshold=2)
    with pytest.raises(ValueError, match="alpha"):
        feature_pca(chelsea, model=str(tiny_vit_dir), alpha=-0.1)
    with pytest.raises(ValueError, match="out of range"):
        feature_pca(chelsea, model=str(tiny_vit_dir), layer=9)
