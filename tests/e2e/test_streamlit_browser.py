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


def test_streamlit_click_a_patch_on_the_attention_map(page, streamlit_url, tiny_vit_dir, artifacts_dir):
    """The patch grid is an Altair chart over the overlay: a click picks the patch under it, and the layer slider
    redraws its row and column from the kept attentions."""
    from core import explain, patch_attention
    from ui.shared.attention import patch_line

    open_streamlit_page(page, streamlit_url, "Attention")
    page.get_by_role("button", name="Explain", exact=True).click()
    chart = page.locator("[data-testid=stVegaLiteChart] svg.marks").first
    chart.wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    rows = columns = 4  # the tiny ViT's 32x32 input in 8x8 patches
    page.mouse.click(box["x"] + 1.5 * box["width"] / columns, box["y"] + 2.5 * box["height"] / rows)  # row 3, col 2
    line = page.get_by_text("Patch (row 3, col 2), layer 2, heads fused by mean")
    line.wait_for(timeout=FIRST_RUN_MS)
    expected = explain(example_images()[0], model=str(tiny_vit_dir))
    assert patch_line(patch_attention(expected, 3, 2)).replace("**", "") == line.inner_text()
    wait_for_the_run_to_end(page)
    line.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "streamlit-attention-patch.png"))
    # The layer slider, moved by keyboard as a user can: from 0 (the last layer) to 1.
    page.get_by_role("slider", name="Layer (0 = all / last)").press("ArrowRight")
    page.get_by_text("Patch (row 3, col 2), layer 1, heads fused by mean").wait_for(timeout=FIRST_RUN_MS)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.errors == [], page.errors


def test_streamlit_patch_view_fits_a_phone(phone_page, streamlit_url, artifacts_dir):
    page = phone_page
    open_streamlit_page(page, streamlit_url, "Attention", phone=True)
    page.get_by_role("button", name="Explain", exact=True).click()
    chart = page.locator("[data-testid=stVegaLiteChart] svg.marks").first
    chart.wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    page.mouse.click(box["x"] + 0.5 * box["width"] / 4, box["y"] + 0.5 * box["height"] / 4)  # row 1, col 1
    line = page.get_by_text("Patch (row 1, col 1)")
    line.wait_for(timeout=FIRST_RUN_MS)
    wait_for_the_run_to_end(page)
    overflow = page.evaluate("""() => Math.max(document.documentElement.scrollWidth - window.innerWidth,
        ...Array.from(document.querySelectorAll('[data-testid=stMain]'),
                      main => main.scrollWidth - main.clientWidth))""")
    line.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "streamlit-narrow-attention-patch.png"))
    assert overflow <= 1, f"the patch view is {overflow} px wider than a 390 px phone"
    assert page.errors == [], page.errors
