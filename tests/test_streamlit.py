"""The Streamlit app page by page through streamlit.testing.v1.AppTest, on tiny random models.

AppTest (Streamlit 1.67) uploads files through st.file_uploader (FileUploader.set_value), so the uploads are
the real ones: bytes in, the page's own saving to disk, the engine's own checks. Each test asserts on what the
page shows, compares it with the engine called directly, and checks that no exception reached the page.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import classify, explain
from core.caption import caption
from core.zero_shot import named_templates, zero_shot
from ui.shared.caption import decoding_settings
from ui.shared.texts import ZERO_SHOT_EXAMPLE_LABELS
from ui.shared.train_widgets import COUNTS_KEY

APP = str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py")
PAGE = "streamlit_pages/{}.py"
# The first run imports torch, transformers and open_clip, and the first click loads a model.
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory) -> Path:
    from tiny_captioners import save_tiny_vit_gpt2

    return save_tiny_vit_gpt2(tmp_path_factory.mktemp("st-vit-gpt2"))


@pytest.fixture(scope="module")
def shapes_zip(tmp_path_factory) -> Path:
    from training.examples import write_shapes_zip

    return write_shapes_zip(tmp_path_factory.mktemp("st-shapes"))


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def app(monkeypatch, tiny_vit_dir, runs_dir, tmp_path_factory):
    """A factory for the app on a page, with the tiny ViT as the default model. The environment is set before
    AppTest.from_file, as app.py sets it before `streamlit run`."""
    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tiny_vit_dir))
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(runs_dir))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path_factory.getbasetemp() / "st-cache"))
    monkeypatch.delenv("VIT_STUDIO_ALLOW_SERVER_PATHS", raising=False)

    def open_page(page: str = "classify", **state) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        if page != "classify":
            at.switch_page(PAGE.format(page)).run()
        assert not at.exception
        return at

    return open_page


def upload(at: AppTest, key: str, *paths: Path) -> AppTest:
    files = [(path.name, path.read_bytes(), "application/octet-stream") for path in paths]
    at.file_uploader(key=key).set_value(files if len(files) > 1 else files[0])
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, *columns: str):
    """The dataframe on the page whose first columns are `columns`."""
    return next(frame.value for frame in at.dataframe if list(frame.value.columns)[: len(columns)] == list(columns))


def errors(at: AppTest) -> list[str]:
    return [element.value for element in at.error]


# ---- Classify --------------------------------------------------------------------------------------------------


def test_classify_shows_the_engines_labels_and_scores(app, tiny_vit_dir, photo_path):
    at = app()
    assert at.markdown[0].value.strip().startswith("A Vision Transformer cuts the photo")
    click(upload(at, "classify_upload", photo_path), "classify_run")
    shown = table(at, "label")
    expected = classify(photo_path.read_bytes(), model=str(tiny_vit_dir), top_k=5)
    assert list(shown["label"]) == [p.label for p in expected]
    assert list(shown["score"]) == pytest.approx([p.score for p in expected], abs=1e-6)
    assert any(f"`{tiny_vit_dir}` on cpu" in caption.value and " ms" in caption.value for caption in at.caption)


def test_classify_results_leave_when_the_model_or_photo_changes(app, photo_files):
    def labels_shown(at: AppTest) -> bool:
        return any(list(frame.value.columns)[:1] == ["label"] for frame in at.dataframe)

    at = click(upload(app(), "classify_upload", photo_files["chelsea"]), "classify_run")
    assert labels_shown(at)
    upload(at, "classify_upload", photo_files["astronaut"]).run()
    assert not labels_shown(at) and "The top labels appear here." in [caption.value for caption in at.caption]
    click(at, "classify_run")
    assert labels_shown(at)
    box = at.selectbox(key="classify_model")
    box.set_value(next(option for option in box.options if option.startswith("google/"))).run()
    assert not labels_shown(at)


def test_classify_many_files_gives_a_table_and_a_csv(app, photo_files, tmp_path):
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(photo_files["coffee"], "coffee.jpg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    at = upload(app(), "classify_files", photo_files["chelsea"], archive, broken)
    click(at, "classify_batch_run")
    rows = table(at, "file")
    assert list(rows["file"]) == ["chelsea.jpg", "more.zip/coffee.jpg", "broken.png"]
    assert rows["error"][0] == "" and "broken.png" in rows["error"][2]
    assert any(
        markdown.value.startswith("**2** images classified, **1** could not be read") for markdown in at.markdown
    )
    assert [button.label for button in at.get("download_button")] == ["Download the CSV"]


def test_classify_reports_a_bad_photo_and_no_photo(app, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    at = click(upload(app(), "classify_upload", broken), "classify_run")
    assert any("image" in message.lower() for message in errors(at)), errors(at)
    # with no upload and no example photo (one is chosen when the page opens)
    at.file_uploader(key="classify_upload").set_value(None)
    at.selectbox(key="classify_example").set_value("(none)")
    click(at, "classify_run")
    assert "Upload or take a photo first (or pick an example)." in errors(at)


# ---- Attention -------------------------------------------------------------------------------------------------


def test_attention_shows_the_map_the_strips_and_a_side_by_side(app, tiny_vit_dir, tiny_deit_dir, photo_path):
    # A model typed into a box: AppTest can only pick listed options, so it goes into session state first.
    at = upload(app("attention", attention_model_b=str(tiny_deit_dir)), "attention_upload", photo_path)
    at.slider(key="attention_discard").set_value(0.0)
    click(at, "attention_run")
    captions = [image.captions for image in at.image]
    assert ["up to layer 1", "up to layer 2"] in captions and ["head 1", "head 2"] in captions
    expected = explain(photo_path.read_bytes(), model=str(tiny_vit_dir), discard_ratio=0.0)
    assert list(table(at, "label")["label"]) == [p.label for p in expected.predictions]
    assert any(markdown.value.startswith("The model sees a 32x32 image as a 4x4 grid") for markdown in at.markdown)
    # gradient rollout for a class the last explanation offered
    at.radio(key="attention_method").set_value("grad_rollout")
    at.selectbox(key=f"attention_target:{tiny_vit_dir}").set_value("coffee cup")
    click(at, "attention_run")
    assert any(caption.value == "Gradient rollout for: coffee cup" for caption in at.caption)
    # the right side: another model
    click(at, "attention_compare")
    assert any(image.captions[0].startswith("Right: ") for image in at.image)
    click(at, "attention_extract")
    labels = [button.label for button in at.get("download_button")]
    assert "Download cls_layer2.npy" in labels and "Download patches_layer2.npy" in labels


def test_attention_controls_redraw_the_kept_map_without_a_forward_pass(app, tiny_vit_dir, photo_path, monkeypatch):
    import core.attention as attention
    from core import redraw
    from ui.shared.attention import value_range_line

    at = upload(app("attention"), "attention_upload", photo_path)
    at.slider(key="attention_discard").set_value(0.0)
    click(at, "attention_run")
    kept = explain(photo_path.read_bytes(), model=str(tiny_vit_dir), discard_ratio=0.0)

    def refuse(*args, **kwargs):
        raise AssertionError("a control must redraw from the kept attentions, not run the model")

    drawn = []  # (alpha, colormap) of every overlay drawn from a map (AppTest runs the page in this process)
    draw = attention.overlay
    monkeypatch.setattr(attention, "_forward", refuse)
    monkeypatch.setattr(attention, "load_explainable", refuse)
    monkeypatch.setattr(
        attention,
        "overlay",
        lambda image, heatmap, alpha, cmap: drawn.append((alpha, cmap)) or draw(image, heatmap, alpha, cmap),
    )

    def map_line() -> str:
        return next(caption.value for caption in at.caption if caption.value.startswith("Map values from "))

    at.slider(key="attention_alpha").set_value(0.9).run()
    at.selectbox(key="attention_cmap").set_value("viridis").run()
    assert not at.exception and not errors(at) and (0.9, "viridis") in drawn
    at.radio(key="attention_method").set_value("attention").run()
    at.slider(key="attention_layer").set_value(1)
    at.slider(key="attention_head").set_value(2).run()
    expected = redraw(kept, method="attention", discard_ratio=0.0, layer=1, head=2, alpha=0.9, cmap="viridis")
    assert not at.exception and not errors(at)
    assert map_line() == value_range_line(expected) != value_range_line(kept)
    # gradient rollout needs the backward pass only Explain runs: said, and the map stays as Explain drew it
    at.radio(key="attention_method").set_value("grad_rollout").run()
    assert any("press Explain" in warning.value for warning in at.warning)
    assert map_line() == value_range_line(kept)


@pytest.fixture(scope="module")
def six_layer_vit_dir(tmp_path_factory) -> Path:
    """A tiny ViT with 6 layers of 3 heads."""
    import torch
    from conftest import save_tiny_model, tiny_config_kwargs
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(6)
    config = ViTConfig(**{**tiny_config_kwargs(), "num_hidden_layers": 6, "num_attention_heads": 3, "hidden_size": 48})
    return save_tiny_model(ViTForImageClassification(config), tmp_path_factory.mktemp("st-vit-6x3"))


def test_attention_sliders_follow_the_models_layers_and_heads(app, six_layer_vit_dir, tiny_vit_dir, photo_path):
    at = app("attention", attention_model=str(six_layer_vit_dir), attention_model_b=str(tiny_vit_dir))
    assert (at.slider(key="attention_layer").max, at.slider(key="attention_head").max) == (6, 3)
    assert at.slider(key="attention_layer_b").max == 2
    at.slider(key="attention_layer").set_value(6)
    at.slider(key="attention_head").set_value(3)
    upload(at, "attention_upload", photo_path)
    at.radio(key="attention_method").set_value("attention")
    click(at, "attention_run")
    assert not errors(at)
    assert any(caption.value.startswith("Map values from ") for caption in at.caption)
    # The tiny ViT has 2 layers of 2 heads (the shared sliders go to 24 and 16): the values come within its range.
    at.selectbox(key="attention_model").set_value(str(tiny_vit_dir)).run()
    assert not at.exception, at.exception
    layer, head = at.slider(key="attention_layer"), at.slider(key="attention_head")
    assert (layer.max, head.max) == (2, 2) and layer.value <= 2 and head.value <= 2
    click(at, "attention_run")
    assert not errors(at)


def test_caption_layer_slider_follows_the_decoder(app, captioner_dir):
    at = app("caption", caption_model=str(captioner_dir))
    assert at.slider(key="caption_layer").max == 2  # the tiny ViT-GPT2's 2 decoder layers, not 12


# ---- Caption -----------------------------------------------------------------------------------------------------


def test_caption_shows_the_engines_caption_and_its_word_maps(app, captioner_dir, photo_path):
    at = upload(app("caption", caption_model=str(captioner_dir)), "caption_upload", photo_path)
    assert at.text_input(key="caption_prompt").disabled, "ViT-GPT2 takes no prompt: the box is switched off"
    click(at, "caption_run")
    expected = caption(photo_path.read_bytes(), model=str(captioner_dir), **decoding_settings("beam search"))
    assert [header.value for header in at.subheader] == [expected or "(an empty caption: the model stopped at once)"]
    if expected.strip():
        word_tiles = next(image for image in at.image if image.captions[0].startswith("1. "))
        assert len(word_tiles.captions) >= 1


def test_caption_many_files_and_a_missing_model(app, captioner_dir, photo_files, tmp_path):
    at = upload(
        app("caption", caption_model=str(captioner_dir)), "caption_files", photo_files["chelsea"], photo_files["camera"]
    )
    click(at, "caption_batch_run")
    rows = table(at, "file")
    expected = caption(
        [photo_files["chelsea"].read_bytes(), photo_files["camera"].read_bytes()],
        model=str(captioner_dir),
        **decoding_settings("beam search"),
    )
    assert list(rows["caption"]) == expected
    assert [button.label for button in at.get("download_button")] == ["Download the CSV"]
    at = click(app("caption", caption_model=str(tmp_path / "no-such-captioner")), "caption_run")
    assert any("no-such-captioner" in message for message in errors(at)), errors(at)


# ---- Zero-shot ---------------------------------------------------------------------------------------------------


def test_zero_shot_ranks_like_the_engine_and_maps_the_best_label(app, tiny_open_clip_dir, photo_path):
    model = f"local-dir:{tiny_open_clip_dir}"
    at = upload(app("zero_shot", zero_shot_model=model), "zero_shot_upload", photo_path)
    at.radio(key="zero_shot_template_mode").set_value("simple")
    at.checkbox(key="zero_shot_per_template").check()
    click(at, "zero_shot_run")
    expected = zero_shot(
        photo_path.read_bytes(), ZERO_SHOT_EXAMPLE_LABELS, model=model, pretrained=None, templates="simple"
    )
    shown = table(at, "label")
    assert list(shown["label"]) == [p.label for p in expected[:5]]
    assert list(shown["score"]) == pytest.approx([p.score for p in expected[:5]], abs=1e-6)
    assert list(table(at, "template")["template"]) == named_templates("simple")
    assert any(
        image.captions == [f"Gradient-weighted attention rollout for '{expected[0].label}'"] for image in at.image
    )


def test_zero_shot_template_box_is_disabled_while_an_ensemble_is_chosen(app):
    at = app("zero_shot")
    assert not at.text_input(key="zero_shot_template").disabled
    at.radio(key="zero_shot_template_mode").set_value("openai").run()
    assert at.text_input(key="zero_shot_template").disabled


def test_zero_shot_reports_a_single_label(app, tiny_open_clip_dir):
    at = app("zero_shot", zero_shot_model=f"local-dir:{tiny_open_clip_dir}")
    at.text_area(key="zero_shot_labels").set_value("cat")
    click(at, "zero_shot_run")
    assert any(message.startswith("Only one label ('cat')") for message in errors(at)), errors(at)


# ---- Train ---------------------------------------------------------------------------------------------------------


def test_train_checks_a_zip_trains_and_shows_what_it_learnt(app, tiny_vit_dir, shapes_zip, runs_dir):
    from training.jobs import current_job

    at = upload(app("train", train_base=str(tiny_vit_dir)), "train_zip", shapes_zip)
    click(at, "train_check")
    assert any(markdown.value.startswith("3 classes, 60 training and 12 validation") for markdown in at.markdown)
    assert list(table(at, "class")["class"]) == ["circle", "square", "triangle"]
    assert COUNTS_KEY in [caption.value for caption in at.caption], "the counts chart has no train/val key"
    assert next(image.captions for image in at.image if "circle" in image.captions).count("square") == 4
    at.number_input(key="train_epochs").set_value(6)
    at.number_input(key="train_lr").set_value(1e-2)
    at.checkbox(key="train_augment").uncheck()
    at.text_input(key="train_run_name").set_value("shapes-st")
    click(at, "train_start")
    assert not errors(at), errors(at)
    state = current_job().wait(timeout_s=90)
    assert not state.running and state.error is None
    at.run()
    assert not at.exception
    assert any(markdown.value.startswith("Finished: step 24/24") for markdown in at.markdown)
    per_class = table(at, "class", "accuracy")
    assert list(per_class.columns) == ["class", "accuracy", "correct", "validation images"]
    assert list(per_class["class"]) == ["circle", "square", "triangle"]
    assert all(accuracy.endswith("%") and accuracy[:-1].isdigit() for accuracy in per_class["accuracy"])
    # The finished run is offered to start from, as soon as it has ended.
    assert str(runs_dir / "shapes-st") in at.selectbox(key="train_base").options
    # the circles the model got right, each with its attention
    shown_run = at.session_state["train_run_dir"]
    at.selectbox(key=f"train_predicted:{shown_run}").set_value("circle")
    click(at, "train_show_cell")
    correct_circles = int(per_class["correct"][0])
    tiles = [image.captions for image in at.image if image.captions and image.captions[0].endswith("%)")]
    assert [len(captions) for captions in tiles] == ([min(correct_circles, 12)] if correct_circles else [])
    click(at, "train_use")
    run_dir = str((runs_dir / "shapes-st").resolve())
    assert at.session_state["classify_model"] == at.session_state["attention_model"] == run_dir
    at.switch_page(PAGE.format("classify")).run()
    assert at.selectbox(key="classify_model").value == run_dir


def test_train_checks_a_folder_upload_by_its_class_folders(app, shapes_zip, tmp_path):
    """A folder upload names each file by its path inside the folder, as the browser sends it."""
    with zipfile.ZipFile(shapes_zip) as archive:
        files = [(name, archive.read(name), "image/png") for name in archive.namelist() if name.endswith(".png")]
    at = app("train")
    at.file_uploader(key="train_folder").set_value(files)
    click(at, "train_check")
    assert any(markdown.value.startswith("3 classes, 60 training and 12 validation") for markdown in at.markdown)


def test_train_offers_the_example_data_set_until_the_user_gives_images(app, shapes_zip):
    from training.examples import EXAMPLE_PER_CLASS

    at = click(app("train"), "train_check")  # nothing uploaded: the example, ticked from the start
    assert table(at, "class")["total"].tolist() == [EXAMPLE_PER_CLASS] * 3
    click(upload(at, "train_zip", shapes_zip), "train_check")  # the user's own zip wins
    assert any(markdown.value.startswith("3 classes, 60 training and 12 validation") for markdown in at.markdown)


def test_train_refuses_bad_settings_and_missing_data(app, shapes_zip, runs_dir):
    at = app("train")
    at.checkbox(key="train_example").uncheck()
    click(at, "train_start")
    assert "Give the images first: a zip of class folders, or a folder with one sub-folder per class." in errors(at)
    upload(at, "train_zip", shapes_zip)
    at.number_input(key="train_lr").set_value(0.0)
    click(at, "train_start")
    assert any("learning rate must be greater than 0" in message for message in errors(at)), errors(at)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_server_paths_only_when_allowed(app, monkeypatch):
    assert not any(widget.key == "train_path" for widget in app("train").text_input)
    monkeypatch.setenv("VIT_STUDIO_ALLOW_SERVER_PATHS", "1")
    monkeypatch.setenv("SPACE_ID", "someone/space")
    assert not any(widget.key == "train_path" for widget in app("train").text_input)
    monkeypatch.delenv("SPACE_ID")
    at = app("train")
    at.text_input(key="train_path").set_value("/no/such/folder")
    click(at, "train_check")
    assert errors(at), "a missing folder gets the engine's message"


def test_the_zip_box_takes_the_engines_data_limit_from_the_environment(app, monkeypatch):
    assert app("train").file_uploader(key="train_zip").proto.max_upload_size_mb == 2048  # the default 2 GB
    monkeypatch.setenv("VIT_STUDIO_MAX_DATA_BYTES", str(5 * 2**20))
    assert app("train").file_uploader(key="train_zip").proto.max_upload_size_mb == 5


def test_train_stop_then_resume_from_earlier_runs(app, tiny_vit_dir, shapes_zip, runs_dir, monkeypatch):
    from training.events import Started, Step, Stopped
    from training.jobs import current_job
    from ui.shared import training as shared_training

    drawn = []  # the curves of every chart the page draws (AppTest runs the page in this process)
    draw = shared_training.curves_figure
    monkeypatch.setattr(
        shared_training, "curves_figure", lambda run_curves: drawn.append(run_curves) or draw(run_curves)
    )

    at = upload(app("train", train_base=str(tiny_vit_dir)), "train_zip", shapes_zip)
    at.number_input(key="train_epochs").set_value(200)  # long enough to be stopped mid-way
    at.text_input(key="train_run_name").set_value("to-resume")
    click(at, "train_start")
    deadline = time.monotonic() + 60
    while not any(isinstance(event, Step) for event in current_job().state().events):
        assert current_job().running, f"the run ended before its first step: {current_job().state().error}"
        assert time.monotonic() < deadline, "the run took no training step within 60 s"
        current_job().wait(timeout_s=0.2)
    click(at, "train_stop")
    stopped = current_job().wait(timeout_s=60)
    assert not stopped.running, "the run was still training 60 s after Stop"
    assert isinstance(stopped.events[-1], Stopped)
    at.run()
    assert any(markdown.value.startswith("Stopped at step") for markdown in at.markdown)
    run_dir = str(runs_dir / "to-resume")
    assert at.selectbox(key="train_runs").options[0].startswith("to-resume (stopped, step ")
    at.selectbox(key="train_runs").set_value("to-resume")  # runs are named in the list, never pathed
    click(at, "train_resume")
    current_job().stop()  # the resumed run goes on from its checkpoint; stopping it again is enough here
    state = current_job().wait(timeout_s=60)
    assert not state.running, "the resumed run was still training 60 s after it was stopped"
    assert state.error is None and str(state.output_dir) == run_dir
    assert isinstance(state.events[0], Started) and state.events[0].start_step > 0
    at.run()
    assert at.session_state["train_run_dir"] == run_dir and not at.exception
    # The resumed run's chart starts from its first step, as its saved curves.png does.
    assert drawn[-1].train_steps[0] == 1 and drawn[-1].train_steps[-1] >= state.events[0].start_step


@pytest.mark.parametrize("shared_by", ["SPACE_ID", "VIT_STUDIO_SHARED"])
def test_on_a_shared_app_another_visitor_cannot_see_or_stop_a_run(
    shared_by, app, tiny_vit_dir, shapes_zip, monkeypatch
):
    from training.events import Stopped
    from training.jobs import current_job

    monkeypatch.setenv(shared_by, "someone/vit-studio" if shared_by == "SPACE_ID" else "1")
    starter = upload(app("train", train_base=str(tiny_vit_dir)), "train_zip", shapes_zip)
    starter.number_input(key="train_epochs").set_value(200)
    starter.text_input(key="train_run_name").set_value("mine")
    click(starter, "train_start")
    other = click(app("train"), "train_stop")  # a second browser session
    assert any("started by another visitor, whose page is still open" in message for message in errors(other)), errors(
        other
    )
    assert [option for option in other.selectbox(key="train_runs").options if option.startswith("mine")] == []
    assert any(
        option.startswith("mine-") for option in click(starter, "train_show_run").selectbox(key="train_runs").options
    )
    assert current_job().running
    click(starter, "train_stop")
    assert not errors(starter) and any(
        info.value.startswith("Stopping after the current step") for info in starter.info
    )
    assert isinstance(current_job().wait(timeout_s=60).events[-1], Stopped)
