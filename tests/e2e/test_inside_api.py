"""The Inside tab end to end through gradio_client: masked autoencoding, feature PCA and similarity, token merging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from core import feature_pca, reconstruct
from tests.tiny_inside_models import DINO_CROP, MAE_SIZE, save_tiny_dinov2, save_tiny_mae
from ui.shared.inside import enlarged


@pytest.fixture(scope="session")
def tiny_mae_dir(tmp_path_factory) -> Path:
    return save_tiny_mae(tmp_path_factory.mktemp("inside-mae"))


@pytest.fixture(scope="session")
def tiny_dinov2_dir(tmp_path_factory) -> Path:
    return save_tiny_dinov2(tmp_path_factory.mktemp("inside-dinov2"))


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def test_mae_returns_the_engines_pictures_and_loss(client, tiny_mae_dir, photo_path):
    original, masked, reconstruction, pasted, error, loss = client.predict(
        handle_file(str(photo_path)), str(tiny_mae_dir), 0.5, 3, "", api_name="/mae"
    )
    expected = reconstruct(photo_path, model=str(tiny_mae_dir), mask_ratio=0.5, seed=3)
    assert np.array_equal(np.asarray(Image.open(masked).convert("RGB")), np.asarray(enlarged(expected.masked)))
    assert np.array_equal(np.asarray(Image.open(pasted).convert("RGB")), np.asarray(enlarged(expected.pasted)))
    for path in (original, reconstruction, error):
        assert Image.open(path).size == (MAE_SIZE * 7, MAE_SIZE * 7)  # enlarged to be seen: 224 pixels
    assert f"{expected.loss:.3f}" in loss and "8 of 16 patches hidden" in loss


def test_mae_hides_exactly_the_typed_patches_and_says_so_without_a_loss(client, tiny_mae_dir, photo_path):
    masked = client.predict(handle_file(str(photo_path)), str(tiny_mae_dir), 0.75, 0, "0, 5", api_name="/mae")[1]
    expected = reconstruct(photo_path, model=str(tiny_mae_dir), hidden=(0, 5))
    assert expected.hidden_patches == (0, 5)
    assert np.array_equal(np.asarray(Image.open(masked).convert("RGB")), np.asarray(enlarged(expected.masked)))
    nothing = client.predict(handle_file(str(photo_path)), str(tiny_mae_dir), 0.0, 0, "", api_name="/mae")[-1]
    assert "0 of 16 patches hidden" in nothing and "no loss" in nothing


def test_mae_refuses_a_classifier_with_the_engines_message(client, tiny_vit_dir, photo_path):
    with pytest.raises(Exception, match="not a masked autoencoder"):
        client.predict(handle_file(str(photo_path)), str(tiny_vit_dir), 0.75, 0, "", api_name="/mae")
    with pytest.raises(Exception, match="is not a patch number"):
        client.predict(handle_file(str(photo_path)), str(tiny_vit_dir), 0.75, 0, "3, x", api_name="/mae")


def test_features_then_similarity_for_both_models_without_another_pass(
    client, tiny_dinov2_dir, tiny_vit_dir, photo_path
):
    outputs = client.predict(
        handle_file(str(photo_path)), str(tiny_dinov2_dir), str(tiny_vit_dir), 0, 0.5, api_name="/feature_pca"
    )
    picture_a, overlay_a, line_a, picture_b, overlay_b, line_b, similarity_a, similarity_b, waiting = outputs
    expected = feature_pca(photo_path, model=str(tiny_dinov2_dir), background_threshold=0.5)
    assert np.array_equal(np.asarray(Image.open(picture_a).convert("RGB")), np.asarray(enlarged(expected.picture)))
    assert Image.open(overlay_b).size == (224, 224)  # the tiny ViT's 32-pixel input, enlarged 7 times
    shares = [f"{ratio:.0%}" for ratio in expected.explained_variance_ratio]
    assert all(share in line_a for share in shares) and "layer 2" in line_a and "layer 2" in line_b
    assert similarity_a is None and similarity_b is None and waiting.startswith("Click a patch")
    left, right, line = client.predict(1, 4, api_name="/feature_similarity")
    # Row 1, column 4 of the DINOv2's 4x4 grid is the top-right patch, the same place on the ViT's 4x4 grid.
    assert "row 1, column 4 of 4x4" in line and line.count("row 1, column 4") == 2
    assert Image.open(left).size == (DINO_CROP * 4, DINO_CROP * 4) and Image.open(right).size == (224, 224)


def test_similarity_before_features_and_off_the_grid_say_what_to_do(app_url, client, tiny_dinov2_dir, photo_path):
    fresh = Client(app_url, verbose=False)  # a new session: nothing kept yet
    with pytest.raises(Exception, match="Show the features"):
        fresh.predict(1, 1, api_name="/feature_similarity")
    client.predict(
        handle_file(str(photo_path)), str(tiny_dinov2_dir), str(tiny_dinov2_dir), 0, 0.5, api_name="/feature_pca"
    )
    with pytest.raises(Exception, match="off the left model's grid"):
        client.predict(9, 1, api_name="/feature_similarity")


def test_features_name_a_layer_the_model_does_not_have(client, tiny_dinov2_dir, photo_path):
    with pytest.raises(Exception, match="Layer 7 is out of range"):
        client.predict(
            handle_file(str(photo_path)), str(tiny_dinov2_dir), str(tiny_dinov2_dir), 7, 0.5, api_name="/feature_pca"
        )


def test_token_merging_shows_each_layers_merges_and_both_top5s(client, tiny_vit_dir, photo_path):
    from core import token_merging

    strip, tokens, merged, full, agreement = client.predict(
        handle_file(str(photo_path)), str(tiny_vit_dir), 4, api_name="/token_merging"
    )
    expected = token_merging(photo_path, model=str(tiny_vit_dir), r=4)
    assert [item["caption"] for item in strip] == ["Layer 1: 13 tokens", "Layer 2: 9 tokens"]
    assert "17 → 13 → 9" in tokens
    assert merged["label"] == expected.predictions[0].label and full["label"] == expected.full_predictions[0].label
    assert [item["label"] for item in full["confidences"]] == [p.label for p in expected.full_predictions]
    assert expected.full_predictions[0].label in agreement


def test_the_curve_measures_every_r_over_the_example_photos(client, tiny_vit_dir):
    plot, table, line = client.predict(str(tiny_vit_dir), api_name="/merging_curve")
    assert table["headers"] == ["r", "top-1 agreement", "images/s", "tokens left"]
    rows = table["data"]
    assert [row[0] for row in rows] == [0, 2, 4, 8, 12, 16] and rows[0][1] == "100%"
    assert [row[3] for row in rows] == [17, 13, 9, 5, 5, 5]  # 16 patches + CLS, 2 layers, each round at most half
    assert line.startswith("Over 4 photos: r = 16 runs") and plot is not None


def test_token_merging_refuses_a_model_it_cannot_merge(client, tiny_mae_dir, photo_path):
    with pytest.raises(Exception, match="does not hold a model this tab can use"):
        client.predict(handle_file(str(photo_path)), str(tiny_mae_dir), 8, api_name="/token_merging")
