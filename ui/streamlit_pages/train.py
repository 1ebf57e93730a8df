"""The Train page: check a folder of images, fine-tune on it while the curves grow, then look at what it learnt."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from training.data import (
    DEFAULT_MAX_DATA_BYTES, TABLE_HEADERS, DataReport, DataSource, check_data, chosen_source, thumbnails,
)
from training.events import read_events
from training.examples import example_data_zip
from training.access import Visitor, find_run, start_from_choices, visible_runs, visitor
from training.disk import disk_budget
from training.finetune import BASE_CHOICES, MODE_DEFAULTS, PRECISIONS, form_config, resume_config
from training.jobs import JobState, TrainingJob, current_job, is_training, start_new_run, start_training, stop_current
from training.review import cell_overlays, compare_base, push_to_hub
from training.runs import EVENTS_LOG, RunView, run_label, run_view, runs_root, saved_model_dir, zip_run
from ui.streamlit_pages.common import (
    ATTENTION_MODEL_KEY, CLASSIFY_MODEL_KEY, model_box, saved_uploads, server_paths_allowed, shown_errors,
    work_folder,
)
from ui.texts import EXAMPLE_DATA_INFO, EXAMPLE_DATA_LABEL, TRAIN_INTRO, space_runs_note

RUN_ON_SHOW = "train_run_dir"  # the run every view below reads: training now, or picked under Earlier runs
REPORT = "train_report"
CELL = "train_cell"
COMPARED = "train_compared"
SESSION = "train_session"
REFRESH_S = 1.0  # how often the live view redraws while a run trains
MODES = {"head": "Head only: the backbone stays frozen (fast)", "full": "Full fine-tune: every weight learns"}
# Streamlit keeps an upload in memory; past the engine's own data cap it would be refused anyway.
MAX_ZIP_MB = DEFAULT_MAX_DATA_BYTES // 2**20
TILE_WIDTH = 150
PER_CLASS_COLUMNS = ["class", "accuracy", "correct", "validation images"]


# ---- 1. the images --------------------------------------------------------------------------------------------


def data_inputs() -> Callable[[Path], DataSource]:
    """The data inputs; what they return gives the user's data as training.data takes it (a zip path, (name,
    path) pairs, or a server path), writing uploads into the folder it is given: only when Check or Start
    calls it."""
    # A path box reads the server's own files: only when the app was started to allow it (local use only).
    path_tab_name = ["Path on this machine"] if server_paths_allowed() else []
    zip_tab, folder_tab, *path_tab = st.tabs(["Zip", "Folder", *path_tab_name])
    with zip_tab:
        zip_upload = st.file_uploader("A zip of class folders (optional train/ and val/)", type=["zip"],
                                      key="train_zip", max_upload_size=MAX_ZIP_MB)
    with folder_tab:
        folder_upload = st.file_uploader("A folder with one sub-folder per class", accept_multiple_files="directory",
                                         key="train_folder")
    server_path = ""
    if path_tab:
        with path_tab[0]:
            server_path = st.text_input("Folder or zip on the machine running the app", key="train_path",
                                        placeholder="/data/my-photos")

    use_example = st.checkbox(EXAMPLE_DATA_LABEL, value=True, key="train_example",
                              help=f"{EXAMPLE_DATA_INFO}; used only when no images of your own are given above")

    def source(upload_folder: Path) -> DataSource:
        zip_path = saved_uploads([zip_upload], upload_folder)[0][1] if zip_upload is not None else None
        # A folder upload names each file by its path inside the folder, which is where the class is.
        folder_items = saved_uploads(folder_upload, upload_folder) if folder_upload else None
        return chosen_source(zip_path, folder_items, server_path, example_data_zip() if use_example else None)
    return source


def checked(source: Callable[[Path], DataSource]) -> tuple[DataReport, list]:
    """The data check's report and its thumbnails (as pictures in memory)."""
    folder = work_folder()
    try:
        with st.spinner("Checking the images ..."):
            report = check_data(source(folder / "upload"), folder / "check")
            return report, thumbnails(report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # a check keeps no copy of the upload (a zip may be 2 GB)


def show_report(report: DataReport, pictures: list) -> None:
    st.markdown(report.summary())
    for warning in report.warnings:
        st.warning(warning)
    st.dataframe(pd.DataFrame(report.table(), columns=list(TABLE_HEADERS)), hide_index=True, key="train_counts")
    st.bar_chart(pd.DataFrame({"train": report.train_counts, "val": report.val_counts}, index=list(report.classes)),
                 height=300, x_label="class", y_label="images")
    st.markdown("**A few of each class**")
    if pictures:
        st.image([picture for picture, _ in pictures], caption=[name for _, name in pictures], width=96)
    if report.skipped:
        st.markdown("**Skipped files**")
        st.dataframe(pd.DataFrame([[item.name, item.reason] for item in report.skipped],
                                  columns=["file", "why it was skipped"]), hide_index=True, key="train_skipped")


# ---- 2. settings -----------------------------------------------------------------------------------------------


def _mode_changed() -> None:
    # Head-only and full training want different steps and epoch counts; a new mode starts from its own.
    defaults = MODE_DEFAULTS[st.session_state["train_mode"]]
    st.session_state["train_epochs"] = defaults["num_train_epochs"]
    st.session_state["train_lr"] = defaults["learning_rate"]


def settings_form(source: Callable[[Path], DataSource]) -> None:
    """The settings, and Start / Stop."""
    base = model_box("Start from", start_from_choices(visible_runs(this_visitor())), "train_base", BASE_CHOICES[0],
                     help="a hub id, a local folder, an earlier run, or vit-small-scratch (offline, from random "
                          "weights)")
    mode = st.radio("What learns", list(MODES), format_func=MODES.get, key="train_mode", on_change=_mode_changed)
    # Set through session state (not value=) because a change of mode rewrites them.
    st.session_state.setdefault("train_epochs", MODE_DEFAULTS[mode]["num_train_epochs"])
    st.session_state.setdefault("train_lr", MODE_DEFAULTS[mode]["learning_rate"])
    epochs_column, lr_column, batch_column = st.columns(3)
    epochs = epochs_column.number_input("Epochs", min_value=1, step=1, key="train_epochs")
    learning_rate = lr_column.number_input("Learning rate", format="%g", step=1e-4, key="train_lr")
    batch_size = batch_column.number_input("Batch size", min_value=1, value=16, step=1, key="train_batch")
    decay_column, warmup_column, size_column = st.columns(3)
    weight_decay = decay_column.number_input("Weight decay", min_value=0.0, value=0.0, format="%g",
                                             key="train_weight_decay")
    warmup_ratio = warmup_column.slider("Warmup (share of steps)", 0.0, 0.5, 0.1, 0.05, key="train_warmup")
    image_size = size_column.number_input("Image size (0 = the model's)", min_value=0, value=0, step=1,
                                          key="train_image_size")
    augment_column, seed_column, precision_column = st.columns(3)
    augment = augment_column.checkbox("Random crops and flips", True, key="train_augment",
                                      help="full fine-tune only; off when a flip changes the class")
    seed = seed_column.number_input("Seed", value=42, step=1, key="train_seed")
    precision = precision_column.radio("Precision", PRECISIONS, horizontal=True, key="train_precision")
    run_name = st.text_input("Run name", placeholder="e.g. ants-vs-bees (empty: a timestamp)", key="train_run_name")
    start_column, stop_column = st.columns(2)
    if start_column.button("Start training", type="primary", key="train_start"):
        def start() -> TrainingJob:
            upload_folder = work_folder()
            try:
                return start_new_run(form_config(source(upload_folder), base, mode, epochs, learning_rate, batch_size,
                                                 weight_decay, warmup_ratio, image_size, augment, seed, precision),
                                     run_name, visitor=this_visitor())
            except ValueError:
                shutil.rmtree(upload_folder, ignore_errors=True)  # a refused run keeps no copy of the upload
                raise
        job = shown_errors(start)
        if job is not None:
            st.session_state[RUN_ON_SHOW] = str(job.output_dir)
            _forget_results()
    if stop_column.button("Stop", key="train_stop"):
        told = shown_errors(lambda: stop_current(visitor=this_visitor()))
        if told is not None:
            st.info(told)


def browser_session() -> str:
    """This browser tab's id for run ownership: Streamlit keeps session state per tab until a reload."""
    return st.session_state.setdefault(SESSION, uuid.uuid4().hex)


def this_visitor() -> Visitor:
    """Who is asking. Streamlit cannot keep an id in the browser, so on a shared app a reloaded tab is a new
    visitor: its earlier runs leave its list (the Gradio front end keeps them across reloads)."""
    return visitor(browser_session())


def _forget_results() -> None:
    for key in (CELL, COMPARED):
        st.session_state.pop(key, None)


# ---- 3. training, live ----------------------------------------------------------------------------------------


def run_state(run_dir: Path) -> tuple[RunView, JobState | None]:
    """The run as it is now: from the job in memory when it is the one training (or last trained), else from
    its folder's event log."""
    job = current_job()
    if job is not None and job.output_dir.resolve() == run_dir.resolve():
        job.watched_by(this_visitor())
        state = job.state()
        return run_view(state.events, state.running, run_dir), state
    events = read_events(run_dir / EVENTS_LOG) if (run_dir / EVENTS_LOG).is_file() else []
    return run_view(events, False, run_dir), None


def live_section(run_dir: Path) -> bool:
    """Progress line, curves and per-class accuracy, redrawn in place every REFRESH_S seconds while the run
    trains; when it ends the whole page reruns once, so the results below appear and the redrawing stops.
    Whether the run is training now."""
    was_running = is_training(run_dir)

    @st.fragment(run_every=REFRESH_S if was_running else None)
    def live() -> None:
        view, state = run_state(run_dir)
        st.markdown(view.progress)
        if state is not None and state.error:
            st.error(state.error)
        curves_column, per_class_column = st.columns([3, 2], gap="large")
        if view.figure is not None:
            curves_column.pyplot(view.figure, width="stretch")
        if view.per_class:
            per_class_column.markdown("**Accuracy per class** (last validation)")
            per_class_column.dataframe(
                pd.DataFrame(view.per_class, columns=PER_CLASS_COLUMNS), hide_index=True, key="train_per_class",
                column_config={"accuracy": st.column_config.NumberColumn(format="percent")})
        if was_running and not is_training(run_dir):
            st.rerun()

    st.caption(f"Run: `{run_dir.name}`")
    live()
    return was_running


# ---- 4. what it learnt ------------------------------------------------------------------------------------------


def results_section(run_dir: Path, view: RunView) -> None:
    """After the run: the confusion matrix, a cell's images, and using, zipping or pushing the model."""
    if not view.per_class:
        return
    st.subheader("4. What it learnt")
    if view.confusion_png is not None:
        st.image(str(view.confusion_png), caption="Confusion matrix (rows: true class)", width=420)
    cell_section(run_dir, list(view.classes))
    share_section(run_dir)


def cell_section(run_dir: Path, classes: list[str]) -> None:
    true_column, predicted_column, button_column = st.columns([2, 2, 1], vertical_alignment="bottom")
    true_class = true_column.selectbox("True class", classes, key=f"train_true:{run_dir}")
    predicted = predicted_column.selectbox("Predicted as", classes, index=len(classes) - 1,
                                           key=f"train_predicted:{run_dir}")
    if button_column.button("Show these validation images", key="train_show_cell"):
        pictures = shown_errors(lambda: _cell_pictures(run_dir, true_class, predicted))
        if pictures is not None:
            st.session_state[CELL] = (true_class, predicted, pictures)
            if not pictures:
                st.info(f"No validation image of '{true_class}' was predicted as '{predicted}'.")
    if CELL in st.session_state:
        shown_true, shown_predicted, pictures = st.session_state[CELL]
        if pictures:
            st.markdown(f"**{shown_true} predicted as {shown_predicted}**, with where the trained model looks")
            st.image([image for image, _ in pictures], caption=[text for _, text in pictures], width=TILE_WIDTH)
    with st.expander("Base model and trained model side by side"):
        st.markdown("Attention rollout of both models on the first image of the chosen cell. After head-only "
                    "training the two are the same: the backbone, where attention lives, did not change.")
        if st.button("Compare attention on the first image of the cell", key="train_compare"):
            pair = shown_errors(lambda: compare_base(saved_model_dir(run_dir), true_class, predicted))
            if pair is not None:
                st.session_state[COMPARED] = pair
        if COMPARED in st.session_state:
            base_column, trained_column = st.columns(2)
            base_column.image(st.session_state[COMPARED][0], caption="Base model", width=300)
            trained_column.image(st.session_state[COMPARED][1], caption="Trained model", width=300)


def _cell_pictures(run_dir: Path, true_class: str, predicted: str) -> list:
    with st.spinner("Classifying the validation images and drawing their attention ..."):
        return cell_overlays(saved_model_dir(run_dir), true_class, predicted)


def share_section(run_dir: Path) -> None:
    use_column, zip_column = st.columns(2)
    if use_column.button("Use this model in Classify and Attention", type="primary", key="train_use"):
        folder = shown_errors(lambda: saved_model_dir(run_dir))
        if folder is not None:
            st.session_state[CLASSIFY_MODEL_KEY] = st.session_state[ATTENTION_MODEL_KEY] = str(folder.resolve())
            st.success(f"Classify and Attention now use {folder.name}.")
    if (run_dir / "config.json").is_file():
        # The zip is made when the button is pressed, not on every rerun of the page.
        zip_column.download_button("Download the run (.zip)", lambda: zip_run(run_dir, work_folder()).read_bytes(),
                                   file_name=f"{run_dir.name}.zip", mime="application/zip", key="train_zip_download",
                                   on_click="ignore")
    with st.expander("Push to the Hugging Face Hub"):
        repo_column, token_column, private_column = st.columns([2, 2, 1], vertical_alignment="bottom")
        repo_id = repo_column.text_input("Repository", placeholder="your-name/ants-vs-bees", key="train_repo")
        token = token_column.text_input("Access token (write)", type="password", key="train_token",
                                        help="used for this upload only: never saved or logged")
        private = private_column.checkbox("Private", True, key="train_private")
        if st.button("Push", key="train_push"):
            url = shown_errors(lambda: push_to_hub(saved_model_dir(run_dir), repo_id, token, private=private))
            if url is not None:
                st.success(f"Pushed: [{url}]({url})")


# ---- earlier runs -----------------------------------------------------------------------------------------------


def earlier_runs() -> None:
    st.subheader("Earlier runs")
    asking = this_visitor()
    runs = {summary.name: run_label(summary) for summary in visible_runs(asking)}
    picked_column, show_column, resume_column = st.columns([6, 1, 1], vertical_alignment="bottom")
    label = "Your runs and example runs" if asking.shared else f"Runs in {runs_root()}"
    picked = picked_column.selectbox(label, list(runs), format_func=runs.get, index=None,
                                     placeholder="no run picked" if runs else "no runs yet", key="train_runs")
    if show_column.button("Show", key="train_show_run"):
        folder = shown_errors(lambda: find_run(picked, asking))
        if folder is not None:
            st.session_state[RUN_ON_SHOW] = str(folder)
            _forget_results()
            st.rerun()
    if resume_column.button("Resume", key="train_resume"):
        if picked is None:
            st.error("Pick a stopped or interrupted run in the list first.")
        else:
            job = shown_errors(lambda: start_training(resume_config(find_run(picked, asking, change=True)),
                                                      visitor=asking))
            if job is not None:
                st.session_state[RUN_ON_SHOW] = str(job.output_dir)
                _forget_results()
                st.rerun()


# ---- the page -----------------------------------------------------------------------------------------------------


def render() -> None:
    st.header("Train")
    st.markdown(TRAIN_INTRO)
    if disk_budget() is not None:
        st.info(space_runs_note(disk_budget().keep_runs_s))
    data_column, settings_column = st.columns([2, 3], gap="large")
    with data_column:
        st.subheader("1. Your images")
        source = data_inputs()
        if st.button("Check data", key="train_check"):
            st.session_state.pop(REPORT, None)  # the last report must not stand under this check's error
            report = shown_errors(lambda: checked(source))
            if report is not None:
                st.session_state[REPORT] = report
        if REPORT in st.session_state:
            show_report(*st.session_state[REPORT])
    with settings_column:
        st.subheader("2. Settings")
        settings_form(source)
    st.subheader("3. Training")
    run_on_show = st.session_state.get(RUN_ON_SHOW)
    if run_on_show is None:
        st.caption("Start a run above, or show one under Earlier runs; its progress and curves appear here.")
    else:
        run_dir = Path(run_on_show)
        if not live_section(run_dir):
            results_section(run_dir, run_state(run_dir)[0])
    earlier_runs()


if __name__ == "__main__":
    render()
