"""The Train page's captioner part: check image + caption pairs, train a captioner while ROUGE grows, then read its
captions, compare where each word looked before and after, and use, zip or push it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from core import current_settings
from training import (
    EVENTS_LOG,
    PREDICTIONS,
    SCRATCH_CAPTIONER,
    TRAINING_PRECISIONS,
    CaptionPrediction,
    JobState,
    TrainingJob,
    Visitor,
    caption_predictions,
    current_job,
    example_caption_zip,
    find_run,
    is_training,
    read_events,
    resume_config,
    runs_root,
    start_new_run,
    start_training,
    stop_current,
    visible_runs,
    visitor,
    word_maps_before_after,
)
from ui.shared import train_widgets as widgets
from ui.shared.caption_training import (
    AFTER_LABEL,
    BEFORE_LABEL,
    CAPTION_BATCH_SIZE,
    CAPTION_COLUMN_LABEL,
    CAPTION_DATA_HELP,
    CAPTION_EPOCHS,
    CAPTION_EXAMPLE_BUTTON,
    CAPTION_FILE_LABEL,
    CAPTION_LEARNING_RATE,
    CAPTION_MODE_CHOICES,
    CAPTION_MODE_LABEL,
    CAPTION_REPORT_HEADERS,
    CAPTION_THUMBNAILS_LABEL,
    CAPTION_TRAIN_INTRO,
    CAPTION_WARMUP,
    CAPTION_WEIGHT_DECAY,
    CAPTION_ZIP_LABEL,
    CAPTIONER_BASE_INFO,
    CAPTIONER_BASE_LABEL,
    DECODER_LABEL,
    DECODER_PLACEHOLDER,
    ENCODER_LABEL,
    ENCODER_PLACEHOLDER,
    EVAL_BEAMS,
    EVAL_BEAMS_LABEL,
    EVAL_MAX_NEW_TOKENS,
    EVAL_MAX_NEW_TOKENS_LABEL,
    EXAMPLE_HEADERS,
    EXAMPLES_LABEL,
    IMAGE_COLUMN_LABEL,
    LABEL_SMOOTHING,
    LABEL_SMOOTHING_LABEL,
    MAX_TARGET_LENGTH,
    MAX_TARGET_LENGTH_LABEL,
    NO_CAPTION_RUN,
    PREDICTION_HEADERS,
    PREDICTIONS_LABEL,
    TOKEN_HISTOGRAM_LABEL,
    USE_CAPTIONER_BUTTON,
    WORD_MAPS_BUTTON,
    WORD_MAPS_IMAGE_LABEL,
    WORD_MAPS_LABEL,
    CaptionDataView,
    caption_form_config,
    caption_run_in_use,
    caption_runs,
    captioner_start_choices,
    check_captioned_data,
    latest_examples,
    prediction_choices,
    prediction_rows,
    scores_line,
    word_map_pairs,
    word_maps_line,
)
from ui.shared.texts import PICK_A_RUN_TO_RESUME
from ui.shared.training import RunView, run_label, run_view, runs_list_label, saved_model_dir, stop_message
from ui.streamlit_pages.common import (
    CAPTION_MODEL_KEY,
    browser_session,
    model_box,
    saved_uploads,
    server_paths_allowed,
    shown_errors,
    work_folder,
)
from ui.streamlit_pages.run_sharing import push_section, zip_download

RUN_ON_SHOW = "caption_train_run_dir"  # the captioner run the sections below read (the classifier's is its own)
CHECKED = "caption_train_checked"  # the last data check's CaptionDataView
EXAMPLE = "caption_train_use_example"  # the example set was chosen (until a zip or path of one's own is given)
WORD_MAPS = "caption_train_word_maps_shown"  # (run folder, WordMapsBeforeAfter) of the last "Show the word maps"
REFRESH_S = 1.0  # how often the live view redraws while a run trains
MODES = {value: label for label, value in CAPTION_MODE_CHOICES}
TILE_WIDTH = 150
NO_CAPTION_DATA = f"No data yet: upload a zip of images with a captions file, or press “{CAPTION_EXAMPLE_BUTTON}”."
EXAMPLE_IN_USE = "Using the example set (1,200 captioned shapes); a zip of your own replaces it."


def this_visitor() -> Visitor:
    """Who is asking (as the classifier part of the page asks: this browser tab's session)."""
    return visitor(browser_session())


# ---- 1. the pairs ----------------------------------------------------------------------------------------------


def _own_data_given() -> None:
    # A zip or path of one's own replaces the example set.
    st.session_state[EXAMPLE] = False


def data_inputs() -> tuple[Callable[[Path], Path], bool]:
    """The data inputs, and whether the example button was pressed. The first gives the chosen data as
    load_caption_data takes it (a zip or caption file path), writing an upload into the folder it is given: only
    when Check or Start calls it."""
    zip_upload = st.file_uploader(
        CAPTION_ZIP_LABEL,
        type=["zip"],
        key="caption_train_zip",
        # Streamlit keeps an upload in memory; past the engine's data cap it would be refused anyway.
        max_upload_size=max(1, current_settings().max_data_bytes // 2**20),
        on_change=_own_data_given,
        help=CAPTION_DATA_HELP,
    )
    server_path = ""
    if server_paths_allowed():  # a path box reads the server's own files: only on one's own machine
        server_path = st.text_input(
            CAPTION_FILE_LABEL, key="caption_train_path", placeholder="/data/captions.csv", on_change=_own_data_given
        )
    example = st.button(CAPTION_EXAMPLE_BUTTON, key="caption_train_example", width="stretch")
    if example:
        st.session_state[EXAMPLE] = True
    if st.session_state.get(EXAMPLE):
        st.caption(EXAMPLE_IN_USE)
    image_column, caption_column = st.columns(2)
    image_column.text_input(IMAGE_COLUMN_LABEL, key="caption_train_image_column")
    caption_column.text_input(CAPTION_COLUMN_LABEL, key="caption_train_caption_column")

    def source(upload_folder: Path) -> Path:
        if st.session_state.get(EXAMPLE):
            return example_caption_zip()
        if zip_upload is not None:
            return saved_uploads([zip_upload], upload_folder)[0][1]
        if server_path.strip():
            return Path(server_path.strip())
        raise ValueError(NO_CAPTION_DATA)

    return source, example


def checked(source: Callable[[Path], Path]) -> CaptionDataView:
    """The data check as the page shows it; neither the upload nor the unpacked zip is kept."""
    folder = work_folder()
    try:
        with st.spinner("Reading the captions and checking the images ..."):
            # The histogram counts tokens of the model chosen under Settings (drawn on an earlier rerun).
            return check_captioned_data(
                source(folder / "upload"),
                work_dir=folder / "check",
                image_column=st.session_state.get("caption_train_image_column"),
                caption_column=st.session_state.get("caption_train_caption_column"),
                base=st.session_state.get("caption_train_base") or SCRATCH_CAPTIONER,
                encoder=st.session_state.get("caption_train_encoder"),
                decoder=st.session_state.get("caption_train_decoder"),
                max_target_length=st.session_state.get("caption_train_max_length", MAX_TARGET_LENGTH.default),
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # a check keeps no copy of the upload


def show_check(view: CaptionDataView) -> None:
    st.markdown(view.summary)
    st.dataframe(
        pd.DataFrame(view.rows, columns=list(CAPTION_REPORT_HEADERS)), hide_index=True, key="caption_train_counts"
    )
    st.markdown(f"**{TOKEN_HISTOGRAM_LABEL}**")
    st.pyplot(view.histogram, width="stretch")
    st.caption(view.length_note)
    st.markdown(f"**{CAPTION_THUMBNAILS_LABEL}**")
    if view.thumbnails:
        st.image([picture for picture, _ in view.thumbnails], caption=[text for _, text in view.thumbnails], width=120)
    if view.skipped:
        st.markdown(f"**{widgets.SKIPPED_LABEL}**")
        st.dataframe(
            pd.DataFrame(view.skipped, columns=list(widgets.SKIPPED_HEADERS)),
            hide_index=True,
            key="caption_train_skipped",
        )


def data_section() -> Callable[[Path], Path]:
    st.subheader(widgets.DATA_SECTION)
    source, example_chosen = data_inputs()
    # The example is checked at once: its counts and pictures show what a good set looks like.
    if st.button(widgets.CHECK_BUTTON, key="caption_train_check") or example_chosen:
        st.session_state.pop(CHECKED, None)  # the last check must not stand under this check's error
        view = shown_errors(lambda: checked(source))
        if view is not None:
            st.session_state[CHECKED] = view
    if CHECKED in st.session_state:
        show_check(st.session_state[CHECKED])
    return source


# ---- 2. settings -------------------------------------------------------------------------------------------------


def number_box(container, label: str, spec, key: str, *, whole: bool, format: str | None = None):
    """A st.number_input from a shared NumberBox spec (whole numbers as ints: Streamlit wants one type)."""
    kind = int if whole else float
    return container.number_input(
        label,
        min_value=None if spec.minimum is None else kind(spec.minimum),
        max_value=None if spec.maximum is None else kind(spec.maximum),
        value=kind(spec.default),
        step=None if spec.step is None else kind(spec.step),
        format=format,
        key=key,
    )


def settings_form(source: Callable[[Path], Path]) -> None:
    """The settings, and Start / Stop."""
    st.subheader(widgets.SETTINGS_SECTION)
    base = model_box(
        CAPTIONER_BASE_LABEL,
        captioner_start_choices(visible_runs(this_visitor())),
        "caption_train_base",
        SCRATCH_CAPTIONER,
        help=CAPTIONER_BASE_INFO,
    )
    encoder_column, decoder_column = st.columns(2)
    encoder = encoder_column.text_input(ENCODER_LABEL, placeholder=ENCODER_PLACEHOLDER, key="caption_train_encoder")
    decoder = decoder_column.text_input(DECODER_LABEL, placeholder=DECODER_PLACEHOLDER, key="caption_train_decoder")
    mode = st.radio(CAPTION_MODE_LABEL, list(MODES), format_func=MODES.get, key="caption_train_mode")
    epochs_column, lr_column, batch_column = st.columns(3)
    epochs = number_box(epochs_column, widgets.EPOCHS_LABEL, CAPTION_EPOCHS, "caption_train_epochs", whole=True)
    learning_rate = number_box(
        lr_column, widgets.LEARNING_RATE_LABEL, CAPTION_LEARNING_RATE, "caption_train_lr", whole=False, format="%g"
    )
    batch_size = number_box(
        batch_column, widgets.BATCH_SIZE_LABEL, CAPTION_BATCH_SIZE, "caption_train_batch", whole=True
    )
    with st.expander(widgets.MORE_SETTINGS):
        warmup_column, decay_column, length_column = st.columns(3)
        warmup_ratio = number_box(
            warmup_column, widgets.WARMUP_LABEL, CAPTION_WARMUP, "caption_train_warmup", whole=False
        )
        weight_decay = number_box(
            decay_column, widgets.WEIGHT_DECAY_LABEL, CAPTION_WEIGHT_DECAY, "caption_train_weight_decay", whole=False
        )
        max_target_length = number_box(
            length_column, MAX_TARGET_LENGTH_LABEL, MAX_TARGET_LENGTH, "caption_train_max_length", whole=True
        )
        smoothing_column, beams_column, tokens_column = st.columns(3)
        label_smoothing = number_box(
            smoothing_column, LABEL_SMOOTHING_LABEL, LABEL_SMOOTHING, "caption_train_smoothing", whole=False
        )
        num_beams = number_box(beams_column, EVAL_BEAMS_LABEL, EVAL_BEAMS, "caption_train_beams", whole=True)
        max_new_tokens = number_box(
            tokens_column, EVAL_MAX_NEW_TOKENS_LABEL, EVAL_MAX_NEW_TOKENS, "caption_train_new_tokens", whole=True
        )
        seed_column, precision_column = st.columns(2)
        seed = number_box(seed_column, widgets.SEED_LABEL, widgets.SEED, "caption_train_seed", whole=True)
        precision = precision_column.radio(
            widgets.PRECISION_LABEL,
            TRAINING_PRECISIONS,
            horizontal=True,
            index=TRAINING_PRECISIONS.index(widgets.DEFAULT_PRECISION),
            key="caption_train_precision",
        )
    run_name = st.text_input(widgets.RUN_NAME_LABEL, placeholder="e.g. shapes-captioner", key="caption_train_run_name")
    start_column, stop_column = st.columns(2)
    if start_column.button(widgets.START_BUTTON, type="primary", key="caption_train_start"):

        def start() -> TrainingJob:
            upload_folder = work_folder()
            try:
                config = caption_form_config(
                    source(upload_folder),
                    base,
                    encoder=encoder,
                    decoder=decoder,
                    mode=mode,
                    epochs=epochs,
                    learning_rate=learning_rate,
                    batch_size=batch_size,
                    warmup_ratio=warmup_ratio,
                    weight_decay=weight_decay,
                    max_target_length=max_target_length,
                    label_smoothing=label_smoothing,
                    num_beams=num_beams,
                    max_new_tokens=max_new_tokens,
                    image_column=st.session_state.get("caption_train_image_column"),
                    caption_column=st.session_state.get("caption_train_caption_column"),
                    seed=seed,
                    precision=precision,
                )
                return start_new_run(config, run_name, visitor=this_visitor())
            except ValueError:
                shutil.rmtree(upload_folder, ignore_errors=True)  # a refused run keeps no copy of the upload
                raise

        job = shown_errors(start)
        if job is not None:
            show_run(job.output_dir)
    if stop_column.button(widgets.STOP_BUTTON, key="caption_train_stop"):
        told = shown_errors(lambda: stop_message(stop_current(visitor=this_visitor())))
        if told is not None:
            st.info(told)


def show_run(run_dir: Path) -> None:
    """Put a run on show below; the last run's word maps go with it."""
    st.session_state[RUN_ON_SHOW] = str(run_dir)
    st.session_state.pop(WORD_MAPS, None)


# ---- 3. training, live ---------------------------------------------------------------------------------------


def run_state(run_dir: Path) -> tuple[RunView, JobState | None, tuple]:
    """The run as it is now, and its events: from the job in memory when it is the one training (or last
    trained), else from its folder's event log."""
    job = current_job()
    if job is not None and job.output_dir.resolve() == run_dir.resolve():
        job.watched_by(this_visitor())
        state = job.state()
        events = tuple(state.run_events)
        return run_view(events, state.running, folder=run_dir), state, events
    events = tuple(read_events(run_dir / EVENTS_LOG)) if (run_dir / EVENTS_LOG).is_file() else ()
    return run_view(events, False, folder=run_dir), None, events


def live_section(run_dir: Path) -> bool:
    """Progress line, curves (loss and ROUGE), the last scores and a few validation captions, redrawn in place
    every REFRESH_S seconds while the run trains; when it ends the page reruns once, so the results appear.
    Whether the run is training now."""
    was_running = is_training(run_dir)

    @st.fragment(run_every=REFRESH_S if was_running else None)
    def live() -> None:
        view, state, events = run_state(run_dir)
        st.markdown(view.progress)
        if state is not None and state.error:
            st.error(state.error)
        curves_column, examples_column = st.columns(2, gap="large")
        if view.figure is not None:
            curves_column.pyplot(view.figure, width="stretch")
        scores = scores_line(events)
        if scores:
            examples_column.markdown(scores)
        examples = latest_examples(events)
        if examples:
            examples_column.markdown(f"**{EXAMPLES_LABEL}**")
            examples_column.dataframe(
                pd.DataFrame(examples, columns=list(EXAMPLE_HEADERS)),
                hide_index=True,
                key="caption_train_examples",
                width="stretch",
            )
        if was_running and not is_training(run_dir):
            st.rerun()

    st.caption(f"{widgets.RUN_LABEL}: `{run_dir.name}`")
    live()
    return was_running


# ---- 4. what it learnt ---------------------------------------------------------------------------------------


def results_section(run_dir: Path) -> None:
    """After the run: its validation captions, word maps before and after, and using, zipping or pushing it."""
    if not (run_dir / PREDICTIONS).is_file():
        return
    predictions = shown_errors(lambda: caption_predictions(run_dir))
    if not predictions:
        return
    st.subheader(widgets.RESULTS_SECTION)
    st.markdown(f"**{PREDICTIONS_LABEL}**")
    st.dataframe(
        pd.DataFrame(prediction_rows(predictions), columns=list(PREDICTION_HEADERS)),
        hide_index=True,
        key="caption_train_predictions",
        width="stretch",
    )
    word_maps_section(run_dir, predictions)
    share_section(run_dir)


def word_maps_section(run_dir: Path, predictions: tuple[CaptionPrediction, ...]) -> None:
    st.markdown(f"**{WORD_MAPS_LABEL}**")
    labels = {path: label for label, path in prediction_choices(predictions)}
    picker_column, button_column = st.columns([4, 1], vertical_alignment="bottom")
    image = picker_column.selectbox(
        WORD_MAPS_IMAGE_LABEL, list(labels), format_func=labels.get, key=f"caption_train_word_image:{run_dir}"
    )
    if button_column.button(WORD_MAPS_BUTTON, key="caption_train_word_maps"):
        with st.spinner("Captioning the image with the trained model and with the model it started from ..."):
            compared = shown_errors(lambda: word_maps_before_after(run_dir, image))
        if compared is not None:
            st.session_state[WORD_MAPS] = (str(run_dir), compared)
    shown = st.session_state.get(WORD_MAPS)
    if shown is None or shown[0] != str(run_dir):
        return
    compared = shown[1]
    before, after = word_map_pairs(compared)
    before_column, after_column = st.columns(2)
    for column, label, tiles in ((before_column, BEFORE_LABEL, before), (after_column, AFTER_LABEL, after)):
        column.markdown(f"**{label}**")
        if tiles:
            column.image([tile for tile, _ in tiles], caption=[text for _, text in tiles], width=TILE_WIDTH)
    st.caption(word_maps_line(compared))


def share_section(run_dir: Path) -> None:
    use_column, zip_column = st.columns(2)
    if use_column.button(USE_CAPTIONER_BUTTON, type="primary", key="caption_train_use"):
        folder = shown_errors(lambda: saved_model_dir(run_dir))
        if folder is not None:
            # The Caption page's model box reads this key when it is next drawn (its options include the value).
            st.session_state[CAPTION_MODEL_KEY] = str(folder.resolve())
            st.success(caption_run_in_use(folder.name))
    zip_download(run_dir, zip_column, key="caption_train_zip_download")
    push_section(run_dir, "caption_train", "your-name/shapes-captioner")


# ---- earlier captioner runs ---------------------------------------------------------------------------------


def earlier_runs() -> None:
    st.subheader(widgets.EARLIER_RUNS_SECTION)
    asking = this_visitor()
    runs = {summary.name: run_label(summary) for summary in caption_runs(visible_runs(asking))}
    picked_column, show_column, resume_column = st.columns([6, 1, 1], vertical_alignment="bottom")
    picked = picked_column.selectbox(
        runs_list_label(asking.shared, runs_root()),
        list(runs),
        format_func=runs.get,
        index=None,
        placeholder="no run picked" if runs else "no captioner runs yet",
        key="caption_train_runs",
    )
    if show_column.button(widgets.SHOW_RUN_BUTTON, key="caption_train_show_run"):
        folder = shown_errors(lambda: find_run(picked, asking))
        if folder is not None:
            show_run(folder)
            st.rerun()
    if resume_column.button(widgets.RESUME_BUTTON, key="caption_train_resume"):
        if picked is None:
            st.error(PICK_A_RUN_TO_RESUME)
        else:
            job = shown_errors(
                lambda: start_training(resume_config(find_run(picked, asking, change=True)), visitor=asking)
            )
            if job is not None:
                show_run(job.output_dir)
                st.rerun()


# ---- the captioner part of the page ---------------------------------------------------------------------------


def render_captioner() -> None:
    st.markdown(CAPTION_TRAIN_INTRO)
    data_column, settings_column = st.columns([2, 3], gap="large")
    with data_column:
        source = data_section()
    with settings_column:
        settings_form(source)
    st.subheader(widgets.TRAINING_SECTION)
    run_on_show = st.session_state.get(RUN_ON_SHOW)
    if run_on_show is None:
        st.caption(f"{NO_CAPTION_RUN} Its progress, curves and captions appear here.")
    else:
        run_dir = Path(run_on_show)
        if not live_section(run_dir):
            results_section(run_dir)
    earlier_runs()
