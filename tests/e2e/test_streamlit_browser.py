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


def open_streamlit_page(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("link", name="Classify").first.wait_for(timeout=FIRST_RUN_MS)
    if title != "Classify":
        page.get_by_role("link", name=title).first.click()


@pytest.mark.parametrize("title", list(PAPER_LINKS))
def test_each_streamlit_page_opens_with_its_teaching_text(page, streamlit_url, artifacts_dir, title):
    open_streamlit_page(page, streamlit_url, title)
    page.get_by_role("link", name=PAPER_LINKS[title]).first.wait_for(timeout=FIRST_RUN_MS)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="detached", timeout=FIRST_RUN_MS)  # the run ended
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
