"""The Streamlit Train page's captioner part through streamlit.testing.v1.AppTest: checking a captioned zip (and
refusing one without captions), a short scratch-captioner run to its predictions and word maps, "Use this model"
filling the Caption page's box, and the classifier's lists leaving the captioner run out."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from training import current_job, write_captioned_shapes_zip
from ui.shared.caption_training import (
    AFTER_LABEL,
    BEFORE_LABEL,
    CAPTION_REPORT_HEADERS,
    CAPTIONER_TASK,
    CLASSIFIER_TASK,
    PREDICTION_HEADERS,
)
from ui.streamlit_pages.caption_train import NO_CAPTION_DATA

APP = str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py")
TIMEOUT_S = 120
IMAGES = 40  # the generated shapes: 36 to train on, 4 held out


@pytest.fixture(scope="module")
def captioned_zip(tmp_path_factory) -> Path:
    return write_captioned_shapes_zip(tmp_path_factory.mktemp("st-captioned"), count=IMAGES, seed=0)


@pytest.fixture
def uncaptioned_zip(tmp_path) -> Path:
    """Images only: no metadata.jsonl, no CSV."""
    path = tmp_path / "no-captions.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(5):
            buffer = io.BytesIO()
            pixels = np.random.default_rng(index).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, format="PNG")
            archive.writestr(f"photos/{index}.png", buffer.getvalue())
    return path


@pytest.fixture
def train_page(monkeypatch, tiny_vit_dir, tmp_path, tmp_path_factory):
    """A factory for the Train page switched to the captioner, offline (no model is downloaded)."""
    from ui.streamlit_pages.common import hub_at_start

    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tiny_vit_dir))
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "st-caption-train-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("VIT_STUDIO_ALLOW_SERVER_PATHS", raising=False)

    def open_page() -> AppTest:
        hub_at_start.clear()
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
        at.run()
        at.switch_page("streamlit_pages/train.py").run()
        at.radio(key="train_task").set_value(CAPTIONER_TASK).run()
        assert not at.exception, at.exception
        return at

    yield open_page
    hub_at_start.clear()


def errors(at: AppTest) -> list[str]:
    return [element.value for element in at.error]


def upload(at: AppTest, key: str, path: Path) -> AppTest:
    at.file_uploader(key=key).set_value((path.name, path.read_bytes(), "application/zip"))
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, columns: tuple[str, ...]):
    """The dataframes on the page with these columns (AppTest does not report a plain st.dataframe's key)."""
    return [frame.value for frame in at.dataframe if list(frame.value.columns) == list(columns)]


def counts(at: AppTest) -> dict[str, int]:
    frame = table(at, CAPTION_REPORT_HEADERS)[0]
    return {str(name): int(count) for name, count in frame.itertuples(index=False)}


def test_check_a_captioned_zip_shows_its_counts_lengths_and_pairs(train_page, captioned_zip):
    at = upload(train_page(), "caption_train_zip", captioned_zip)
    click(at, "caption_train_check")
    assert not errors(at), errors(at)
    assert counts(at) == {
        "image-caption pairs": IMAGES,
        "images": IMAGES,
        "training images": 36,
        "validation images": 4,
        "skipped": 0,
    }
    assert any(markdown.value.startswith(f"{IMAGES} pairs on {IMAGES} images") for markdown in at.markdown)
    # The scratch captioner's tokenizer is learnt from the captions, so the lengths are in tokens even offline.
    assert any("in the tokens the model will read" in caption.value for caption in at.caption), at.caption
    thumbnails = [image for image in at.image if image.captions and " " in image.captions[0]]
    assert thumbnails and len(thumbnails[0].captions) == 6, [image.captions for image in at.image]


def test_no_data_and_a_zip_without_captions_are_refused_with_the_fix(train_page, captioned_zip, uncaptioned_zip):
    at = click(train_page(), "caption_train_check")
    assert errors(at) == [NO_CAPTION_DATA]
    upload(at, "caption_train_zip", captioned_zip)
    click(at, "caption_train_check")
    assert not errors(at) and counts(at)["images"] == IMAGES
    upload(at, "caption_train_zip", uncaptioned_zip)
    click(at, "caption_train_check")
    assert len(errors(at)) == 1 and errors(at)[0].startswith("No caption file found in"), errors(at)
    assert "metadata.jsonl" in errors(at)[0]
    # The earlier check's table does not stand under the error.
    assert not table(at, CAPTION_REPORT_HEADERS)


def test_train_a_captioner_read_its_captions_and_use_it_in_the_caption_page(train_page, captioned_zip):
    at = upload(train_page(), "caption_train_zip", captioned_zip)
    at.number_input(key="caption_train_epochs").set_value(2)
    at.number_input(key="caption_train_batch").set_value(8)
    at.number_input(key="caption_train_new_tokens").set_value(10)
    at.radio(key="caption_train_precision").set_value("fp32")
    at.text_input(key="caption_train_run_name").set_value("shapes-captioner")
    click(at, "caption_train_start")
    assert not errors(at), errors(at)
    state = current_job().wait(timeout_s=TIMEOUT_S)
    assert not state.running and state.error is None, state.error
    run_dir = state.output_dir
    assert run_dir.name.startswith("shapes-captioner")
    at.run()
    assert not at.exception, at.exception
    assert any(markdown.value.startswith("Finished: step") and "ROUGE-L" in markdown.value for markdown in at.markdown)
    assert any(markdown.value.startswith("epoch 2: ROUGE-1 ") for markdown in at.markdown)

    [predictions] = table(at, PREDICTION_HEADERS)
    assert len(predictions) == 4
    assert list(predictions["ROUGE-L"]) == sorted(predictions["ROUGE-L"])  # worst first

    click(at, "caption_train_word_maps")
    assert not errors(at), errors(at)
    assert any(markdown.value == f"**{BEFORE_LABEL}**" for markdown in at.markdown)
    assert any(markdown.value == f"**{AFTER_LABEL}**" for markdown in at.markdown)
    assert any("fed through the model before training" in caption.value for caption in at.caption)

    click(at, "caption_train_use")
    assert any(run_dir.name in success.value for success in at.success)
    at.switch_page("streamlit_pages/caption.py").run()
    assert not at.exception, at.exception
    box = at.selectbox(key="caption_model")
    assert box.value == str(run_dir.resolve())
    assert any(option.startswith(f"{run_dir.name} (your run") for option in box.options), box.options

    at.switch_page("streamlit_pages/train.py").run()
    assert at.radio(key="train_task").value == CAPTIONER_TASK  # the page's choice outlives a visit elsewhere
    assert any(option.startswith(run_dir.name) for option in at.selectbox(key="caption_train_runs").options)
    assert str(run_dir) in at.selectbox(key="caption_train_base").options
    at.radio(key="train_task").set_value(CLASSIFIER_TASK).run()
    assert not at.exception, at.exception
    assert not [option for option in at.selectbox(key="train_runs").options if run_dir.name in option]
    assert not [option for option in at.selectbox(key="train_base").options if run_dir.name in option]


def test_stop_a_captioner_run_and_resume_it_from_its_list(train_page, captioned_zip):
    at = upload(train_page(), "caption_train_zip", captioned_zip)
    at.number_input(key="caption_train_epochs").set_value(2)
    at.number_input(key="caption_train_batch").set_value(8)
    at.number_input(key="caption_train_new_tokens").set_value(6)
    at.radio(key="caption_train_precision").set_value("fp32")
    at.text_input(key="caption_train_run_name").set_value("stopped-captioner")
    click(at, "caption_train_start")
    click(at, "caption_train_stop")  # at once: the run stops after its first step, with a checkpoint
    assert any(info.value.startswith("Stopping after the current step") for info in at.info), at.info
    stopped = current_job().wait(timeout_s=TIMEOUT_S)
    assert not stopped.running and stopped.error is None, stopped.error
    at.run()
    assert any(markdown.value.startswith("Stopped at step 1/") for markdown in at.markdown), at.markdown
    assert not table(at, PREDICTION_HEADERS)  # a stopped run has no validation captions to show yet

    click(at, "caption_train_resume")
    assert errors(at) == ["Pick a stopped or interrupted run in the list first."]
    at.selectbox(key="caption_train_runs").set_value(stopped.output_dir.name)
    click(at, "caption_train_resume")
    assert not errors(at), errors(at)
    resumed = current_job().wait(timeout_s=TIMEOUT_S)
    assert resumed.output_dir == stopped.output_dir and resumed.error is None, resumed.error
    at.run()
    assert any(markdown.value.startswith("Finished: step 10/10") for markdown in at.markdown), at.markdown
    assert len(table(at, PREDICTION_HEADERS)[0]) == 4
