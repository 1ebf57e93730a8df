"""A person's path through each tab in a real browser: upload a photo, click, read the result on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from core import caption, classify, explain, zero_shot

from .teaching import PAPER_LINKS

pytestmark = pytest.mark.browser


def test_upload_a_photo_and_read_the_labels(page, app_url, tiny_vit_dir, photo_path, artifacts_dir):
    expected = classify(photo_path, model=str(tiny_vit_dir), top_k=5)
    page.goto(app_url)
    page.get_by_role("button", name="Classify", exact=True).wait_for()
    page.locator("input[type=file]").first.set_input_files(str(photo_path))
    page.locator("#photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Classify", exact=True).click()
    labels = page.locator("#top-labels")
    labels.get_by_text(expected[1].label).first.wait_for(timeout=60_000)
    text = labels.inner_text()
    for prediction in expected:
        assert prediction.label in text
    assert text.index(expected[0].label) < text.index(expected[-1].label), "labels are not shown best first"
    page.screenshot(path=str(artifacts_dir / "classify.png"), full_page=True)
    assert page.errors == []


def test_attention_side_by_side_in_the_browser(page, app_url, tiny_vit_dir, tiny_deit_dir, photo_path, artifacts_dir):
    page.goto(app_url)
    page.get_by_role("tab", name="Attention").click()
    page.locator("#attention-photo input[type=file]").set_input_files(str(photo_path))
    page.locator("#attention-photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Explain", exact=True).click()
    page.locator("#attention-overlay img").first.wait_for(timeout=60_000)
    page.locator("#layer-strip").get_by_text("up to layer 2").first.wait_for(timeout=30_000)
    # Each head's tile shows whole, its caption inside the gallery (a stretched tile used to be cut off above it).
    head_caption = page.locator("#head-grid").get_by_text("head 2", exact=True).first
    head_caption.wait_for(timeout=30_000)
    grid, caption_box = page.locator("#head-grid").bounding_box(), head_caption.bounding_box()
    assert caption_box["y"] + caption_box["height"] <= grid["y"] + grid["height"], (caption_box, grid)

    # Live redraw: another method redraws the map from the kept attentions, no Explain needed.
    overlay_source = page.locator("#attention-overlay img").first.get_attribute("src")
    page.locator("#attention-range").get_by_text("divided by the highest").first.wait_for(timeout=30_000)
    page.locator("#attention-method").get_by_text("Raw attention").click()
    page.locator("#attention-range").get_by_text("stretched so the lowest").first.wait_for(timeout=30_000)
    assert page.locator("#attention-overlay img").first.get_attribute("src") != overlay_source
    page.screenshot(path=str(artifacts_dir / "attention-redrawn.png"), full_page=True)

    page.get_by_text("Side by side", exact=True).click()
    model_b = page.locator("#model-b input")
    model_b.fill(str(tiny_deit_dir))
    model_b.press("Enter")
    page.locator("#method-b").get_by_text("Raw attention").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.locator("#left-overlay img").first.wait_for(timeout=60_000)
    page.locator("#right-overlay img").first.wait_for(timeout=60_000)
    deit_top = explain(photo_path, model=str(tiny_deit_dir), method="attention").predictions[0].label
    page.locator("#right-labels").get_by_text(deit_top).first.wait_for(timeout=30_000)
    page.locator("#left-overlay").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "attention-side-by-side.png"), full_page=True)
    assert page.errors == []


def test_caption_and_its_word_maps_in_the_browser(page, app_url, blip_dir, photo_path, artifacts_dir):
    page.goto(app_url)
    page.get_by_role("tab", name="Caption").click()
    model = page.locator("#caption-model input")
    model.fill(str(blip_dir))
    model.press("Enter")
    page.locator("#caption-prompt textarea, #caption-prompt input").first.fill("a photo of")
    page.locator("#caption-photo input[type=file]").set_input_files(str(photo_path))
    page.locator("#caption-photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Caption", exact=True).click()
    expected = caption(photo_path, model=str(blip_dir), prompt="a photo of", max_new_tokens=20, num_beams=3)
    page.locator("#captions").get_by_text(expected).first.wait_for(timeout=60_000)
    # The words are mapped right after the caption: one tile per word, numbered in caption order.
    last_word = f"{len(expected.split())}. {expected.split()[-1]}"
    page.locator("#word-maps").get_by_text(last_word).first.wait_for(timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "caption.png"), full_page=True)
    assert page.errors == []


def test_zero_shot_with_own_labels_in_the_browser(page, app_url, tiny_open_clip_dir, photo_path, artifacts_dir):
    model_name = f"local-dir:{tiny_open_clip_dir}"
    labels = "cat, dog, rocket, cup of coffee"
    page.goto(app_url)
    page.get_by_role("tab", name="Zero-shot").click()
    model = page.locator("#clip-model input")
    model.fill(model_name)
    model.press("Enter")
    page.locator("#clip-labels textarea").fill(labels)
    # An ensemble brings its own templates: the single-template box locks while one is chosen.
    template_box = page.locator("#clip-template input, #clip-template textarea").first
    page.locator("#clip-template-mode").get_by_text("OpenAI's 80 ImageNet templates").click()
    expect(template_box).to_be_disabled(timeout=30_000)
    page.locator("#clip-template-mode").get_by_text("One template (edit it below)").click()
    expect(template_box).to_be_enabled(timeout=30_000)
    page.locator("#clip-photo input[type=file]").set_input_files(str(photo_path))
    page.locator("#clip-photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Ask CLIP").click()
    best = zero_shot(photo_path, labels, model=model_name, pretrained=None)[0].label
    page.locator("#clip-top").get_by_text(best).first.wait_for(timeout=60_000)
    page.locator("#clip-map img").first.wait_for(timeout=60_000)
    assert page.locator("#clip-target input").input_value() == best
    page.screenshot(path=str(artifacts_dir / "zero-shot.png"), full_page=True)
    assert page.errors == []


def test_train_watch_the_curve_grow_then_stop(page, app_url, shapes_zip, tiny_vit_dir, photo_path, artifacts_dir):
    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-zip input[type=file]").set_input_files(str(shapes_zip))
    page.get_by_role("button", name="Check data").click()
    page.locator("#train-data-summary").get_by_text("3 classes").wait_for(timeout=60_000)
    expect(page.locator("#train-counts-key")).to_contain_text("Blue: training images · orange: validation images")
    base = page.locator("#train-base input")
    base.fill(str(tiny_vit_dir))
    base.press("Enter")
    page.locator("#train-mode").get_by_text("Full fine-tune").click()
    # The mode sets its own default epochs and learning rate: wait for them, then type over them.
    page.wait_for_function("() => document.querySelector('#train-epochs input').value === '3'", timeout=30_000)
    page.locator("#train-epochs input").fill("200")  # far more than the test waits for: Stop ends it
    page.locator("#train-lr input").fill("0.0005")
    page.locator("#train-run-name textarea").fill("browser-run")
    page.locator("#train-start").click()
    progress = page.locator("#train-progress")
    progress.get_by_text("Training (full").wait_for(timeout=90_000)
    # The loss curve grows: wait for a few more steps, then for the first validation point.
    page.wait_for_function(
        "() => /step (\\d+)\\//.test(document.querySelector('#train-progress').innerText) && "
        "Number(document.querySelector('#train-progress').innerText.match(/step (\\d+)\\//)[1]) >= 10",
        timeout=90_000,
    )
    page.locator("#train-curves img").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "train-running.png"), full_page=True)
    page.locator("#train-stop").click()
    progress.get_by_text("Stopped at step").wait_for(timeout=90_000)
    page.locator("#train-per-class").get_by_text("circle").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "train.png"), full_page=True)

    page.locator("#train-use").click()
    page.get_by_role("tab", name="Attention").click()
    attention_box = page.locator("#attention-model input")
    attention_box.wait_for(timeout=30_000)
    assert attention_box.input_value().endswith("browser-run")
    page.get_by_role("tab", name="Classify").click()
    model_box = page.locator("#classify-model input")
    assert model_box.input_value() == attention_box.input_value()
    page.locator("input[type=file]").first.set_input_files(str(photo_path))
    page.locator("#photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Classify", exact=True).click()
    top = classify(photo_path, model=model_box.input_value(), top_k=1)[0].label
    page.locator("#top-labels").get_by_text(top).first.wait_for(timeout=60_000)
    assert page.errors == []


def test_train_example_data_set_without_uploading(page, app_url, artifacts_dir):
    """A class with no photos at hand clicks the example data set, then checks it."""
    from training.examples import EXAMPLE_DATA_NAME

    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-example").get_by_text(EXAMPLE_DATA_NAME).first.click()
    # The file box shows the name in two parts ("shapes", ".zip").
    expect(page.locator("#train-zip")).to_contain_text(Path(EXAMPLE_DATA_NAME).stem, timeout=30_000)
    page.get_by_role("button", name="Check data").click()
    page.locator("#train-data-summary").get_by_text("3 classes, 102 training and 18 validation").wait_for(
        timeout=60_000
    )
    page.locator("#train-thumbnails img").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "train-example.png"), full_page=True)
    assert page.errors == []


# True once the page's scroll width has stayed the same for three polls in a row (300 ms at 100 ms polling).
SETTLED_WIDTH = """() => {
    const width = document.documentElement.scrollWidth;
    const seen = window.__settledWidth || (window.__settledWidth = {width: -1, same: 0});
    seen.same = width === seen.width ? seen.same + 1 : 0;
    seen.width = width;
    return seen.same >= 3;
}"""


def open_tab(page, name: str) -> None:
    """Click a top-level tab; on a narrow screen the later tabs sit behind the "More tabs" menu."""
    page.get_by_role("button", name="Classify").first.wait_for(timeout=30_000)
    tab = page.get_by_role("tab", name=name)
    if tab.count() == 0:
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator(".overflow-dropdown button", has_text=name)
    tab.first.click()


@pytest.mark.parametrize("tab", list(PAPER_LINKS))
def test_each_tab_fits_a_phone(phone_page, app_url, artifacts_dir, tab):
    """At 390 px nothing sticks out sideways (galleries may scroll inside their own box) and the tab starts
    with its teaching text."""
    page = phone_page
    page.goto(app_url)
    open_tab(page, tab)
    page.get_by_role("link", name=PAPER_LINKS[tab]).locator("visible=true").first.wait_for(timeout=30_000)
    # The tab's layout settles as its components render: wait (bounded) until the page width stops changing.
    page.wait_for_function(SETTLED_WIDTH, polling=100, timeout=10_000)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(artifacts_dir / f"narrow-{tab.lower()}.png"), full_page=True)
    assert overflow <= 1, f"the {tab} tab is {overflow} px wider than a 390 px phone"
    assert page.errors == []
