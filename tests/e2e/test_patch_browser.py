"""Click a patch in the Gradio Attention tab, in a real browser: its row and column of the attention matrix appear,
follow the layer and head sliders at once, and go away when the photo changes; the sliders span the model's own
layers and heads."""

from __future__ import annotations

import pytest
from PIL import Image
from playwright.sync_api import expect

from core import explain, patch_attention
from ui.shared.attention import patch_line

from .test_browser import open_tab

pytestmark = pytest.mark.browser

EXPLAIN_MS = 60_000
REDRAW_MS = 30_000


@pytest.fixture(scope="module")
def six_layer_vit_dir(tmp_path_factory):
    """A tiny ViT with 6 layers of 3 heads (the issue's example of sliders that did not follow the model)."""
    import torch
    from conftest import save_tiny_model, tiny_config_kwargs
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(6)
    config = ViTConfig(**{**tiny_config_kwargs(), "num_hidden_layers": 6, "num_attention_heads": 3, "hidden_size": 48})
    return save_tiny_model(ViTForImageClassification(config), tmp_path_factory.mktemp("browser-vit-6x3"))


def explain_in_the_browser(page, app_url, photo_path, model: str | None = None) -> None:
    page.goto(app_url)
    open_tab(page, "Attention")
    if model is not None:
        box = page.locator("#attention-model input")
        box.fill(model)
        box.press("Enter")
    page.locator("#attention-photo input[type=file]").set_input_files(str(photo_path))
    page.locator("#attention-photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Explain", exact=True).click()
    page.locator("#attention-overlay img").first.wait_for(timeout=EXPLAIN_MS)


def click_patch(page, selector: str, row: int, col: int, grid: tuple[int, int]) -> None:
    """Click the middle of patch (row, col) of the picture in `selector`, where the page shows it (the picture is
    scaled to fit and centred in its element, as Gradio's own click handler assumes)."""
    picture = page.locator(selector).first
    picture.scroll_into_view_if_needed()
    box = picture.evaluate(
        """img => { const r = img.getBoundingClientRect();
            return {left: r.left, top: r.top, width: r.width, height: r.height,
                    natural_width: img.naturalWidth, natural_height: img.naturalHeight}; }"""
    )
    scale = min(box["width"] / box["natural_width"], box["height"] / box["natural_height"], 1)
    left = box["left"] + (box["width"] - box["natural_width"] * scale) / 2
    top = box["top"] + (box["height"] - box["natural_height"] * scale) / 2
    rows, columns = grid
    x = left + (col - 0.5) * box["natural_width"] / columns * scale
    y = top + (row - 0.5) * box["natural_height"] / rows * scale
    page.mouse.click(x, y)


def set_slider(page, label: str, value: int) -> None:
    """Type a value into a slider's number box and leave it, as a user does: Gradio sends the slider's release."""
    number = page.get_by_label(f"number input for {label}", exact=True)
    number.fill(str(value))
    number.press("Tab")


def sentence(text: str) -> str:
    """A Markdown line as the page shows it."""
    return text.replace("**", "")


def test_click_a_patch_to_see_its_row_and_column(page, app_url, tiny_vit_dir, photo_path, photo_files, artifacts_dir):
    explain_in_the_browser(page, app_url, photo_path)
    expected = explain(photo_path, model=str(tiny_vit_dir))
    grid = expected.grid_size
    click_patch(page, "#attention-overlay img", 3, 2, grid)
    line = page.locator("#patch-line")
    line.get_by_text("Patch (row 3, col 2), layer 2, heads fused by mean").wait_for(timeout=REDRAW_MS)
    assert sentence(patch_line(patch_attention(expected, 3, 2))) in line.inner_text()
    assert page.locator("#patch-row input").input_value() == "3"
    assert page.locator("#patch-col input").input_value() == "2"
    to_source = page.locator("#patch-to img").first.get_attribute("src")
    by_source = page.locator("#patch-by img").first.get_attribute("src")
    assert to_source and by_source and to_source != by_source
    page.locator("#patch-view").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "attention-patch.png"), full_page=True)

    # The layer slider redraws the patch view at once, from the kept attentions.
    set_slider(page, "Layer (0 = all / last)", 1)
    line.get_by_text("Patch (row 3, col 2), layer 1, heads fused by mean").wait_for(timeout=REDRAW_MS)
    assert sentence(patch_line(patch_attention(expected, 3, 2, layer=1))) in line.inner_text()
    assert page.locator("#patch-to img").first.get_attribute("src") != to_source
    set_slider(page, "Head (0 = all heads fused)", 2)
    line.get_by_text("Patch (row 3, col 2), layer 1, head 2").wait_for(timeout=REDRAW_MS)
    assert sentence(patch_line(patch_attention(expected, 3, 2, layer=1, head=2))) in line.inner_text()

    # A click on the patch map itself moves to the patch under it.
    click_patch(page, "#patch-by img", 1, 4, grid)
    line.get_by_text("Patch (row 1, col 4), layer 1, head 2").wait_for(timeout=REDRAW_MS)
    page.screenshot(path=str(artifacts_dir / "attention-patch-layer1-head2.png"), full_page=True)
    # ... and one on the patch grid (the model's input, enlarged: another size than the photo).
    click_patch(page, "#patch-grid img", 2, 1, grid)
    line.get_by_text("Patch (row 2, col 1), layer 1, head 2").wait_for(timeout=REDRAW_MS)

    # Another photo: the old results go, the patch view with them.
    page.locator("#attention-photo input[type=file]").set_input_files(str(photo_files["coffee"]))
    page.locator("#attention-photo img").first.wait_for(timeout=30_000)
    page.locator("#attention-overlay img").wait_for(state="detached", timeout=REDRAW_MS)
    assert page.locator("#patch-to img").count() == page.locator("#patch-by img").count() == 0
    # The line empties when the clearing event lands; until then Gradio may show its pending timer ("0.0s") there.
    page.wait_for_function("() => document.querySelector('#patch-line').innerText.trim() === ''", timeout=REDRAW_MS)
    assert page.locator("#attention-range").inner_text().strip() == ""
    assert page.locator("#patch-row input").input_value() == ""
    page.screenshot(path=str(artifacts_dir / "attention-cleared-on-new-photo.png"), full_page=True)
    assert page.errors == []


