"""core.patch_attention and core.patch_at_pixel: one patch's row and column of the attention matrix, from the
attentions explain() kept, checked against the model's own attention weights and against a matrix whose every entry
says where it sits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from core import Explanation, PatchAttention, explain, overlay, patch_at_pixel, patch_attention
from core.attention import scale_map

FP32_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def vit_explained(tiny_vit_dir, photo_path) -> Explanation:
    return explain(photo_path, model=str(tiny_vit_dir), method="attention", precision="fp32")


@pytest.fixture(scope="module")
def deit_explained(tiny_deit_dir, photo_path) -> Explanation:
    return explain(photo_path, model=str(tiny_deit_dir), method="attention", precision="fp32")


def _model_attentions(model_dir, photo_path) -> tuple[np.ndarray, ...]:
    """The attention weights as transformers itself returns them, without the engine: (heads, tokens, tokens) each."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    inputs = processor(images=Image.open(photo_path).convert("RGB"), return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs, output_attentions=True)
    return tuple(layer[0].numpy().astype(np.float64) for layer in outputs.attentions)


# --- the numbers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vit", "deit"])
def test_a_single_heads_row_sums_to_one_with_the_prefix_tokens(name, vit_explained, deit_explained):
    explanation = {"vit": vit_explained, "deit": deit_explained}[name]
    rows, columns = explanation.grid_size
    for layer in range(1, explanation.num_layers + 1):
        for head in range(1, explanation.num_heads + 1):
            for row, col in [(1, 1), (rows, columns), (2, 3)]:
                patch = patch_attention(explanation, row, col, layer=layer, head=head)
                assert patch.attends_to.shape == patch.attended_by.shape == (rows, columns)
                assert len(patch.to_prefix) == len(patch.from_prefix) == explanation.num_prefix_tokens
                total = patch.attends_to.sum() + sum(patch.to_prefix)
                assert total == pytest.approx(1.0, abs=FP32_TOLERANCE)
                assert (patch.attends_to >= 0).all() and (patch.attended_by >= 0).all()


@pytest.mark.parametrize(("name", "prefix"), [("vit", 1), ("deit", 2)])
def test_row_and_column_are_the_models_own_attention_weights(
    name, prefix, vit_explained, deit_explained, tiny_vit_dir, tiny_deit_dir, photo_path
):
    """Against transformers' output_attentions: the patch's row and column, skipping CLS (and DeiT's distillation
    token, the second token), reshaped row by row onto the patch grid."""
    explanation = {"vit": vit_explained, "deit": deit_explained}[name]
    weights = _model_attentions({"vit": tiny_vit_dir, "deit": tiny_deit_dir}[name], photo_path)
    assert explanation.num_prefix_tokens == prefix
    rows, columns = explanation.grid_size
    for row, col in [(1, 1), (1, columns), (rows, 1), (3, 2)]:
        token = prefix + (row - 1) * columns + (col - 1)
        for layer in (1, 2):
            matrix = weights[layer - 1][1]  # head 2
            patch = patch_attention(explanation, row, col, layer=layer, head=2)
            assert patch.token_index == token
            np.testing.assert_allclose(patch.attends_to, matrix[token, prefix:].reshape(rows, columns), atol=1e-6)
            np.testing.assert_allclose(patch.attended_by, matrix[prefix:, token].reshape(rows, columns), atol=1e-6)
            np.testing.assert_allclose(patch.to_prefix, matrix[token, :prefix], atol=1e-6)
            np.testing.assert_allclose(patch.from_prefix, matrix[:prefix, token], atol=1e-6)
            assert patch.to_cls == pytest.approx(matrix[token, 0], abs=1e-6)
            assert patch.from_cls == pytest.approx(matrix[0, token], abs=1e-6)
            assert patch.to_self == pytest.approx(matrix[token, token], abs=1e-6)


def _labelled(explanation: Explanation) -> Explanation:
    """The explanation with every attention weight replaced by a number saying where it sits:
    10000 * layer + 1000 * head + 100-based (from token, to token) code, so any mixed-up index shows."""
    heads, tokens, _ = explanation.attentions[0].shape
    from_token, to_token = np.meshgrid(np.arange(tokens), np.arange(tokens), indexing="ij")
    layers = tuple(
        np.stack([10000 * layer + 1000 * head + from_token + to_token / 100 for head in range(1, heads + 1)])
        for layer in range(1, explanation.num_layers + 1)
    )
    return replace(explanation, attentions=layers)


