"""The Streamlit Train page's captioner part in a real browser: choosing Captioner and checking the example set shows
its counts, caption-length histogram and captioned thumbnails; a short run on an uploaded zip ends with its validation
captions and word maps before and after; no error on the way."""

from __future__ import annotations

import pytest

from training import write_captioned_shapes_zip
from ui.shared.caption_training import (
    BEFORE_LABEL,
    CAPTION_EXAMPLE_BUTTON,
    CAPTIONER_TASK,
    PREDICTIONS_LABEL,
    TOKEN_HISTOGRAM_LABEL,
    WORD_MAPS_BUTTON,
)

from .test_streamlit_browser import FIRST_RUN_MS, open_streamlit_page, wait_for_the_run_to_end

pytestmark = pytest.mark.browser

TRAIN_MS = 240_000  # two epochs of 36 pictures on a busy 2-core CPU, with the validation captions


def test_streamlit_captioner_checks_the_example_set(page, streamlit_url, artifacts_dir):
    open_streamlit_page(page, streamlit_url, "Train")
    page.get_by_text(CAPTIONER_TASK).click()
    page.get_by_role("button", name=CAPTION_EXAMPLE_BUTTON).wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    page.get_by_role("button", name=CAPTION_EXAMPLE_BUTTON).click()
    # The example set is drawn on first use (1,200 pictures), then unpacked and checked.
    page.get_by_text("1200 pairs on 1200 images").wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    page.get_by_text(TOKEN_HISTOGRAM_LABEL).wait_for(timeout=30_000)
    assert page.locator("[data-testid=stImage] img").count() >= 7  # the histogram and six captioned thumbnails
    # Streamlit scrolls inside its own container, so a full-page shot shows one screen: a tall window shows all.
    page.set_viewport_size({"width": 1280, "height": 2600})
    wait_for_the_run_to_end(page)
    page.screenshot(path=str(artifacts_dir / "streamlit-train-captioner.png"), full_page=True)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.errors == [], page.errors


def test_streamlit_captioner_trains_and_shows_what_it_learnt(page, streamlit_url, artifacts_dir, tmp_path):
    archive = write_captioned_shapes_zip(tmp_path, count=40)
    open_streamlit_page(page, streamlit_url, "Train")
    page.get_by_text(CAPTIONER_TASK).click()
    page.get_by_role("button", name=CAPTION_EXAMPLE_BUTTON).wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    page.locator("input[type=file]").first.set_input_files(str(archive))
    page.get_by_text(archive.name).wait_for(timeout=30_000)
    wait_for_the_run_to_end(page)
    for label, value in (("Epochs", "2"), ("Batch size", "8")):
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_label(label, exact=True).press("Enter")
        wait_for_the_run_to_end(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished: step 10/10").wait_for(timeout=TRAIN_MS)
    page.get_by_text(PREDICTIONS_LABEL).wait_for(timeout=30_000)
    wait_for_the_run_to_end(page)
    page.get_by_role("button", name=WORD_MAPS_BUTTON).click()
    page.get_by_text(BEFORE_LABEL, exact=True).wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    page.set_viewport_size({"width": 1280, "height": 3200})
    wait_for_the_run_to_end(page)
    page.screenshot(path=str(artifacts_dir / "streamlit-train-captioner-results.png"), full_page=True)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.errors == [], page.errors