def test_sliders_span_a_six_layer_three_head_model_and_its_patches(
    page, app_url, six_layer_vit_dir, photo_path, artifacts_dir
):
    explain_in_the_browser(page, app_url, photo_path, model=str(six_layer_vit_dir))
    layer = page.get_by_label("number input for Layer (0 = all / last)", exact=True)
    head = page.get_by_label("number input for Head (0 = all heads fused)", exact=True)
    # Refitted when the model box changes (and again after Explain): the values Gradio will accept, 0 to 6 and 0 to 3.
    expect(layer).to_have_attribute("max", "6", timeout=REDRAW_MS)
    expect(head).to_have_attribute("max", "3", timeout=REDRAW_MS)
    layer_range = page.get_by_label("range slider for Layer (0 = all / last)", exact=True)
    assert layer_range.get_attribute("max") == "6"
    set_slider(page, "Head (0 = all heads fused)", 3)
    click_patch(page, "#attention-overlay img", 4, 4, (4, 4))
    page.locator("#patch-line").get_by_text("Patch (row 4, col 4), layer 6, head 3").wait_for(timeout=REDRAW_MS)
    page.locator("#patch-view").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "attention-patch-6x3.png"), full_page=True)
    assert page.errors == []


def test_click_a_patch_on_a_phone(phone_page, app_url, photo_path, artifacts_dir):
    page = phone_page
    explain_in_the_browser(page, app_url, photo_path)
    click_patch(page, "#attention-overlay img", 2, 2, (4, 4))
    page.locator("#patch-line").get_by_text("Patch (row 2, col 2)").wait_for(timeout=REDRAW_MS)
    page.locator("#patch-view").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "narrow-attention-patch.png"), full_page=True)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the patch view is {overflow} px wider than a 390 px phone"
    assert page.errors == []


def test_the_patch_endpoint_answers_with_the_engines_numbers(app_url, tiny_vit_dir, photo_path):
    """/patch, as gradio_client calls it: the session's kept explanation, a row and a column, the map controls."""
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    settings = [str(tiny_vit_dir), "rollout", "mean", 0.0, 0, 0, None, "jet", 0.5]  # the tab's order
    client.predict(handle_file(str(photo_path)), *settings, api_name="/explain")
    to_map, by_map, text = client.predict(2, 4, "max", 1, 0, "jet", 0.5, api_name="/patch")
    # The maps come as updates: they show once a patch is chosen.
    assert to_map["visible"] is True and by_map["visible"] is True
    to_path, by_path = to_map["value"], by_map["value"]
    expected = patch_attention(explain(photo_path, model=str(tiny_vit_dir)), 2, 4, layer=1, head_fusion="max")
    assert text.startswith(patch_line(expected))
    assert "layer 1, heads fused by max" in text
    assert Image.open(to_path).size == Image.open(by_path).size == Image.open(photo_path).size
    with pytest.raises(Exception, match="Patch row 9 is out of range: this image has patch rows 1 to 4"):
        client.predict(9, 1, "mean", 0, 0, "jet", 0.5, api_name="/patch")