def test_deit_prefix_tokens_are_skipped_in_both_directions(deit_explained):
    labelled = _labelled(deit_explained)
    rows, columns = labelled.grid_size
    patch = patch_attention(labelled, 2, 3, layer=1, head=2)
    token = 2 + 1 * columns + 2
    assert (patch.row, patch.col, patch.token_index, patch.layer, patch.head) == (2, 3, token, 1, 2)
    assert patch.head_fusion is None
    # attends_to[r, c] is the weight from this token to patch (r, c), whose token is 2 + r * columns + c.
    expected_to = np.array(
        [[10000 + 2000 + token + (2 + r * columns + c) / 100 for c in range(columns)] for r in range(rows)]
    )
    expected_by = np.array(
        [[10000 + 2000 + (2 + r * columns + c) + token / 100 for c in range(columns)] for r in range(rows)]
    )
    np.testing.assert_allclose(patch.attends_to, expected_to)
    np.testing.assert_allclose(patch.attended_by, expected_by)
    assert patch.to_prefix == pytest.approx((12000 + token + 0.00, 12000 + token + 0.01))
    assert patch.from_prefix == pytest.approx((12000 + 0 + token / 100, 12000 + 1 + token / 100))


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_fused_heads_fuse_the_rows_and_columns(fusion, vit_explained):
    rows, columns = vit_explained.grid_size
    fused = getattr(np, fusion)(vit_explained.attentions[0].astype(np.float64), axis=0)
    patch = patch_attention(vit_explained, 4, 1, layer=1, head_fusion=fusion)
    token = 1 + 3 * columns
    assert (patch.head, patch.head_fusion) == (None, fusion)
    np.testing.assert_allclose(patch.attends_to, fused[token, 1:].reshape(rows, columns))
    np.testing.assert_allclose(patch.attended_by, fused[1:, token].reshape(rows, columns))
    if fusion == "mean":  # a mean of rows that each sum to 1 sums to 1; max and min need not
        assert patch.attends_to.sum() + patch.to_cls == pytest.approx(1.0, abs=FP32_TOLERANCE)


def test_no_layer_means_the_last_as_explain_and_redraw_take_it(vit_explained):
    labelled = _labelled(vit_explained)
    last = patch_attention(labelled, 1, 1, head=1)
    assert last.layer == labelled.num_layers == 2
    np.testing.assert_array_equal(last.attends_to, patch_attention(labelled, 1, 1, layer=2, head=1).attends_to)
    assert int(last.attends_to[0, 0]) // 10000 == 2


def test_value_ranges_are_the_raw_minimum_and_maximum(vit_explained):
    patch = patch_attention(vit_explained, 2, 2, layer=2, head=1)
    assert patch.attends_to_range == (patch.attends_to.min(), patch.attends_to.max())
    assert patch.attended_by_range == (patch.attended_by.min(), patch.attended_by.max())
    assert 0 < patch.attends_to_range[1] <= 1


# --- the pictures -----------------------------------------------------------------------------------------------


def test_overlays_are_the_photo_with_the_map_and_the_patch_outlined(vit_explained):
    picture = vit_explained.picture
    rows, columns = vit_explained.grid_size
    patch = patch_attention(vit_explained, 2, 3, layer=1, head=1, cmap="viridis", alpha=0.7)
    assert isinstance(patch, PatchAttention) and patch.scaling == "minmax"
    assert patch.attends_to_overlay.size == patch.attended_by_overlay.size == picture.size
    plain = np.asarray(overlay(picture, scale_map(patch.attends_to, "minmax"), alpha=0.7, cmap="viridis"))
    drawn = np.asarray(patch.attends_to_overlay)
    width, height = picture.size
    left, top = round(2 * width / columns), round(1 * height / rows)
    right, bottom = round(3 * width / columns) - 1, round(2 * height / rows) - 1
    changed = np.argwhere((drawn != plain).any(axis=-1))
    # Only the outline changed, and all around the patch: its four edges, nothing outside its box.
    assert changed[:, 0].min() == top and changed[:, 0].max() == bottom
    assert changed[:, 1].min() == left and changed[:, 1].max() == right
    assert (drawn[top, left:right] == 0).all()  # the black rim on the top edge
    middle = ((top + bottom) // 2, (left + right) // 2)
    assert (drawn[middle] == plain[middle]).all()  # the patch itself still shows its colour
    assert (np.asarray(patch.attended_by_overlay) != drawn).any()  # the column is another map


def test_scaling_max_divides_by_the_maximum(vit_explained):
    patch = patch_attention(vit_explained, 1, 1, layer=1, head=2, scaling="max", alpha=1.0)
    far_corner = np.asarray(patch.attends_to_overlay)[-5, -5]  # inside patch (4, 4), away from the outline
    expected = overlay(vit_explained.picture, scale_map(patch.attends_to, "max"), alpha=1.0)
    assert (np.asarray(expected)[-5, -5] == far_corner).all()
    assert patch.scaling == "max"


# --- clicks -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ((0, 0), None, (1, 1)),
        ((299, 0), None, (1, 3)),  # the last pixel column
        ((300, 200), None, (2, 3)),  # the right and bottom edges belong to the last patch
        ((100, 99.99), None, (1, 2)),  # x = one patch wide starts the second column; just above the middle line
        ((99.99, 100), None, (2, 1)),
        ((150.5, 0.4), None, (1, 2)),  # fractions, as a chart's click gives them
    ],
)
def test_a_click_maps_to_the_patch_under_it(x, y, expected):
    px, py = x
    assert patch_at_pixel(px, py, image_size=(300, 200), grid_size=(2, 3)) == expected


