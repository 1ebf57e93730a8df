"""The Step-by-step tab in a real browser, at desktop and phone width: every step's picture and sentence, with the
numbers the engine gives for the same photo and model."""

from __future__ import annotations

import pytest

from core import walkthrough
from core.examples import example_images
from ui.shared.walkthrough import STEP_TITLES

pytestmark = pytest.mark.browser

TAB = "Step by step"


def open_the_tab(page, app_url: str) -> None:
    page.goto(app_url)
    page.get_by_role("button", name="Classify").first.wait_for(timeout=30_000)
    tab = page.get_by_role("tab", name=TAB)
    if tab.count() == 0:  # a tab bar that folds the later tabs behind "More tabs"
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator(".overflow-dropdown button", has_text=TAB)
    tab.first.click()
    page.locator("#walk-model input").wait_for(timeout=30_000)


def expected_numbers(walk) -> dict[str, list[str]]:
    """For each step, numbers its sentence must show, formatted as the page shows them."""
    layer, head = walk.layer, walk.head
    return {
        "patches": [f"{walk.grid_size[0]}×{walk.grid_size[1]} grid", f"{walk.num_tokens} tokens"],
        "embedding": [f"{walk.embedding.patch_embeddings[0, 0]:.2f}"],
        "position": [f"{walk.position.similarity[0, 0, 0, 1]:.2f}"],
        "attention": [f"layer {layer.layer}", f"head {layer.head}", f"{layer.cls_attention.max():.3f}"],
        "mlp": [f"{layer.attention_norms[0]:.2f}", f"{layer.mlp_norms[0]:.2f}"],
        "cls": [f"{walk.cls.vector[0]:.2f}"],
        "head": [head.top[0].label, f"{head.top_logits[0]:.2f}", f"{head.top[0].score:.1%}"],
    }


def walk_through_the_example(page, tiny_vit_dir) -> None:
    model = page.locator("#walk-model input")
    model.fill(str(tiny_vit_dir))
    model.press("Enter")
    page.locator("#walk-examples").get_by_role("button").first.click()
    page.locator("#walk-photo img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Walk through", exact=True).click()
    # The pictures load lazily: attached once the answer is in, drawn once scrolled to.
    page.locator("#walk-head-picture img").first.wait_for(state="attached", timeout=90_000)


def check_every_step(page, tiny_vit_dir) -> None:
    walk = walkthrough(example_images()[0], str(tiny_vit_dir))
    for key, numbers in expected_numbers(walk).items():
        step = page.locator(f"#walk-{key}")
        assert step.get_by_text(STEP_TITLES[key]).count() == 1, key
        picture = page.locator(f"#walk-{key}-picture img").first
        picture.scroll_into_view_if_needed()
        picture.wait_for(timeout=30_000)
        text = page.locator(f"#walk-{key}-text").inner_text()
        for number in numbers:
            assert number in text, (key, number, text)
    assert str(tiny_vit_dir) in page.locator("#walk-status").inner_text()


def test_step_by_step_at_desktop_width(page, app_url, tiny_vit_dir, artifacts_dir):
    open_the_tab(page, app_url)
    walk_through_the_example(page, tiny_vit_dir)
    check_every_step(page, tiny_vit_dir)
    page.screenshot(path=str(artifacts_dir / "walkthrough-desktop.png"), full_page=True)
    # Another photo: the steps were this one's, so they go until Walk through runs again.
    page.locator("#walk-examples").get_by_role("button").nth(1).click()
    page.locator("#walk-status").get_by_text("Pick a photo and press").wait_for(timeout=30_000)
    page.wait_for_function("() => !document.querySelector('#walk-head-text').innerText.trim()", timeout=30_000)
    assert page.locator("#walk-head-picture img").count() == 0
    assert page.errors == []


def test_step_by_step_at_phone_width(phone_page, app_url, tiny_vit_dir, artifacts_dir):
    page = phone_page
    open_the_tab(page, app_url)
    walk_through_the_example(page, tiny_vit_dir)
    check_every_step(page, tiny_vit_dir)
    # One column: each picture fits the screen's width (scaled down), and nothing sticks out sideways.
    for key in STEP_TITLES:
        box = page.locator(f"#walk-{key}-picture img").first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (key, box)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(artifacts_dir / "walkthrough-phone.png"), full_page=True)
    assert overflow <= 1, f"the {TAB} tab is {overflow} px wider than a 390 px phone"
    assert page.errors == []


# ---- Streamlit ---------------------------------------------------------------------------------------------------


# Streamlit scrolls the page inside its main block, so a sideways overflow would show there.
STREAMLIT_OVERFLOW = """() => Math.max(document.documentElement.scrollWidth - window.innerWidth,
    ...Array.from(document.querySelectorAll('[data-testid=stMain]'), main => main.scrollWidth - main.clientWidth))"""


@pytest.mark.parametrize(("width", "height", "name"), [(1280, 1000, "desktop"), (390, 844, "phone")])
def test_streamlit_step_by_step(browser, streamlit_url, tiny_vit_dir, artifacts_dir, width, height, name):
    from .conftest import open_page
    from .test_streamlit_browser import FIRST_RUN_MS, open_streamlit_page, wait_for_the_run_to_end

    context, page = open_page(browser, width, height)
    try:
        open_streamlit_page(page, streamlit_url, TAB, phone=name == "phone")
        page.get_by_role("button", name="Walk through").click()
        page.get_by_role("heading", name=STEP_TITLES["head"]).wait_for(timeout=FIRST_RUN_MS)
        wait_for_the_run_to_end(page)
        walk = walkthrough(example_images()[0], str(tiny_vit_dir))
        text = page.locator("[data-testid=stMain]").inner_text()
        for key, numbers in expected_numbers(walk).items():
            assert STEP_TITLES[key] in text, key
            for number in numbers:
                assert number in text, (key, number)
        pictures = page.locator("[data-testid=stMain] [data-testid=stImage] img")
        assert pictures.count() >= len(STEP_TITLES) + 1  # the photo's preview, then one picture per step
        overflow = page.evaluate(STREAMLIT_OVERFLOW)
        # Streamlit scrolls inside its main block, so a full-page screenshot is one screen: make the screen the page.
        whole = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": width, "height": min(whole, 16_000)})
        page.get_by_role("heading", name=STEP_TITLES["head"]).wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts_dir / f"streamlit-walkthrough-{name}.png"), full_page=True)
        assert overflow <= 1, f"the {TAB} page is {overflow} px wider than the screen"
        assert page.locator("[data-testid=stException]").count() == 0
        assert page.errors == [], page.errors
    finally:
        context.close()
