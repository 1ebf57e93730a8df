"""The Attention tab end to end through gradio_client: maps, side by side, features, and its messages."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from core import explain


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def _settings(model, method="rollout", layer=0, head=0, target=None, discard=0.0):
    # The endpoint's inputs after the image, in the tab's order.
    return [model, method, "mean", discard, layer, head, target, "jet", 0.5]


def test_explain_returns_an_overlay_the_size_of_the_photo_and_the_engines_predictions(client, tiny_vit_dir, photo_path):
    overlay_path, labels, grid_path, tokens, strip, heads, target, value_range, head_note = client.predict(
        handle_file(str(photo_path)), *_settings(str(tiny_vit_dir)), api_name="/explain"
    )
    expected = explain(photo_path, model=str(tiny_vit_dir), discard_ratio=0.0)
    assert Image.open(overlay_path).size == Image.open(photo_path).size
    assert labels["label"] == expected.predictions[0].label
    assert (
        len(strip) == expected.num_layers
        and [item["caption"] for item in strip][-1] == f"up to layer {expected.num_layers}"
    )
    assert len(heads) == expected.num_heads
    low, high = expected.value_range
    assert value_range.startswith(f"Map values from {low:.4g} to {high:.4g}")
    assert head_note.startswith("Each head stretched from its own lowest to its highest value")
    rows, columns = expected.grid_size
    assert f"{rows}x{columns} grid" in tokens and f"{rows * columns} patch tokens + 1 CLS token" in tokens
    width, height = expected.model_input.size
    assert Image.open(grid_path).size[0] / width == Image.open(grid_path).size[1] / height >= 1


def test_gradient_rollout_reports_the_class_it_explains(client, tiny_vit_dir, photo_path):
    outputs = client.predict(
        handle_file(str(photo_path)), *_settings(str(tiny_vit_dir), method="grad_rollout"), api_name="/explain"
    )
    labels, target_update = outputs[1], outputs[6]
    assert target_update["value"] == labels["label"]
    assert [choice[0] for choice in target_update["choices"]] == [item["label"] for item in labels["confidences"]]


def test_side_by_side_runs_two_models_on_one_photo(client, tiny_vit_dir, tiny_deit_dir, photo_path):
    left, left_labels, right, right_labels = client.predict(
        handle_file(str(photo_path)),
        *_settings(str(tiny_vit_dir)),
        str(tiny_deit_dir),
        "attention",
        1,
        api_name="/compare",
    )
    assert Image.open(left).size == Image.open(right).size == Image.open(photo_path).size
    assert left_labels["label"] == explain(photo_path, model=str(tiny_vit_dir)).predictions[0].label
    assert (
        right_labels["label"] == explain(photo_path, model=str(tiny_deit_dir), method="attention").predictions[0].label
    )


def test_features_download_as_npy(client, tiny_vit_dir, photo_path):
    paths = client.predict(handle_file(str(photo_path)), str(tiny_vit_dir), 1, api_name="/features")
    arrays = {path.rsplit("/", 1)[-1]: np.load(path) for path in paths}
    hidden = arrays["cls_layer1.npy"].shape[0]
    assert arrays["patches_layer1.npy"].shape == (4, 4, hidden)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # The sliders span the model's 2 layers and 2 heads, so Gradio itself refuses what is past them.
        (dict(layer=7), "Value 7 is greater than maximum value 2"),
        (dict(method="attention", head=9), "Value 9 is greater than maximum value 2"),
        (dict(method="grad_rollout", target="zebra"), "'zebra' is not one of this model's labels"),
    ],
)
def test_bad_settings_get_the_engines_message(client, tiny_vit_dir, photo_path, settings, message):
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(photo_path)), *_settings(str(tiny_vit_dir), **settings), api_name="/explain")


@pytest.fixture(scope="module")
def six_layer_vit_dir(tmp_path_factory):
    """A tiny ViT with 6 layers of 3 heads."""
    import torch
    from conftest import save_tiny_model, tiny_config_kwargs
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(6)
    config = ViTConfig(**{**tiny_config_kwargs(), "num_hidden_layers": 6, "num_attention_heads": 3, "hidden_size": 48})
    return save_tiny_model(ViTForImageClassification(config), tmp_path_factory.mktemp("api-vit-6x3"))


def test_the_layer_and_head_sliders_follow_the_model(app_url, six_layer_vit_dir, tiny_vit_dir):
    client = Client(app_url, verbose=False)  # a session of its own: Gradio checks values against its sliders' range
    # The app's model, the tiny ViT, has 2 layers of 2 heads; this one 6 of 3.
    layer, head = client.predict(str(six_layer_vit_dir), 2, 1, api_name="/attention_ranges")
    assert (layer["maximum"], head["maximum"]) == (6, 3) and (layer["value"], head["value"]) == (2, 1)
    # back to a smaller model: the maximum shrinks and the values come within it
    layer, head = client.predict(str(tiny_vit_dir), 5, 3, api_name="/attention_ranges")
    assert (layer["maximum"], head["maximum"]) == (2, 2) and (layer["value"], head["value"]) == (2, 2)
    # a model whose config is not on this machine yet gets the shared ranges (the engine names the range)
    layer, head = client.predict("someone/not-downloaded-vit", 2, 2, api_name="/attention_ranges")
    assert (layer["maximum"], head["maximum"]) == (24, 16) and (layer["value"], head["value"]) == (2, 2)


def test_the_caption_decoder_layer_slider_follows_the_decoder(app_url, captioner_dir, blip_dir):
    client = Client(app_url, verbose=False)
    update = client.predict(str(captioner_dir), 7, api_name="/caption_layer_range")
    assert (update["maximum"], update["value"]) == (2, 2)  # the tiny ViT-GPT2's 2 decoder layers, not 12
    assert client.predict(str(blip_dir), 1, api_name="/caption_layer_range")["maximum"] == 2
    assert client.predict("someone/not-downloaded-captioner", 2, api_name="/caption_layer_range")["maximum"] == 12


def _redraw_settings(method="rollout", discard=0.0, layer=0, head=0, cmap="jet", alpha=0.5):
    # The redraw endpoint's inputs (the kept explanation is the session's state), in the tab's order.
    return [method, "mean", discard, layer, head, cmap, alpha]


def test_moving_a_control_redraws_the_last_explanation_like_a_fresh_explain(app_url, tiny_vit_dir, photo_path):
    from core import redraw

    client = Client(app_url, verbose=False)  # a session of its own: the kept explanation is per session
    # before any Explain there is nothing to redraw: the outputs stay as they are
    unchanged = client.predict(*_redraw_settings(), api_name="/redraw")
    assert unchanged == tuple({"__type__": "update"} for _ in range(5))
    client.predict(handle_file(str(photo_path)), *_settings(str(tiny_vit_dir)), api_name="/explain")
    kept = explain(photo_path, model=str(tiny_vit_dir), discard_ratio=0.0)
    for settings in [dict(alpha=1.0, cmap="viridis"), dict(method="attention", layer=1, head=2, alpha=0.8, cmap="jet")]:
        overlay_path, strip, heads, value_range, head_note = client.predict(
            *_redraw_settings(**settings), api_name="/redraw"
        )
        expected = redraw(
            kept,
            method=settings.get("method", "rollout"),
            discard_ratio=0.0,
            layer=settings.get("layer") or None,
            head=settings.get("head") or None,
            alpha=settings["alpha"],
            cmap=settings["cmap"],
        )
        fresh = np.asarray(Image.open(overlay_path).convert("RGB"), np.int16)
        assert np.abs(fresh - np.asarray(expected.overlay, np.int16)).max() <= 1
        low, high = expected.value_range
        assert value_range.startswith(f"Map values from {low:.4g} to {high:.4g}")
        assert len(strip) == expected.num_layers and len(heads) == expected.num_heads
    # gradient rollout needs the backward pass only Explain runs
    with pytest.raises(Exception, match="press Explain"):
        client.predict(*_redraw_settings(method="grad_rollout"), api_name="/redraw")