def test_the_centre_of_every_patch_maps_back_to_it_on_the_real_overlay(vit_explained):
    width, height = vit_explained.overlay.size
    rows, columns = vit_explained.grid_size
    for row in range(1, rows + 1):
        for col in range(1, columns + 1):
            x, y = int((col - 0.5) * width / columns), int((row - 0.5) * height / rows)
            assert patch_at_pixel(x, y, image_size=(width, height), grid_size=(rows, columns)) == (row, col)


@pytest.mark.parametrize(
    ("x", "y", "size", "grid"),
    [
        (-1, 0, (300, 200), (2, 3)),
        (0, 201, (300, 200), (2, 3)),
        (True, 0, (300, 200), (2, 3)),
        (0, 0, (0, 200), (2, 3)),
    ],
)
def test_a_click_off_the_picture_is_a_value_error(x, y, size, grid):
    with pytest.raises(ValueError, match="outside|no patch"):
        patch_at_pixel(x, y, image_size=size, grid_size=grid)


# --- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "options", "message"),
    [
        ((0, 1), {}, r"Patch row 0 is out of range: this image has patch rows 1 to 4"),
        ((5, 1), {}, r"Patch row 5 is out of range"),
        ((1, 5), {}, r"Patch column 5 is out of range: this image has patch columns 1 to 4, counted from the left"),
        ((True, 1), {}, r"Patch row True"),
        ((1.5, 1), {}, r"Patch row 1.5"),
        ((1, 1), {"layer": 3}, r"Layer 3 is out of range: this model has layers 1 to 2"),
        ((1, 1), {"layer": 0}, r"Layer 0 is out of range"),
        ((1, 1), {"head": 3}, r"Head 3 is out of range: this layer has heads 1 to 2"),
        ((1, 1), {"head_fusion": "median"}, r"Unknown head fusion 'median'"),
        ((1, 1), {"scaling": "log"}, r"Unknown scaling 'log'"),
        ((1, 1), {"cmap": "nope"}, r"Unknown colormap 'nope'"),
        ((1, 1), {"alpha": 2}, r"alpha \(opacity\) must be between 0 and 1"),
    ],
)
def test_bad_input_names_the_fix(vit_explained, arguments, options, message):
    with pytest.raises(ValueError, match=message):
        patch_attention(vit_explained, *arguments, **options)


def test_an_explanation_without_kept_attentions_says_press_explain(vit_explained):
    with pytest.raises(ValueError, match="kept no attention weights.*press Explain"):
        patch_attention(replace(vit_explained, attentions=()), 1, 1)


# --- the sentence both front ends show ---------------------------------------------------------------------------


def test_the_line_names_the_patch_and_its_real_numbers(vit_explained, deit_explained):
    from ui.shared.attention import patch_line, percent

    patch = patch_attention(vit_explained, 3, 2, layer=1, head=2)
    line = patch_line(patch)
    assert line.startswith("**Patch (row 3, col 2)**, layer 1, head 2: ")
    assert f"attends {percent(patch.to_self)} to itself, {percent(patch.to_cls)} to CLS;" in line
    others = patch.attends_to.copy()
    others[2, 1] = -1
    best_row, best_col = np.unravel_index(others.argmax(), others.shape)
    assert f"most to patch (row {best_row + 1}, col {best_col + 1}) ({percent(others.max())})" in line
    assert line.endswith(f"CLS gives it {percent(patch.from_cls)}.")
    deit_line = patch_line(patch_attention(deit_explained, 1, 1))
    assert "heads fused by mean" in deit_line and "to the distillation token" in deit_line
    assert [percent(value) for value in (0.123, 0.0456, 0.0004, 0.0)] == ["12%", "4.6%", "<0.1%", "0%"]


# --- the Streamlit page, through AppTest --------------------------------------------------------------------------


def test_streamlit_patch_boxes_show_the_patch_and_a_new_photo_hides_old_results(
    monkeypatch, tiny_vit_dir, photo_files, tmp_path
):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ui.shared.attention import patch_line

    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tiny_vit_dir))
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VIT_STUDIO_ALLOW_SERVER_PATHS", raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("streamlit_pages/attention.py").run()
    chelsea = photo_files["chelsea"]
    at.file_uploader(key="attention_upload").set_value((chelsea.name, chelsea.read_bytes(), "image/png"))
    at.button(key="attention_run").click().run()
    assert not at.exception, at.exception
    at.number_input(key="attention_patch_row").set_value(2)
    at.number_input(key="attention_patch_col").set_value(4).run()
    at.slider(key="attention_layer").set_value(1).run()
    assert not at.exception, at.exception
    expected = patch_line(patch_attention(explain(chelsea.read_bytes(), model=str(tiny_vit_dir)), 2, 4, layer=1))
    assert expected in [markdown.value for markdown in at.markdown]
    assert any(image.captions == ["Where it looks (its row)"] for image in at.image)
    # Another photo: the last results are another photo's, so they are not shown until Explain runs again.
    coffee = photo_files["coffee"]
    at.file_uploader(key="attention_upload").set_value((coffee.name, coffee.read_bytes(), "image/png")).run()
    assert any("press Explain" in info.value for info in at.info)
    assert expected not in [markdown.value for markdown in at.markdown]
    assert not any(image.captions == ["Where it looks (its row)"] for image in at.image)
