"""A class in the browser: the offline banner, teacher notes and presentation mode, every tab reachable on a
phone, and results that leave when the model or the photo they came from changes."""

from __future__ import annotations

import pytest

from core import classify

pytestmark = pytest.mark.browser

TAB_NAMES = ("Classify", "Attention", "Step by step", "Caption", "Zero-shot", "Train")


def test_offline_banner_teacher_notes_and_presentation_mode(page, app_url, artifacts_dir):
    page.goto(app_url)
    # The app under test runs with the Hub switched off, as a classroom without wifi does.
    banner = page.locator("#offline-banner")
    banner.get_by_text("Hub can't be reached").wait_for(timeout=30_000)
    note = page.locator(".teacher-note").locator("visible=true").first
    note.get_by_text("What to notice:").wait_for(timeout=30_000)

    page.locator("#presentation-toggle input").check()
    page.wait_for_function("() => document.body.classList.contains('presenting')", timeout=10_000)
    zoom = page.evaluate("() => getComputedStyle(document.querySelector('.gradio-container')).zoom")
    assert float(zoom) > 1.2
    page.screenshot(path=str(artifacts_dir / "presentation-mode.png"))

    page.locator("#notes-toggle input").uncheck()
    page.wait_for_function("() => document.body.classList.contains('hide-notes')", timeout=10_000)
    assert page.locator(".teacher-note").locator("visible=true").count() == 0
    page.locator("#notes-toggle input").check()
    page.locator(".teacher-note").locator("visible=true").first.wait_for(timeout=10_000)
    assert page.errors == []


def test_every_tab_shows_in_the_tab_bar_on_a_phone(phone_page, app_url, artifacts_dir):
    page = phone_page
    page.goto(app_url)
    page.get_by_role("tab", name="Classify").wait_for(timeout=30_000)
    for name in TAB_NAMES:
        assert page.get_by_role("tab", name=name, exact=True).is_visible(), f"{name} is hidden on a phone"
    assert page.get_by_role("button", name="More tabs").count() == 0
    page.screenshot(path=str(artifacts_dir / "narrow-tab-bar.png"))


def test_classify_results_leave_when_the_model_or_photo_changes(
    page, app_url, tiny_vit_dir, tiny_deit_dir, photo_files
):
    expected = classify(photo_files["chelsea"], model=str(tiny_vit_dir), top_k=5)
    page.goto(app_url)
    model = page.locator("#classify-model input")
    model.fill(str(tiny_vit_dir))
    model.press("Enter")
    page.locator("#photo input[type=file]").set_input_files(str(photo_files["chelsea"]))
    page.locator("#photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Classify", exact=True).click()
    labels, status = page.locator("#top-labels"), page.locator("#status")
    labels.get_by_text(expected[0].label).first.wait_for(timeout=60_000)
    status.get_by_text(" ms").first.wait_for(timeout=30_000)

    # Another model: the first model's labels and status line go.
    model.fill(str(tiny_deit_dir))
    model.press("Enter")
    labels.get_by_text(expected[0].label).first.wait_for(state="detached", timeout=30_000)
    assert " ms" not in status.inner_text()

    # Classified again, then another photo: the labels go again.
    page.get_by_role("button", name="Classify", exact=True).click()
    status.get_by_text(" ms").first.wait_for(timeout=60_000)
    page.locator("#photo input[type=file]").set_input_files(str(photo_files["astronaut"]))
    page.wait_for_function("() => !document.querySelector('#status').innerText.includes(' ms')", timeout=30_000)
    assert page.errors == []
