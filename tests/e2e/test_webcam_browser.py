"""The Train tab in a real browser with no Hub: train on the example set from scratch, export to ONNX, classify with
the run; and Teachable-Machine-style collecting into classes, training the head on them, then predicting."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from core import classify
from training.examples import SHAPES

from .conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

FAKE_CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def open_train_tab(page, app_url) -> None:
    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-base input").wait_for(timeout=30_000)


def test_offline_start_trains_the_example_set_then_classifies_with_it(page, app_url, photo_path, artifacts_dir):
    """The app runs with HF_HUB_OFFLINE=1 (conftest): Start from holds the scratch preset, so the first click works."""
    from training.examples import EXAMPLE_DATA_NAME

    open_train_tab(page, app_url)
    assert page.locator("#train-base input").input_value() == "vit-small-scratch"
    # Nothing but the data and the settings shows before there is anything to show.
    expect(page.locator("#train-run-section")).to_be_hidden()
    expect(page.locator("#train-results-section")).to_be_hidden()
    page.locator("#train-example").get_by_text(EXAMPLE_DATA_NAME).first.click()
    expect(page.locator("#train-zip")).to_contain_text(Path(EXAMPLE_DATA_NAME).stem, timeout=30_000)
    page.get_by_role("button", name="Check data").click()
    page.locator("#train-data-summary").get_by_text("3 classes, 102 training and 18 validation").wait_for(
        timeout=60_000
    )
    expect(page.locator("#train-thumbnails")).to_be_visible()
    page.locator("#train-run-name textarea").fill("offline-run")
    page.locator("#train-start").click()
    page.locator("#train-progress").get_by_text("Finished").wait_for(timeout=180_000)
    expect(page.locator("#train-run-section")).to_be_visible()
    expect(page.locator("#train-run-section .teacher-note").first).to_contain_text("validation accuracy")
    page.locator("#train-per-class").get_by_text("circle").first.wait_for(timeout=30_000)

    expect(page.locator("#train-cell")).to_be_hidden()  # until there is something to show in it
    page.locator("#train-predicted input").click()
    page.get_by_role("option", name="circle").click()  # the circles it got right: a cell with images in it
    page.locator("#train-show-cell").click()
    page.locator("#train-cell img").first.wait_for(timeout=60_000)
    page.locator("#train-export-onnx").click()
    check = page.locator("#train-onnx-check")
    check.get_by_text("Same top-1 as PyTorch on 18 of 18 validation images").wait_for(timeout=120_000)
    expect(page.locator("#train-onnx-file")).to_contain_text("offline-run")
    page.screenshot(path=str(artifacts_dir / "train-offline-exported.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(artifacts_dir / "narrow-train-finished.png"), full_page=True)
    assert overflow <= 1, f"the Train tab with a finished run is {overflow} px wider than a 390 px phone"
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.locator("#train-use").click()
    page.get_by_role("tab", name="Classify").click()
    model_box = page.locator("#classify-model input")
    expect(model_box).to_have_value(re.compile(r"offline-run$"), timeout=30_000)
    page.locator("input[type=file]").first.set_input_files(str(photo_path))
    page.locator("#photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Classify", exact=True).click()
    top = classify(photo_path, model=model_box.input_value(), top_k=1)[0].label
    assert top in SHAPES
    page.locator("#top-labels").get_by_text(top).first.wait_for(timeout=60_000)
    assert page.errors == []


def _colour_pictures(folder, colour: tuple[int, int, int], count: int) -> list[str]:
    """`count` noisy pictures of one colour, as a webcam would give of one object."""
    rng = np.random.default_rng(sum(colour))
    paths = []
    for index in range(count):
        noise = rng.integers(-30, 30, size=(96, 96, 3))
        picture = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
        path = folder / f"{colour[0]}-{index}.png"
        Image.fromarray(picture).save(path)
        paths.append(str(path))
    return paths


def use_upload_source(page) -> None:
    """The capture box's upload source (its webcam view's overlay covers the source buttons from a pointer)."""
    page.locator("#webcam-capture button[aria-label='Upload file']").dispatch_event("click")


def _add_to_class(page, name: str, paths: list[str]) -> None:
    """Type the class, then put each picture in through the capture box's upload source (the capture box clears
    itself after each picture, ready for the next)."""
    page.locator("#webcam-class textarea").fill(name)
    for path in paths:
        use_upload_source(page)
        page.locator("#webcam-capture input[type=file]").set_input_files(path)
        expect(page.locator("#webcam-capture input[type=file]")).to_have_count(1, timeout=30_000)
        page.wait_for_timeout(300)


def test_collect_classes_train_the_head_and_predict(page, app_url, tmp_path, tiny_vit_dir, artifacts_dir):
    """Collecting by upload into the capture box (the fake camera's run is the next test), removing a class, bad
    class names; then training the head on what was collected."""
    open_train_tab(page, app_url)
    page.get_by_role("tab", name="Webcam").click()
    expect(page.locator("#train-check")).to_be_hidden()  # it checks uploads; pictures are counted as they come
    base = page.locator("#train-base input")
    base.fill(str(tiny_vit_dir))
    base.press("Enter")
    page.locator("#webcam-class textarea").fill("../bad")
    use_upload_source(page)
    page.locator("#webcam-capture input[type=file]").set_input_files(_colour_pictures(tmp_path, (250, 0, 0), 1)[0])
    expect(page.locator(".toast-body").first).to_contain_text("only letters, digits", timeout=30_000)

    _add_to_class(page, "red", _colour_pictures(tmp_path, (230, 20, 20), 4))
    summary = page.locator("#webcam-summary")
    expect(summary).to_contain_text("red: 4 images", timeout=30_000)
    _add_to_class(page, "blue", _colour_pictures(tmp_path, (20, 20, 230), 4))
    _add_to_class(page, "green", _colour_pictures(tmp_path, (20, 200, 20), 2))
    expect(summary).to_contain_text("green: 2 images", timeout=30_000)
    expect(summary).to_contain_text("(10 in all)")
    expect(page.locator("#webcam-gallery img")).to_have_count(10)
    page.screenshot(path=str(artifacts_dir / "train-webcam-collected.png"), full_page=True)
    page.locator("#webcam-remove-class input").click()
    page.get_by_role("option", name="green").click()
    page.locator("#webcam-remove").click()
    expect(summary).to_contain_text("(8 in all)", timeout=30_000)
    expect(summary).not_to_contain_text("green")

    page.locator("#webcam-train").click()
    page.locator("#train-progress").get_by_text("Finished").wait_for(timeout=180_000)
    expect(page.locator("#train-run-dir input, #train-run-dir textarea").first).to_have_value(
        re.compile(r"^webcam"), timeout=30_000
    )
    page.locator("#train-per-class").get_by_text("blue").locator("visible=true").first.wait_for(timeout=30_000)
    expect(page.locator("#webcam-live")).to_be_visible()
    expect(page.locator("#train-results-section .teacher-note").first).to_contain_text("only knows the classes")
    page.screenshot(path=str(artifacts_dir / "train-webcam-trained.png"), full_page=True)
    assert page.errors == []


def _start_camera(page, box: str) -> None:
    """Open a streaming webcam box and press Record."""
    camera = page.locator(box)
    camera.get_by_text("Click to Access Webcam").first.click()
    camera.locator("video").wait_for(timeout=30_000)
    page.wait_for_timeout(800)  # the fake camera's first frames are black
    camera.locator("button[aria-label='capture photo']").click()  # "Record": the stream starts


def _take_pictures(page, name: str, count: int) -> None:
    """Type the class, then press Add a picture `count` times while the webcam records."""
    page.locator("#webcam-class textarea").fill(name)
    for taken in range(count):
        page.wait_for_timeout(400)  # a frame newer than the last one
        page.locator("#webcam-add").click()
        expect(page.locator("#webcam-summary")).to_contain_text(
            f"{name}: {taken + 1} image{'s' if taken else ''}", timeout=30_000
        )


def test_the_webcam_collects_trains_and_predicts_live(browser, app_url, tiny_vit_dir, artifacts_dir):
    """The whole Teachable Machine loop on Chromium's fake camera (a moving test pattern, the same for both
    classes: what is asserted is the flow, not what the model learns): pictures into two classes, train the head,
    then the live stream's predictions."""
    camera_browser = browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *FAKE_CAMERA_ARGS], headless=True
    )
    context = camera_browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    try:
        open_train_tab(page, app_url)
        page.get_by_role("tab", name="Webcam").click()
        base = page.locator("#train-base input")
        base.fill(str(tiny_vit_dir))
        base.press("Enter")
        page.locator("#webcam-class textarea").fill("pattern")
        page.locator("#webcam-add").click()
        expect(page.locator(".toast-body").first).to_contain_text("not recording yet", timeout=30_000)
        _start_camera(page, "#webcam-camera")
        _take_pictures(page, "pattern", 3)
        _take_pictures(page, "other", 3)
        expect(page.locator("#webcam-gallery img")).to_have_count(6)
        page.locator("#train-run-name textarea").fill("fake-camera")
        page.locator("#webcam-train").click()
        page.locator("#train-progress").get_by_text("Finished").wait_for(timeout=180_000)
        _start_camera(page, "#webcam-live")
        prediction = page.locator("#webcam-prediction")
        expect(prediction).to_contain_text(re.compile(r"(pattern|other)\s+\d+%"), timeout=60_000)
        page.screenshot(path=str(artifacts_dir / "train-webcam-live.png"), full_page=True)
    finally:
        context.close()
        camera_browser.close()
