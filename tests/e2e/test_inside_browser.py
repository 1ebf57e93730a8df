"""The Inside tab in a real browser at desktop and phone width: masked autoencoding with a click, feature PCA with a
patch click, token merging with its curve; screenshots, no sideways overflow on a phone, no page errors."""

from __future__ import annotations

import pytest

from .conftest import open_page
from .test_inside_api import save_tiny_dinov2, save_tiny_mae

pytestmark = pytest.mark.browser

TAB = "Inside"
RUN_MS = 90_000


@pytest.fixture(scope="module")
def mae_dir(tmp_path_factory):
    return save_tiny_mae(tmp_path_factory.mktemp("browser-mae"))


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    return save_tiny_dinov2(tmp_path_factory.mktemp("browser-dino"))


def open_the_tab(page, app_url: str) -> None:
    page.goto(app_url)
    page.get_by_role("button", name="Classify").first.wait_for(timeout=30_000)
    tab = page.get_by_role("tab", name=TAB, exact=True)
    if tab.count() == 0:  # a tab bar that folds the later tabs behind "More tabs"
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator(".overflow-dropdown button", has_text=TAB)
    tab.first.click()
    page.locator("#mae-model input").wait_for(timeout=30_000)


def choose(page, selector: str, value: str) -> None:
    box = page.locator(f"{selector} input")
    box.fill(value)
    box.press("Enter")


def sub_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def masked_autoencoding(page, mae_dir) -> None:
    choose(page, "#mae-model", str(mae_dir))
    page.locator("#mae-photo-examples").get_by_role("button").first.click()
    page.locator("#mae-photo img").first.wait_for(timeout=30_000)
    page.locator("#mae-run").click()
    page.locator("#mae-pasted img").first.wait_for(state="attached", timeout=RUN_MS)
    page.locator("#mae-loss").get_by_text("12 of 16 patches hidden").wait_for(timeout=RUN_MS)
    # Mask what I click: one click on the bottom-left patch (clear of the picture's label and buttons) hides it alone.
    page.locator("#mae-click-mode input").check()
    masked = page.locator("#mae-masked img").first
    masked.scroll_into_view_if_needed()
    box = masked.bounding_box()
    masked.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.9})
    page.locator("#mae-loss").get_by_text("1 of 16 patches hidden").wait_for(timeout=RUN_MS)
    assert page.locator("#mae-hidden textarea, #mae-hidden input").first.input_value() == "12"


def self_supervised_features(page, dino_dir, tiny_vit_dir) -> None:
    sub_tab(page, "Self-supervised features")
    choose(page, "#features-model-a", str(dino_dir))
    choose(page, "#features-model-b", str(tiny_vit_dir))
    page.locator("#features-photo-examples").get_by_role("button").first.click()
    page.locator("#features-photo img").first.wait_for(timeout=30_000)
    page.locator("#features-run").click()
    page.locator("#features-b-overlay img").first.wait_for(state="attached", timeout=RUN_MS)
    picture = page.locator("#features-a-picture img").first
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    picture.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.9})
    page.locator("#features-b-similarity img").first.wait_for(state="attached", timeout=RUN_MS)
    line = page.locator("#features-similarity-line").inner_text()
    assert line.count("row 4, column 1 of 4x4") == 2, line


def token_merging(page, tiny_vit_dir) -> None:
    sub_tab(page, "Token merging")
    choose(page, "#merging-model", str(tiny_vit_dir))
    page.locator("#merging-photo-examples").get_by_role("button").first.click()
    page.locator("#merging-photo img").first.wait_for(timeout=30_000)
    page.locator("#merging-run").click()
    page.locator("#merging-tokens").get_by_text("Tokens after each layer").wait_for(timeout=RUN_MS)
    assert page.locator("#merging-strip img").count() == 2  # one picture per layer of the tiny ViT
    page.locator("#merging-curve-run").click()
    page.locator("#merging-curve-line").get_by_text("Over 4 photos").wait_for(timeout=RUN_MS)
    page.locator("#merging-curve-plot img, #merging-curve-plot canvas, #merging-curve-plot svg").first.wait_for(
        state="attached", timeout=RUN_MS
    )


@pytest.mark.parametrize(("width", "height", "name"), [(1280, 1000, "desktop"), (390, 844, "phone")])
def test_inside_tab(browser, app_url, tiny_vit_dir, mae_dir, dino_dir, artifacts_dir, width, height, name):
    context, page = open_page(browser, width, height)
    try:
        open_the_tab(page, app_url)
        masked_autoencoding(page, mae_dir)
        page.screenshot(path=str(artifacts_dir / f"inside-mae-{name}.png"), full_page=True)
        overflows = {"mae": page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")}
        self_supervised_features(page, dino_dir, tiny_vit_dir)
        page.screenshot(path=str(artifacts_dir / f"inside-features-{name}.png"), full_page=True)
        overflows["features"] = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        token_merging(page, tiny_vit_dir)
        page.screenshot(path=str(artifacts_dir / f"inside-merging-{name}.png"), full_page=True)
        overflows["merging"] = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert all(overflow <= 1 for overflow in overflows.values()), f"wider than the {width} px screen: {overflows}"
        assert page.errors == []
    finally:
        context.close()
