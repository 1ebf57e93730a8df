"""The Train tab's captioner in a real browser with no Hub: check a small captioned zip, train a tiny captioner,
read its captions, compare the word maps before and after training, and use it in the Caption tab."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from training import write_captioned_shapes_zip
from ui.shared.caption_training import CAPTIONER_TASK, CLASSIFIER_TASK

pytestmark = pytest.mark.browser


def test_train_a_captioner_then_use_it(page, app_url, artifacts_dir, tmp_path):
    archive = write_captioned_shapes_zip(tmp_path, count=40)
    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    page.get_by_label(CAPTIONER_TASK).check()
    expect(page.locator("#ctrain")).to_be_visible(timeout=30_000)
    expect(page.locator("#train-classifier")).to_be_hidden()
    # Only what is relevant shows: no report, run or results before there is one.
    for section in ("#ctrain-report", "#ctrain-run-section", "#ctrain-results-section"):
        expect(page.locator(section)).to_be_hidden()
    assert page.locator("#ctrain-base input").input_value() == "vit-gpt2-scratch"

    page.locator("#ctrain-zip input[type=file]").set_input_files(str(archive))
    expect(page.locator("#ctrain-zip")).to_contain_text("captioned-shapes", timeout=30_000)
    page.locator("#ctrain-check").click()
    page.locator("#ctrain-data-summary").get_by_text("40 pairs on 40 images").wait_for(timeout=60_000)
    page.locator("#ctrain-histogram img").first.wait_for(timeout=30_000)
    page.locator("#ctrain-thumbnails img").first.wait_for(timeout=30_000)
    expect(page.locator("#ctrain-thumbnails")).to_contain_text(re.compile(r"(above|below|left of|right of) a"))
    page.screenshot(path=str(artifacts_dir / "caption-train-checked.png"), full_page=True)

    page.locator("#ctrain-epochs input").fill("2")
    page.locator("#ctrain-batch input").fill("8")
    page.locator("#ctrain-run-name textarea").fill("browser-captioner")
    page.locator("#ctrain-start").click()
    page.locator("#ctrain-progress").get_by_text("Finished").wait_for(timeout=240_000)
    expect(page.locator("#ctrain-scores")).to_contain_text("ROUGE-L")
    page.locator("#ctrain-curves img").first.wait_for(timeout=30_000)
    expect(page.locator("#ctrain-results-section")).to_be_visible(timeout=30_000)
    expect(page.locator("#ctrain-predictions")).to_contain_text("ROUGE-L")
    # A row per validation image (10% of 40), each named by its file (the table also keeps a hidden sizing row).
    image_names = page.locator("#ctrain-predictions").get_by_text(re.compile(r"^\d{4}\.png$"))
    expect(image_names.last).to_be_visible()
    assert image_names.count() >= 4
    page.screenshot(path=str(artifacts_dir / "caption-train-finished.png"), full_page=True)

    page.locator("#ctrain-word-maps").click()
    page.locator("#ctrain-before img").first.wait_for(timeout=120_000)
    page.locator("#ctrain-after img").first.wait_for(timeout=30_000)
    expect(page.locator("#ctrain-maps-line")).to_contain_text("before training")
    page.locator("#ctrain-results-section").screenshot(path=str(artifacts_dir / "caption-train-word-maps.png"))

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(artifacts_dir / "narrow-caption-train.png"), full_page=True)
    assert overflow <= 1, f"the captioner section is {overflow} px wider than a 390 px phone"
    page.set_viewport_size({"width": 1280, "height": 1000})

    # The classifier's list leaves the captioner out.
    page.get_by_label(CLASSIFIER_TASK).check()
    expect(page.locator("#train-classifier")).to_be_visible()
    page.locator("#train-runs input").click()
    expect(page.get_by_role("option", name=re.compile("browser-captioner"))).to_have_count(0)
    page.keyboard.press("Escape")
    page.get_by_label(CAPTIONER_TASK).check()

    page.locator("#ctrain-use").click()
    expect(page.get_by_role("tab", name="Caption", exact=True)).to_have_attribute(
        "aria-selected", "true", timeout=30_000
    )
    expect(page.locator("#caption-model input")).to_have_value(re.compile("browser-captioner"), timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "caption-train-used.png"))
    assert page.errors == []
