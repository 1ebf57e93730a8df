"""The Zero-shot tab end to end: the real app through gradio_client, on a tiny open_clip folder and a tiny HF CLIP."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from core.zero_shot import named_templates, zero_shot, zero_shot_map

LABELS = "cat, dog, rocket, cup of coffee"
SINGLE = ("single", "a photo of a {}.")


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


@pytest.fixture(params=["open_clip", "transformers"])
def clip_model(request, tiny_open_clip_dir, tiny_hf_clip_dir) -> str:
    return f"local-dir:{tiny_open_clip_dir}" if request.param == "open_clip" else str(tiny_hf_clip_dir)


def test_zero_shot_endpoints_are_listed(client):
    endpoints = client.view_api(return_format="dict")["named_endpoints"]
    assert {"/zero_shot", "/zero_shot_map"} <= set(endpoints)


def test_scores_match_the_engine(client, clip_model, photo_path):
    top, chart, table, status, target = client.predict(
        handle_file(str(photo_path)), LABELS, clip_model, None, *SINGLE, False, api_name="/zero_shot"
    )
    expected = zero_shot(photo_path, LABELS, model=clip_model, pretrained=None)
    assert [item["label"] for item in top["confidences"]] == [p.label for p in expected]
    assert [item["confidence"] for item in top["confidences"]] == pytest.approx([p.score for p in expected], abs=1e-6)
    assert [row[0] for row in chart["data"]] == [p.label for p in expected]
    assert table["visible"] is False
    assert target["value"] == expected[0].label and clip_model.removeprefix("local-dir:") in status


def test_per_template_table_has_a_row_per_template(client, tiny_open_clip_dir, photo_path):
    model = f"local-dir:{tiny_open_clip_dir}"
    top, _, table, _, _ = client.predict(
        handle_file(str(photo_path)), LABELS, model, None, "openai", "", True, api_name="/zero_shot"
    )
    assert table["visible"] is True
    assert [row[0] for row in table["value"]["data"]] == named_templates("openai")
    assert table["value"]["headers"][1:] == [item["label"] for item in top["confidences"]]
    assert all(abs(sum(row[1:]) - 1) < 1e-3 for row in table["value"]["data"])  # all four labels are shown


def test_label_map_is_the_engines(client, clip_model, photo_path):
    import numpy as np
    from PIL import Image

    path = client.predict(
        handle_file(str(photo_path)), "dog", LABELS, clip_model, None, *SINGLE, "jet", 0.5, api_name="/zero_shot_map"
    )
    shown = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    expected = zero_shot_map(photo_path, "dog", LABELS, model=clip_model, pretrained=None, alpha=0.5, cmap="jet")
    assert shown.shape[:2] == expected.overlay.size[::-1]
    assert np.abs(shown - np.asarray(expected.overlay, dtype=np.int16)).max() <= 1


@pytest.mark.parametrize(
    "labels, template, message",
    [
        ("cat", SINGLE, "Only one label"),
        ("cat, dog, cat", SINGLE, "Duplicate labels: 'cat'"),
        ("", SINGLE, "No labels given"),
        ("cat, dog", ("single", "a photo"), "has no '{}'"),
    ],
)
def test_bad_questions_get_messages(client, tiny_open_clip_dir, photo_path, labels, template, message):
    with pytest.raises(Exception, match=message):
        client.predict(
            handle_file(str(photo_path)),
            labels,
            f"local-dir:{tiny_open_clip_dir}",
            None,
            *template,
            False,
            api_name="/zero_shot",
        )


def test_open_clip_name_without_weights_is_refused(client, photo_path):
    with pytest.raises(Exception, match="Pick the pretrained weights for ViT-B-32"):
        client.predict(handle_file(str(photo_path)), LABELS, "ViT-B-32", None, *SINGLE, False, api_name="/zero_shot")


def test_a_label_outside_the_list_cannot_be_mapped(client, tiny_open_clip_dir, photo_path):
    with pytest.raises(Exception, match="'horse' is not one of the labels"):
        client.predict(
            handle_file(str(photo_path)),
            "horse",
            LABELS,
            f"local-dir:{tiny_open_clip_dir}",
            None,
            *SINGLE,
            "jet",
            0.5,
            api_name="/zero_shot_map",
        )
