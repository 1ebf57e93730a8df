"""The Streamlit Inside page through AppTest, on tiny random models: masked autoencoding, self-supervised features and
token merging, each showing its pictures, its errors in words, and a patch pick answered from the kept features."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import MAX_MASK_RATIO, reconstruct
from tests.tiny_inside_models import save_tiny_dinov2, save_tiny_mae
from ui.shared.inside import (
    CURVE_COLUMNS,
    CURVE_RS,
    ERROR_TITLE,
    MAE_PICTURE_TITLES,
    RANDOM_WEIGHTS_NOTE,
    explained_variance_line,
    mae_loss_line,
    tokens_line,
)

APP = str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py")
PAGE = "streamlit_pages/inside.py"
TIMEOUT_S = 120  # the first run imports torch and transformers, the first click loads a model


@pytest.fixture(scope="module")
def tiny_mae_dir(tmp_path_factory) -> Path:
    return save_tiny_mae(tmp_path_factory.mktemp("st-tiny-mae"))


@pytest.fixture(scope="module")
def tiny_dinov2_dir(tmp_path_factory) -> Path:
    return save_tiny_dinov2(tmp_path_factory.mktemp("st-tiny-dinov2"))


@pytest.fixture
def app(monkeypatch, tiny_vit_dir, tmp_path, tmp_path_factory):
    """The app opened on the Inside page, with `state` put in session state first (a model typed into a box: AppTest
    can only pick listed options)."""
    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tiny_vit_dir))
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "st-cache"))
    monkeypatch.delenv("VIT_STUDIO_ALLOW_SERVER_PATHS", raising=False)

    def open_page(**state) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        at.switch_page(PAGE).run()
        assert not at.exception, at.exception
        return at

    return open_page


def upload(at: AppTest, key: str, path: Path) -> AppTest:
    at.file_uploader(key=key).set_value((path.name, path.read_bytes(), "application/octet-stream"))
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def errors(at: AppTest) -> list[str]:
    return [element.value for element in at.error]


# ---- the page ------------------------------------------------------------------------------------------------------


def test_the_page_opens_with_three_sections_and_their_intros(app):
    at = app()
    assert [tab.label for tab in at.tabs] == ["Masked autoencoding", "Self-supervised features", "Token merging"]
    markdown = " ".join(element.value for element in at.markdown)
    for paper in ("2111.06377", "2304.07193", "2210.09461"):
        assert paper in markdown
    mae, features, merging = at.tabs
    assert RANDOM_WEIGHTS_NOTE not in [warning.value for warning in [*mae.warning, *features.warning]]  # Hub ids
    assert RANDOM_WEIGHTS_NOTE in [warning.value for warning in merging.warning]  # the tiny ViT: a bare local folder


# ---- 1. masked autoencoding ----------------------------------------------------------------------------------------

PAINTED = MAE_PICTURE_TITLES[2]


def mae_app(app, model_dir: Path, photo_path: Path) -> AppTest:
    return upload(app(inside_mae_model=str(model_dir)), "inside_mae_upload", photo_path)


def test_mae_shows_four_pictures_the_error_and_the_models_loss(app, tiny_mae_dir, photo_path):
    at = mae_app(app, tiny_mae_dir, photo_path)
    assert RANDOM_WEIGHTS_NOTE in [warning.value for warning in at.warning]  # a bare local folder: maybe random
    at.slider(key="inside_mae_ratio").set_value(0.5)
    click(at, "inside_mae_run")
    captions = image_captions(at)
    assert all(title in captions for title in MAE_PICTURE_TITLES) and ERROR_TITLE in captions
    expected = reconstruct(photo_path.read_bytes(), str(tiny_mae_dir), mask_ratio=0.5, seed=0)
    assert expected.hidden_patches == at.session_state["inside_mae_result"].hidden_patches
    assert mae_loss_line(expected) in [element.value for element in at.markdown]
    assert "8 of 16 patches hidden" in mae_loss_line(expected)


def test_mae_hides_exactly_the_patches_clicked_and_clear_goes_back(app, tiny_mae_dir, photo_path):
    at = click(mae_app(app, tiny_mae_dir, photo_path), "inside_mae_run")
    at.number_input(key="inside_mae_row").set_value(2)
    at.number_input(key="inside_mae_col").set_value(3)
    click(at.run(), "inside_mae_add")
    assert at.session_state["inside_mae_result"].hidden_patches == (1 * 4 + 2,)  # row 2, column 3 of a 4x4 grid
    assert any(element.value.startswith("1 of 16 patches hidden") for element in at.markdown)
    assert "Hidden by hand: row 2 col 3" in [caption.value for caption in at.caption]
    at.number_input(key="inside_mae_col").set_value(4)
    click(at.run(), "inside_mae_add")
    assert at.session_state["inside_mae_result"].hidden_patches == (6, 7)
    click(at, "inside_mae_add")  # the same patch again: shown again
    assert at.session_state["inside_mae_result"].hidden_patches == (6,)
    click(at, "inside_mae_clear")
    assert len(at.session_state["inside_mae_result"].hidden_patches) == round(0.75 * 16)


def test_mae_with_nothing_hidden_says_so_instead_of_a_nan_loss(app, tiny_mae_dir, photo_path):
    at = mae_app(app, tiny_mae_dir, photo_path)
    at.slider(key="inside_mae_ratio").set_value(0.0)
    click(at, "inside_mae_run")
    assert math.isnan(at.session_state["inside_mae_result"].loss)
    shown = " ".join(element.value for element in at.markdown)
    assert "0 of 16 patches hidden" in shown and "nothing hidden" in shown and "nan" not in shown


def test_mae_refuses_a_classifier_with_the_engines_message(app, tiny_vit_dir, photo_path):
    at = click(mae_app(app, tiny_vit_dir, photo_path), "inside_mae_run")
    assert any("not a masked autoencoder" in message for message in errors(at)), errors(at)
    assert PAINTED not in image_captions(at)


def test_mae_controls_offer_only_what_the_engine_takes(app):
    """A mask ratio past MAX_MASK_RATIO or a seed torch refuses cannot be asked for: the sliders stop there."""
    at = app()
    ratio = at.slider(key="inside_mae_ratio")
    assert (ratio.min, ratio.value) == (0.0, 0.75) and ratio.max == pytest.approx(MAX_MASK_RATIO)
    seed = at.slider(key="inside_mae_seed")
    assert seed.min == 0 and seed.max < 2**63


def test_mae_results_leave_when_the_photo_changes(app, tiny_mae_dir, photo_path, photo_files):
    at = click(mae_app(app, tiny_mae_dir, photo_path), "inside_mae_run")
    assert PAINTED in image_captions(at)
    upload(at, "inside_mae_upload", photo_files["astronaut"]).run()
    assert PAINTED not in image_captions(at)


# ---- 2. self-supervised features ----------------------------------------------------------------------------------


def features_app(app, left: Path, right: Path, photo_path: Path) -> AppTest:
    at = app(inside_features_model_left=str(left), inside_features_model_right=str(right))
    return click(upload(at, "inside_features_upload", photo_path), "inside_features_run")


def test_features_show_both_models_pictures_and_their_variance(app, tiny_dinov2_dir, tiny_vit_dir, photo_path):
    at = features_app(app, tiny_dinov2_dir, tiny_vit_dir, photo_path)
    left, right = at.session_state["inside_features_results"]
    assert left.model == str(tiny_dinov2_dir) and right.model == str(tiny_vit_dir)
    assert left.grid_size == (4, 4) and left.layer == 2  # the slider's 0 is the last layer
    assert image_captions(at).count("Features as colours") == 2 and image_captions(at).count("Over the photo") == 2
    shown = [element.value for element in at.markdown]
    assert explained_variance_line(left) in shown and explained_variance_line(right) in shown


def test_a_patch_pick_shows_similarity_maps_from_the_kept_features(
    app, tiny_dinov2_dir, tiny_vit_dir, photo_path, monkeypatch
):
    import core.feature_maps as feature_maps

    at = features_app(app, tiny_dinov2_dir, tiny_vit_dir, photo_path)
    kept = at.session_state["inside_features_results"]
    assert not any(caption in (kept[0].model, kept[1].model) for caption in image_captions(at))  # none picked yet

    def refuse(*args, **kwargs):
        raise AssertionError("a patch pick must use the kept features, not run the model")

    monkeypatch.setattr(feature_maps, "features", refuse)  # AppTest runs the page in this process
    monkeypatch.setattr(feature_maps, "load_explainable", refuse)
    at.number_input(key="inside_features_row").set_value(2)
    at.number_input(key="inside_features_col").set_value(3).run()
    assert not at.exception, at.exception
    models = [kept[0].model, kept[1].model]
    assert [caption for caption in image_captions(at) if caption in models] == models  # one similarity map per model
    line = next(element.value for element in at.markdown if element.value.startswith("Brighter = more alike"))
    assert f"`{kept[0].model}`: row 2, column 3 of 4x4" in line and f"`{kept[1].model}`: row 2, column 3 of 4x4" in line
    assert all(now is then for now, then in zip(at.session_state["inside_features_results"], kept))


def test_features_report_a_model_that_fails_and_keep_the_other(app, tiny_dinov2_dir, photo_path, tmp_path):
    at = features_app(app, tiny_dinov2_dir, tmp_path, photo_path)  # no model in tmp_path
    assert errors(at), "the failing model's message is shown"
    left, right = at.session_state["inside_features_results"]
    assert left is not None and right is None
    assert image_captions(at).count("Features as colours") == 1


# ---- 3. token merging ----------------------------------------------------------------------------------------------


def test_merging_shows_the_strip_the_tokens_and_both_top5s(app, tiny_vit_dir, photo_path):
    from core import token_merging

    at = upload(app(), "inside_merge_upload", photo_path)
    at.slider(key="inside_merge_r").set_value(3)
    click(at, "inside_merge_run")
    expected = token_merging(photo_path.read_bytes(), str(tiny_vit_dir), r=3)
    strip = next(image.captions for image in at.image if image.captions and image.captions[0].startswith("Layer 1:"))
    assert strip == [f"Layer {i + 1}: {n} tokens" for i, n in enumerate(expected.tokens_per_layer)]
    assert tokens_line(expected) in [element.value for element in at.markdown]
    tables = [frame.value for frame in at.dataframe if list(frame.value.columns)[:1] == ["label"]]
    assert [list(frame["label"]) for frame in tables] == [
        [p.label for p in expected.predictions],
        [p.label for p in expected.full_predictions],
    ]


def test_merging_refuses_a_model_it_cannot_merge(app, tiny_dinov2_dir, photo_path):
    at = upload(app(inside_merge_model=str(tiny_dinov2_dir)), "inside_merge_upload", photo_path)
    click(at, "inside_merge_run")
    assert errors(at), "a model without a classifier head is refused in words"
    assert not any(image.captions and image.captions[0].startswith("Layer 1:") for image in at.image)


def test_the_curve_is_measured_over_the_example_photos(app):
    at = app()
    pictures_before = len(at.image)
    click(at, "inside_curve_run")
    assert len(at.image) == pictures_before + 1  # the figure (st.pyplot draws an image element)
    rows = next(frame.value for frame in at.dataframe if list(frame.value.columns) == list(CURVE_COLUMNS))
    assert list(rows["r"]) == list(CURVE_RS)
    assert rows["top-1 agreement"][0] == "100%"  # r = 0 is the full model itself
    assert any(element.value.startswith("Over 4 photos: r = 16") for element in at.markdown)


def test_the_merge_stays_while_the_curve_is_measured(app, photo_path):
    at = click(upload(app(), "inside_merge_upload", photo_path), "inside_merge_run")
    kept = at.session_state["inside_merge_result"]
    click(at, "inside_curve_run")
    assert at.session_state["inside_merge_result"] is kept
    assert any(element.value.startswith("Tokens after each layer") for element in at.markdown)


def test_the_merge_and_the_curve_leave_when_the_model_changes(app, photo_path):
    at = click(upload(app(), "inside_merge_upload", photo_path), "inside_merge_run")
    click(at, "inside_curve_run")
    assert "inside_merge_result" in at.session_state and "inside_merge_curve" in at.session_state
    box = at.selectbox(key="inside_merge_model")
    box.set_value(next(option for option in box.options if option.startswith("google/"))).run()
    assert not at.exception, at.exception
    assert "inside_merge_result" not in at.session_state and "inside_merge_curve" not in at.session_state
    assert not any(element.value.startswith("Tokens after each layer") for element in at.markdown)
