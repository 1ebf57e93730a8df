"""The Inside tab's shared presentation: sentences, click arithmetic, and the pictures and figure drawn for display."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from core import MergePoint, feature_pca, patch_similarity, reconstruct, token_merging
from tests.e2e.test_inside_api import save_tiny_dinov2, save_tiny_mae
from ui.shared.inside import (
    CURVE_COLUMNS,
    FEATURE_LAYER,
    MASK_RATIO,
    MERGE_R,
    curve_figure,
    curve_line,
    curve_rows,
    enlarged,
    error_picture,
    explained_variance_line,
    feature_layer_value,
    group_picture,
    mae_loss_line,
    merge_pictures,
    outlined,
    parse_patch_numbers,
    patch_at_fraction,
    patch_number_at,
    patch_numbers_text,
    similarity_line,
    similarity_picture,
    toggled,
    tokens_line,
)


@pytest.fixture(scope="module")
def mae_dir(tmp_path_factory):
    return save_tiny_mae(tmp_path_factory.mktemp("shared-mae"))


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    return save_tiny_dinov2(tmp_path_factory.mktemp("shared-dino"))


def test_the_sliders_match_the_engine_and_the_paper():
    assert (MASK_RATIO.minimum, MASK_RATIO.maximum, MASK_RATIO.default) == (0.0, 0.95, 0.75)
    assert (MERGE_R.minimum, MERGE_R.maximum, MERGE_R.default) == (0, 16, 8)
    assert feature_layer_value(FEATURE_LAYER.default) == -1 and feature_layer_value(3) == 3


def test_the_loss_line_names_the_hidden_share_and_the_loss_or_its_absence(chelsea, mae_dir):
    result = reconstruct(chelsea, model=str(mae_dir), mask_ratio=0.75)
    line = mae_loss_line(result)
    assert "12 of 16 patches hidden (75%, a 4x4 grid)" in line and f"**{result.loss:.3f}**" in line
    nothing = mae_loss_line(reconstruct(chelsea, model=str(mae_dir), mask_ratio=0.0))
    assert "0 of 16" in nothing and "no loss" in nothing and "nan" not in nothing.lower()


def test_the_error_picture_is_brightest_on_the_worst_patch(chelsea, mae_dir):
    result = reconstruct(chelsea, model=str(mae_dir), mask_ratio=0.5)
    errors = np.zeros((4, 4))
    errors[2, 1] = 5.0
    drawn = np.asarray(error_picture(replace(result, error_map=errors), alpha=1.0), dtype=float).sum(axis=-1)
    assert drawn.shape == (32, 32)
    worst = drawn[16:24, 8:16].mean()
    assert worst > drawn[:8, :8].mean() + 100 and np.ptp(drawn[16:24, 8:16]) == 0  # a flat square, not a blur
    all_zero = error_picture(replace(result, error_map=np.zeros((4, 4))))
    assert all_zero.size == (32, 32)


@pytest.mark.parametrize("x, y, number", [(0, 0, 0), (31.9, 0, 3), (0, 8, 4), (32, 32, 15), (17, 9, 6)])
def test_a_click_names_the_patch_under_it_row_by_row(x, y, number):
    assert patch_number_at(x, y, (32, 32), (4, 4)) == number


def test_one_place_is_the_same_patch_on_grids_of_any_size():
    assert patch_at_fraction(0.99, 0.0, (4, 4)) == (0, 3)
    assert patch_at_fraction(0.99, 0.0, (16, 16)) == (0, 15)
    assert patch_at_fraction(0.5, 0.5, (14, 14)) == (7, 7)
    assert patch_at_fraction(1.0, 1.0, (3, 5)) == (2, 4)


def test_clicks_toggle_patches_and_the_box_reads_back_what_it_shows():
    assert toggled((), 5) == (5,)
    assert toggled((1, 5), 5) == (1,)
    assert toggled((7, 1), 3) == (1, 3, 7)
    assert parse_patch_numbers(patch_numbers_text((1, 3, 7))) == (1, 3, 7)
    assert parse_patch_numbers(" 4 2,2 ") == (2, 4)
    assert parse_patch_numbers("") is None and parse_patch_numbers(None) is None


@pytest.mark.parametrize("text", ["3, x", "-1", "1.5"])
def test_typed_patch_numbers_that_are_not_whole_numbers_are_refused_with_the_fix(text):
    with pytest.raises(ValueError, match="is not a patch number: give whole numbers from 0"):
        parse_patch_numbers(text)


def test_the_variance_line_gives_each_colours_share_and_the_foreground(chelsea, dino_dir):
    pca = feature_pca(chelsea, model=str(dino_dir), background_threshold=0.5)
    line = explained_variance_line(pca)
    first, second, third = (f"{ratio:.0%}" for ratio in pca.explained_variance_ratio)
    assert f"hold {first}, {second} and {third} of the variance" in line
    assert f"{int(pca.foreground.sum())} of 16 patches are foreground" in line and "layer 2" in line


def test_the_similarity_picture_outlines_the_patch_and_is_brightest_where_alike(chelsea, dino_dir):
    pca = feature_pca(chelsea, model=str(dino_dir))
    similarity = np.full((4, 4), -0.5)
    similarity[0, 0] = 1.0
    drawn = np.asarray(similarity_picture(pca, similarity, 3, 3, alpha=1.0), dtype=float)
    assert drawn.shape == (56, 56, 3)
    assert drawn[2:12, 2:12].sum(axis=-1).mean() > drawn[20:30, 20:30].sum(axis=-1).mean() + 100
    assert tuple(drawn[55, 50]) == (255, 40, 40)  # the outline of the bottom-right patch
    real = patch_similarity(pca.features, 1, 2)
    assert similarity_picture(pca, real, 1, 2).size == pca.model_input.size


def test_outlined_leaves_the_original_alone():
    picture = Image.new("RGB", (40, 40), (0, 0, 0))
    drawn = outlined(picture, [(0, 0)], (2, 2))
    assert np.asarray(picture).max() == 0 and np.asarray(drawn)[0, 5].tolist() == [255, 40, 40]


def test_the_similarity_line_names_each_models_patch_counting_from_one():
    line = similarity_line([("a", (0, 3), (4, 4)), ("b", (15, 0), (16, 16))])
    assert "`a`: row 1, column 4 of 4x4" in line and "`b`: row 16, column 1 of 16x16" in line


# ---- token merging ---------------------------------------------------------------------------------------------


def test_a_group_is_painted_its_mean_colour_and_outlined_where_groups_meet():
    two_patches = np.array([[[0, 0, 0], [200, 100, 50]]], dtype=np.uint8)
    photo = Image.fromarray(two_patches).resize((20, 10), Image.Resampling.NEAREST)
    drawn = np.asarray(group_picture(photo, np.array([[0, 0]])))
    assert np.abs(drawn.astype(int) - [100, 50, 25]).max() <= 1  # one token: one colour, no line
    apart = np.asarray(group_picture(photo, np.array([[0, 1]])))
    assert apart[5, 2].tolist() == [0, 0, 0] and apart[5, 17].tolist() == [200, 100, 50]
    assert apart[5, 10].tolist() == [255, 255, 255]  # the boundary between the two tokens


def test_merge_pictures_caption_each_layer_with_its_tokens_and_the_line_counts_down(chelsea, tiny_vit_dir):
    result = token_merging(chelsea, model=str(tiny_vit_dir), r=4)
    pictures = merge_pictures(result)
    assert [caption for _, caption in pictures] == [
        f"Layer {index + 1}: {tokens} tokens" for index, tokens in enumerate(result.tokens_per_layer)
    ]
    assert all(picture.size == (224, 224) for picture, _ in pictures)
    line = tokens_line(result)
    assert line.startswith("Tokens after each layer (r = 4") and "17 → 13 → 9" in line and "53%" in line
    assert [caption for _, caption in merge_pictures(result, every=2)] == ["Layer 2: 9 tokens"]


def test_the_curve_table_line_and_figure_show_what_was_measured():
    points = [MergePoint(0, 1.0, 100.0, 197), MergePoint(8, 0.75, 150.0, 101), MergePoint(16, 0.5, 200.0, 20)]
    assert curve_rows(points) == [[0, "100%", "100.0", 197], [8, "75%", "150.0", 101], [16, "50%", "200.0", 20]]
    assert len(CURVE_COLUMNS) == 4
    assert curve_line(points, 4) == (
        "Over 4 photos: r = 16 runs 2.00x the speed of r = 0, "
        "and agrees with the full model's top label on 50% of them."
    )
    figure = curve_figure(points)
    left, right = figure.axes
    assert list(left.lines[0].get_ydata()) == [100.0, 75.0, 50.0]
    assert list(right.lines[0].get_ydata()) == [100.0, 150.0, 200.0]
    assert "agreement" in left.get_ylabel() and "images/s" in right.get_ylabel()
    assert not math.isnan(right.get_ylim()[1])


def test_small_pictures_are_enlarged_by_a_whole_factor_and_large_ones_kept():
    small = Image.fromarray(np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3))
    big = enlarged(small, min_side=10)
    assert big.size == (12, 12) and np.array_equal(np.asarray(big)[::3, ::3], np.asarray(small))
    photo = Image.new("RGB", (300, 224))
    assert enlarged(photo) is photo
