"""Masked autoencoding: which patches are hidden, what the pictures hold, and that the loss is the model's own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ViTImageProcessor, ViTMAEForPreTraining

import core
from core import gpu
from core.mae import MASK_GREY, load_mae, reconstruct
from tests.tiny_inside_models import MAE_PATCH, MAE_SIZE, save_mae, tiny_mae_config

SIZE = MAE_SIZE
PATCH = MAE_PATCH
GRID = SIZE // PATCH
PATCHES = GRID * GRID


@pytest.fixture(scope="module")
def tiny_mae_dir(tmp_path_factory) -> Path:
    """A tiny random ViTMAEForPreTraining (norm_pix_loss) with a 32x32 ViTImageProcessor, as save_pretrained writes."""
    torch.manual_seed(0)
    return save_mae(ViTMAEForPreTraining(tiny_mae_config()), tmp_path_factory.mktemp("tiny-mae"))


@pytest.fixture(scope="module")
def flat_mae_dir(tmp_path_factory) -> Path:
    """A tiny MAE whose decoder predicts 0 for every pixel: with norm_pix_loss, 0 means "the patch's own mean"."""
    torch.manual_seed(1)
    model = ViTMAEForPreTraining(tiny_mae_config())
    with torch.no_grad():
        model.decoder.decoder_pred.weight.zero_()
        model.decoder.decoder_pred.bias.zero_()
    return save_mae(model, tmp_path_factory.mktemp("flat-mae"))


def run(image, folder: Path, **options):
    return reconstruct(image, str(folder), precision="fp32", device="cpu", **options)


def patch_pixels(picture, index: int) -> np.ndarray:
    row, col = divmod(index, GRID)
    return np.asarray(picture)[row * PATCH : (row + 1) * PATCH, col * PATCH : (col + 1) * PATCH].astype(int)


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.3, 0.5, 0.75, 0.9])
def test_the_ratio_hides_round_ratio_times_patches(chelsea, tiny_mae_dir, ratio):
    result = run(chelsea, tiny_mae_dir, mask_ratio=ratio)
    assert result.mask.shape == (GRID, GRID) and result.mask.dtype == bool
    assert result.mask.sum() == round(ratio * PATCHES)  # 0.2 -> 3 of 16, where transformers' int() would hide 4
    assert result.mask_ratio == pytest.approx(round(ratio * PATCHES) / PATCHES)
    assert result.grid_size == (GRID, GRID)
    assert result.hidden_patches == tuple(int(i) for i in np.flatnonzero(result.mask))


def test_the_images_are_the_model_input_size_and_pasted_keeps_visible_patches_exactly(chelsea, tiny_mae_dir):
    result = run(chelsea, tiny_mae_dir, mask_ratio=0.5)
    for picture in (result.original, result.masked, result.reconstruction, result.pasted):
        assert picture.mode == "RGB" and picture.size == (SIZE, SIZE)
    visible = [index for index in range(PATCHES) if index not in result.hidden_patches]
    assert visible
    for index in visible:
        assert np.array_equal(patch_pixels(result.pasted, index), patch_pixels(result.original, index))
        assert np.array_equal(patch_pixels(result.masked, index), patch_pixels(result.original, index))
    for index in result.hidden_patches:
        assert np.array_equal(patch_pixels(result.pasted, index), patch_pixels(result.reconstruction, index))
        assert (patch_pixels(result.masked, index) == np.array(MASK_GREY)).all()
    # A random model paints something else than the photo: the hidden patches of pasted are not the original.
    hidden = list(result.hidden_patches)
    assert not np.array_equal(
        np.stack([patch_pixels(result.pasted, i) for i in hidden]),
        np.stack([patch_pixels(result.original, i) for i in hidden]),
    )


def test_the_same_seed_hides_the_same_patches_and_another_seed_others(chelsea, tiny_mae_dir):
    first = run(chelsea, tiny_mae_dir, mask_ratio=0.5, seed=3)
    again = run(chelsea, tiny_mae_dir, mask_ratio=0.5, seed=3)
    other = run(chelsea, tiny_mae_dir, mask_ratio=0.5, seed=4)
    assert np.array_equal(first.mask, again.mask)
    assert first.loss == again.loss
    assert not np.array_equal(first.mask, other.mask)


def test_one_seed_hides_more_of_the_same_patches_as_the_ratio_grows(chelsea, tiny_mae_dir):
    smaller = run(chelsea, tiny_mae_dir, mask_ratio=0.25, seed=7)
    larger = run(chelsea, tiny_mae_dir, mask_ratio=0.75, seed=7)
    assert set(smaller.hidden_patches) < set(larger.hidden_patches)


def test_every_count_of_hidden_patches_is_exact_on_a_grid_of_25(chelsea, tmp_path):
    # With 16 patches every ratio is exact in binary; with 25, transformers' int(25 * (1 - 14 / 25)) keeps 10, not 11.
    torch.manual_seed(2)
    folder = tmp_path / "mae-5x5"
    ViTMAEForPreTraining(tiny_mae_config(image_size=40)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 40, "width": 40}).save_pretrained(folder)
    for count in range(26):
        assert run(chelsea, folder, hidden=range(count)).mask.sum() == count
        assert run(chelsea, folder, mask_ratio=min(count / 25, 0.95)).mask.sum() == round(min(count / 25, 0.95) * 25)


def test_ratio_zero_hides_nothing_and_its_loss_is_nan(chelsea, tiny_mae_dir):
    result = run(chelsea, tiny_mae_dir, mask_ratio=0)
    assert not result.mask.any() and result.mask_ratio == 0
    assert math.isnan(result.loss)  # the model averages over hidden patches: there are none
    assert np.array_equal(np.asarray(result.pasted), np.asarray(result.original))
    assert np.array_equal(np.asarray(result.masked), np.asarray(result.original))
    assert np.isfinite(result.error_map).all()  # the decoder still predicts every patch


def test_ratio_095_leaves_one_patch_of_sixteen(chelsea, tiny_mae_dir):
    result = run(chelsea, tiny_mae_dir, mask_ratio=0.95)
    assert result.mask.sum() == 15 and math.isfinite(result.loss)


@pytest.mark.parametrize("hidden", [[0], [5, 0, 15], [3, 3, 12], list(range(PATCHES))])
def test_clicked_patches_are_exactly_the_hidden_ones(chelsea, tiny_mae_dir, hidden):
    result = run(chelsea, tiny_mae_dir, hidden=hidden, mask_ratio=0.75, seed=11)
    assert result.hidden_patches == tuple(sorted(set(hidden)))
    row, col = divmod(hidden[0], GRID)
    assert result.mask[row, col]
    assert result.mask_ratio == len(set(hidden)) / PATCHES


def test_an_empty_click_list_hides_nothing(chelsea, tiny_mae_dir):
    assert not run(chelsea, tiny_mae_dir, hidden=[]).mask.any()


def test_the_loss_is_the_models_own_with_the_same_mask(chelsea, tiny_mae_dir):
    result = run(chelsea, tiny_mae_dir, mask_ratio=0.6, seed=5)
    model = ViTMAEForPreTraining.from_pretrained(tiny_mae_dir).eval()
    processor = ViTImageProcessor.from_pretrained(tiny_mae_dir)
    pixel_values = processor(images=chelsea, return_tensors="pt")["pixel_values"]
    hidden = torch.from_numpy(result.mask.reshape(1, -1)).float()
    noise = hidden + torch.linspace(0, 0.5, PATCHES)[None]  # visible patches sort first, hidden last
    visible = PATCHES - int(hidden.sum())
    model.config.mask_ratio = 1 - (visible + 0.5) / PATCHES  # int(16 * (1 - ratio)) keeps `visible` patches
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values, noise=noise)
    assert torch.equal(outputs.mask, hidden)
    assert result.loss == pytest.approx(float(outputs.loss), rel=1e-5)
    # error_map is the per-patch loss: its mean over the hidden patches is the loss.
    assert float(result.error_map[result.mask].mean()) == pytest.approx(result.loss, rel=1e-5)


def test_norm_pix_loss_predictions_are_put_back_with_each_patchs_own_mean(chelsea, flat_mae_dir):
    # A prediction of 0 in norm_pix_loss space means "this patch's mean, no pattern": un-normalised with the
    # original patch's own mean and variance, each hidden patch becomes one flat colour, the original patch's
    # mean over its pixels and channels (the processor's mean and std are 0.5 for every channel).
    result = run(chelsea, flat_mae_dir, mask_ratio=0.75)
    for index in result.hidden_patches:
        painted = patch_pixels(result.reconstruction, index)
        assert painted.max() - painted.min() <= 1
        assert abs(painted.mean() - patch_pixels(result.original, index).mean()) <= 1
    assert result.loss == pytest.approx(1 - 1 / (PATCH * PATCH * 3), rel=1e-3)  # a zero guess of a unit-variance target


def test_without_norm_pix_loss_a_zero_prediction_is_the_processors_mean_colour(chelsea, tmp_path):
    model = ViTMAEForPreTraining(tiny_mae_config(norm_pix_loss=False))
    with torch.no_grad():
        model.decoder.decoder_pred.weight.zero_()
        model.decoder.decoder_pred.bias.zero_()
    result = run(chelsea, save_mae(model, tmp_path / "plain-mae"), mask_ratio=0.5)
    assert (np.asarray(result.reconstruction) == 128).all()  # 0 normalised = mean 0.5 = 127.5, rounded


def test_the_shared_model_keeps_its_own_mask_ratio(chelsea, tiny_mae_dir):
    run(chelsea, tiny_mae_dir, mask_ratio=0.3)
    run(chelsea, tiny_mae_dir, hidden=[1, 2])
    loaded = load_mae(str(tiny_mae_dir), device="cpu", precision="fp32")
    assert loaded.model.config.mask_ratio == 0.75  # ViTMAEConfig's default, as saved


def test_the_result_carries_what_it_ran_on(chelsea, tiny_mae_dir):
    result = run(chelsea, tiny_mae_dir)
    assert result.model == str(tiny_mae_dir.resolve())
    assert result.run.model == result.model and result.run.device == "cpu" and result.run.dtype == "float32"
    assert result.error_map.shape == (GRID, GRID) and (result.error_map >= 0).all()


def test_on_load_hears_the_model_once(chelsea, tiny_mae_dir, empty_model_cache):
    heard: list[str] = []
    run(chelsea, tiny_mae_dir, on_load=heard.append)
    run(chelsea, tiny_mae_dir, on_load=heard.append)
    assert heard == [str(tiny_mae_dir.resolve())]


def test_a_photo_path_works_too(photo_path, tiny_mae_dir, chelsea):
    assert np.array_equal(run(photo_path, tiny_mae_dir, seed=2).mask, run(chelsea, tiny_mae_dir, seed=2).mask)


@pytest.mark.parametrize("ratio", [-0.1, 0.96, 1, float("nan"), "0.5", True, None])
def test_a_bad_ratio_names_the_range(chelsea, tiny_mae_dir, ratio):
    with pytest.raises(ValueError, match="from 0 to 0.95"):
        run(chelsea, tiny_mae_dir, mask_ratio=ratio)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, 2**63])
def test_a_bad_seed_is_refused(chelsea, tiny_mae_dir, seed):
    with pytest.raises(ValueError, match="seed must be a whole number"):
        run(chelsea, tiny_mae_dir, seed=seed)


@pytest.mark.parametrize(("hidden", "message"), [([16], "0 to 15"), ([-1], "0 to 15"), ([1.0], "whole"), (3, "list")])
def test_bad_clicks_are_refused(chelsea, tiny_mae_dir, hidden, message):
    with pytest.raises(ValueError, match=message):
        run(chelsea, tiny_mae_dir, hidden=hidden)


def test_a_vit_classifier_is_not_a_masked_autoencoder(chelsea, tiny_vit_dir):
    with pytest.raises(ValueError, match="give a ViTMAEForPreTraining model such as facebook/vit-mae-base"):
        run(chelsea, tiny_vit_dir)


def test_an_mae_encoder_without_its_decoder_is_refused(chelsea, tmp_path):
    from transformers import ViTMAEModel

    folder = tmp_path / "encoder-only"
    ViTMAEModel(tiny_mae_config()).save_pretrained(folder)
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(folder)
    with pytest.raises(ValueError, match="ViTMAEForPreTraining"):
        run(chelsea, folder)


def test_reconstruct_is_exported_and_may_run_on_a_lent_gpu():
    assert core.reconstruct is reconstruct and core.DEFAULT_MAE == "facebook/vit-mae-base"
    assert "core.mae.reconstruct" in gpu.entry_points()
