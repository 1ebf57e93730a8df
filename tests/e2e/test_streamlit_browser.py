"""The Streamlit front end as `python app.py --ui streamlit` serves it, in a real browser: every page opens with
its teaching text and no error, and the example photo classifies without an upload."""

from __future__ import annotations

import pytest

from core import classify
from core.examples import example_images

from .teaching import PAPER_LINKS

pytestmark = pytest.mark.browser

# Streamlit's first script run imports torch, transformers and open_clip.
FIRST_RUN_MS = 120_000


def open_streamlit_page(page, url: str, title: str, phone: bool = False) -> None:
    """From the start page, as a user goes (a deep link makes Streamlit probe for a base path, with 404s)."""
    page.goto(url)
    page.get_by_role("heading", name="Classify").first.wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)  # a click during the first run would cut it short and leave placeholders
    if title != "Classify":
        if phone:  # the top bar folds into a side menu
            page.get_by_role("button", name="Expand sidebar").click()
        page.get_by_role("link", name=title).first.click()
        if phone:
            page.get_by_role("button", name="Collapse sidebar").click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)


def wait_for_the_run_to_end(page) -> None:
    """Until the page's script has run to its end (before that, widgets still to come show as grey placeholders);
    call it once something of this page's own run is on screen, so that the previous page's end does not count."""
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=FIRST_RUN_MS)


@pytest.mark.parametrize("title", list(PAPER_LINKS))
def test_each_streamlit_page_opens_with_its_teaching_text(page, streamlit_url, artifacts_dir, title):
    open_streamlit_page(page, streamlit_url, title)
    page.get_by_role("link", name=PAPER_LINKS[title]).first.wait_for(timeout=FIRST_RUN_MS)
    page.screenshot(path=str(artifacts_dir / f"streamlit-{title.lower()}.png"), full_page=True)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.errors == [], page.errors


def test_streamlit_classifies_the_example_photo_without_an_upload(page, streamlit_url, tiny_vit_dir, artifacts_dir):
    open_streamlit_page(page, streamlit_url, "Classify")
    page.get_by_role("button", name="Classify", exact=True).click()
    page.get_by_text("Top labels").wait_for(timeout=FIRST_RUN_MS)
    top = classify(example_images()[0], model=str(tiny_vit_dir), top_k=1)[0]
    # The table is drawn on a canvas; its cells are also in an off-screen table for screen readers.
    first_cell = page.locator("[data-testid=stDataFrame] td").first
    first_cell.wait_for(state="attached", timeout=30_000)
    assert first_cell.text_content() == top.label
    page.screenshot(path=str(artifacts_dir / "streamlit-classify-example.png"), full_page=True)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.errors == [], page.errors


@pytest.mark.parametrize("title", list(PAPER_LINKS))
def test_each_streamlit_page_fits_a_phone(phone_page, streamlit_url, artifacts_dir, title):
    page = phone_page
    open_streamlit_page(page, streamlit_url, title, phone=True)
    page.get_by_role("link", name=PAPER_LINKS[title]).first.wait_for(timeout=FIRST_RUN_MS)
    # Streamlit scrolls the page inside its main block, so a sideways overflow would show there.
    overflow = page.evaluate("""() => Math.max(document.documentElement.scrollWidth - window.innerWidth,
        ...Array.from(document.querySelectorAll('[data-testid=stMain]'),
                      main => main.scrollWidth - main.clientWidth))""")
    page.screenshot(path=str(artifacts_dir / f"streamlit-narrow-{title.lower()}.png"), full_page=True)
    assert overflow <= 1, f"the {title} page is {overflow} px wider than a 390 px phone"
    assert page.errors == [], page.errors
