"""The Streamlit Train page's offline start, webcam-style collecting, head-only training on it and ONNX export,
through streamlit.testing.v1.AppTest on a tiny random ViT."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py")
TIMEOUT_S = 120


@pytest.fixture
def train_page(monkeypatch, tiny_vit_dir, tmp_path, tmp_path_factory):
    """A factory for the Train page with the Hub reachable or not (read once per app start, as the page does)."""
    from ui.streamlit_pages.train import hub_at_start

    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tiny_vit_dir))
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "st-train-cache"))

    def open_page(offline: bool, **state) -> AppTest:
        if offline:
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        hub_at_start.clear()
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        at.switch_page("streamlit_pages/train.py").run()
        assert not at.exception, at.exception
        return at

    yield open_page
    hub_at_start.clear()


def png(colour: tuple[int, int, int], seed: int) -> bytes:
    noise = np.random.default_rng(seed).integers(-30, 30, size=(64, 64, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def errors(at: AppTest) -> list[str]:
    return [element.value for element in at.error]


def add_pictures(at: AppTest, name: str, colour: tuple[int, int, int], count: int) -> AppTest:
    at.text_input(key="train_webcam_class").set_value(name)
    files = [(f"{name}-{index}.png", png(colour, index), "image/png") for index in range(count)]
    at.file_uploader(key="train_webcam_upload").set_value(files).run()
    assert not at.exception, at.exception
    return at


def test_offline_the_page_starts_from_the_scratch_preset(train_page):
    at = train_page(offline=True)
    base = at.selectbox(key="train_base")
    assert base.value == "vit-small-scratch"
    assert base.options.index("vit-small-scratch") < base.options.index("google/vit-base-patch16-224-in21k")


def test_collect_train_the_head_export_to_onnx(train_page, tiny_vit_dir):
    from training.jobs import current_job

    at = train_page(offline=True, train_base=str(tiny_vit_dir))
    add_pictures(at, "../x", (200, 0, 0), 1)
    assert any("only letters, digits" in message for message in errors(at)), errors(at)
    add_pictures(at, "red", (220, 30, 30), 4)
    add_pictures(at, "blue", (30, 30, 220), 4)
    summary = [markdown.value for markdown in at.markdown if "in all)" in markdown.value]
    assert summary == ["**blue**: 4 images · **red**: 4 images (8 in all)"], summary
    at.button(key="train_webcam_train").click().run()
    assert not errors(at), errors(at)
    state = current_job().wait(timeout_s=90)
    assert not state.running and state.error is None
    assert state.output_dir.name.startswith("webcam")
    at.run()
    assert any(markdown.value.startswith("Finished: step") for markdown in at.markdown)
    at.button(key="train_export_onnx").click().run()
    assert not at.exception and not errors(at), errors(at)
    checks = [caption.value for caption in at.caption if caption.value.startswith("Same top-1 as PyTorch")]
    assert len(checks) == 1 and " on 2 of 2 validation images" in checks[0], checks
