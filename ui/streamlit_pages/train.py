"""The Train page: check a folder of images, fine-tune on it while the curves grow, then look at what it learnt."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from core import classify, current_settings
from training import (
    EVENTS_LOG,
    TRAINING_PRECISIONS,
    DataReport,
    DataSource,
    JobState,
    TrainingJob,
    Visitor,
    cell_overlays,
    check_data,
    class_samples,
    collection_batch_size,
    compare_base,
    current_job,
    disk_budget,
    example_data_zip,
    export_onnx,
    find_run,
    is_training,
    read_collection,
    read_events,
    remove_class,
    resume_config,
    runs_root,
    save_sample,
    start_new_run,
    start_training,
    stop_current,
    visible_runs,
    visitor,
    zip_collection,
)
from ui.shared import train_widgets as widgets
from ui.shared.caption_training import CAPTIONER_TASK, TASK_CHOICES, TASK_LABEL
from ui.shared.texts import (
    COMPARE_NOTE,
    EXAMPLE_DATA_INFO,
    EXAMPLE_DATA_LABEL,
    PICK_A_RUN_TO_RESUME,
    TRAIN_INTRO,
    TRAIN_TITLE,
    empty_cell,
    run_in_use,
    space_runs_note,
)
from ui.shared.training import (
    RunView,
    form_config,
    onnx_check_line,
    run_label,
    run_view,
    runs_list_label,
    saved_model_dir,
    start_from_choices,
    stop_message,
)
from ui.shared.training_data import (
    COUNT_HEADERS,
    chosen_source,
    collection_summary,
    collection_thumbnails,
    count_rows,
    report_summary,
    skipped_rows,
    thumbnails,
)
from ui.streamlit_pages.caption_train import render_captioner
from ui.streamlit_pages.common import (
    ATTENTION_MODEL_KEY,
    CLASSIFY_MODEL_KEY,
    WALKTHROUGH_MODEL_KEY,
    browser_session,
    hub_at_start,
    model_box,
    saved_uploads,
    server_paths_allowed,
    shown_errors,
    teacher_note,
    work_folder,
)
from ui.streamlit_pages.run_sharing import push_section, zip_download

RUN_ON_SHOW = "train_run_dir"  # the run every view below reads: training now, or picked under Earlier runs
REPORT = "train_report"
CELL = "train_cell"
COMPARED = "train_compared"
REFRESH_S = 1.0  # how often the live view redraws while a run trains
MODES = {value: label for label, value in widgets.MODE_CHOICES}
TILE_WIDTH = 150
WEBCAM_FOLDER = "train_webcam_folder"  # this tab's collected images (a work folder made at the first picture)
ONNX_EXPORTED = "train_onnx"  # (run folder, OnnxExport) of the last export


# ---- 1. the images --------------------------------------------------------------------------------------------


def max_zip_mb() -> int:
    """The zip box's limit in MB: Streamlit keeps an upload in memory, and past the engine's data cap
    (VIT_STUDIO_MAX_DATA_BYTES, read when the page draws) the zip would be refused anyway."""
    return max(1, current_settings().max_data_bytes // 2**20)


def data_inputs() -> Callable[[Path], DataSource]:
    """The data inputs; what they return gives the user's data as training.data takes it (a zip path, (name,
    path) pairs, or a server path), writing uploads into the folder it is given: only when Check or Start
    calls it."""
    # A path box reads the server's own files: only when the app was started to allow it (local use only).
    path_tab_name = [widgets.SERVER_PATH_TAB] if server_paths_allowed() else []
    zip_tab, folder_tab, webcam_tab, *path_tab = st.tabs(
        [widgets.ZIP_TAB, widgets.FOLDER_TAB, widgets.WEBCAM_TAB, *path_tab_name]
    )
    with webcam_tab:
        collect_section()
    with zip_tab:
        zip_upload = st.file_uploader(widgets.ZIP_LABEL, type=["zip"], key="train_zip", max_upload_size=max_zip_mb())
    with folder_tab:
        folder_upload = st.file_uploader(widgets.FOLDER_LABEL, accept_multiple_files="directory", key="train_folder")
    server_path = ""
    if path_tab:
        with path_tab[0]:
            server_path = st.text_input(
                widgets.SERVER_PATH_LABEL, key="train_path", placeholder=widgets.SERVER_PATH_PLACEHOLDER
            )

    use_example = st.checkbox(
        EXAMPLE_DATA_LABEL,
        value=True,
        key="train_example",
        help=f"{EXAMPLE_DATA_INFO}; used only when no images of your own are given above",
    )

    def source(upload_folder: Path) -> DataSource:
        zip_path = saved_uploads([zip_upload], upload_folder)[0][1] if zip_upload is not None else None
        # A folder upload names each file by its path inside the folder, which is where the class is.
        folder_items = saved_uploads(folder_upload, upload_folder) if folder_upload else None
        return chosen_source(
            zip_path, folder_items, server_path=server_path, example=example_data_zip() if use_example else None
        )

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
    st.markdown(report_summary(report))
    for warning in report.warnings:
        st.warning(warning)
    st.dataframe(pd.DataFrame(count_rows(report), columns=list(COUNT_HEADERS)), hide_index=True, key="train_counts")
    st.bar_chart(
        pd.DataFrame({"train": report.train_counts, "val": report.val_counts}, index=list(report.classes)),
        height=300,
        x_label=widgets.CLASS_AXIS,
        y_label=widgets.IMAGES_AXIS,
        color=[widgets.SPLIT_COLORS["train"], widgets.SPLIT_COLORS["val"]],
    )
    st.caption(widgets.COUNTS_KEY)
    st.markdown(f"**{widgets.THUMBNAILS_LABEL}**")
    if pictures:
        st.image([picture for picture, _ in pictures], caption=[name for _, name in pictures], width=96)
    if report.skipped:
        st.markdown(f"**{widgets.SKIPPED_LABEL}**")
        st.dataframe(
            pd.DataFrame(skipped_rows(report), columns=list(widgets.SKIPPED_HEADERS)),
            hide_index=True,
            key="train_skipped",
        )


# ---- 2. settings -----------------------------------------------------------------------------------------------


def _mode_changed() -> None:
    # Head-only and full training want different steps and epoch counts; a new mode starts from its own.
    defaults = widgets.MODE_DEFAULTS[st.session_state["train_mode"]]
    st.session_state["train_epochs"] = defaults["num_train_epochs"]
    st.session_state["train_lr"] = defaults["learning_rate"]


def settings_form(source: Callable[[Path], DataSource]) -> None:
    """The settings, and Start / Stop."""
    base = model_box(
        widgets.BASE_LABEL,
        start_from_choices(visible_runs(this_visitor()), hub_available=hub_at_start()),
        "train_base",
        widgets.default_base(hub_at_start()),
        help=widgets.BASE_INFO,
    )
    mode = st.radio(widgets.MODE_LABEL, list(MODES), format_func=MODES.get, key="train_mode", on_change=_mode_changed)
    # Set through session state (not value=) because a change of mode rewrites them.
    st.session_state.setdefault("train_epochs", int(widgets.MODE_DEFAULTS[mode]["num_train_epochs"]))
    st.session_state.setdefault("train_lr", widgets.MODE_DEFAULTS[mode]["learning_rate"])
    epochs_column, lr_column, batch_column = st.columns(3)
    epochs = epochs_column.number_input(
        widgets.EPOCHS_LABEL, min_value=int(widgets.EPOCHS.minimum), step=int(widgets.EPOCHS.step), key="train_epochs"
    )
    learning_rate = lr_column.number_input(
        widgets.LEARNING_RATE_LABEL, format="%g", step=widgets.LEARNING_RATE.step, key="train_lr"
    )
    batch_size = batch_column.number_input(
        widgets.BATCH_SIZE_LABEL,
        min_value=int(widgets.BATCH_SIZE.minimum),
        value=int(widgets.BATCH_SIZE.default),
        step=int(widgets.BATCH_SIZE.step),
        key="train_batch",
    )
    decay_column, warmup_column, size_column = st.columns(3)
    weight_decay = decay_column.number_input(
        widgets.WEIGHT_DECAY_LABEL,
        min_value=float(widgets.WEIGHT_DECAY.minimum),
        value=float(widgets.WEIGHT_DECAY.default),
        format="%g",
        key="train_weight_decay",
    )
    warmup_ratio = warmup_column.slider(
        widgets.WARMUP_LABEL,
        float(widgets.WARMUP.minimum),
        float(widgets.WARMUP.maximum),
        float(widgets.WARMUP.default),
        float(widgets.WARMUP.step),
        key="train_warmup",
    )
    image_size = size_column.number_input(
        widgets.IMAGE_SIZE_LABEL,
        min_value=int(widgets.IMAGE_SIZE.minimum),
        value=int(widgets.IMAGE_SIZE.default),
        step=int(widgets.IMAGE_SIZE.step),
        key="train_image_size",
    )
    augment_column, seed_column, precision_column = st.columns(3)
    augment = augment_column.checkbox(widgets.AUGMENT_LABEL, True, key="train_augment", help=widgets.AUGMENT_INFO)
    seed = seed_column.number_input(
        widgets.SEED_LABEL, value=int(widgets.SEED.default), step=int(widgets.SEED.step), key="train_seed"
    )
    precision = precision_column.radio(
        widgets.PRECISION_LABEL,
        TRAINING_PRECISIONS,
        horizontal=True,
        index=TRAINING_PRECISIONS.index(widgets.DEFAULT_PRECISION),
        key="train_precision",
    )
    run_name = st.text_input(widgets.RUN_NAME_LABEL, placeholder=widgets.RUN_NAME_PLACEHOLDER, key="train_run_name")
    start_column, stop_column = st.columns(2)
    if start_column.button(widgets.START_BUTTON, type="primary", key="train_start"):

        def start() -> TrainingJob:
            upload_folder = work_folder()
            try:
                return start_new_run(
                    form_config(
                        source(upload_folder),
                        base,
                        mode=mode,
                        epochs=epochs,
                        learning_rate=learning_rate,
                        batch_size=batch_size,
                        weight_decay=weight_decay,
                        warmup_ratio=warmup_ratio,
                        image_size=image_size,
                        augment=augment,
                        seed=seed,
                        precision=precision,
                    ),
                    run_name,
                    visitor=this_visitor(),
                )
            except ValueError:
                shutil.rmtree(upload_folder, ignore_errors=True)  # a refused run keeps no copy of the upload
                raise

        job = shown_errors(start)
        if job is not None:
            st.session_state[RUN_ON_SHOW] = str(job.output_dir)
            _forget_results()
    if stop_column.button(widgets.STOP_BUTTON, key="train_stop"):
        told = shown_errors(lambda: stop_message(stop_current(visitor=this_visitor())))
        if told is not None:
            st.info(told)


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
        # A resumed run's chart starts from its earlier log, as its saved curves.png does.
        return run_view(state.run_events, state.running, folder=run_dir), state
    events = read_events(run_dir / EVENTS_LOG) if (run_dir / EVENTS_LOG).is_file() else []
    return run_view(events, False, folder=run_dir), None


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
            with curves_column:
                teacher_note("train-curve")
        if view.per_class:
            per_class_column.markdown(f"**{widgets.PER_CLASS_LABEL}** (last validation)")
            per_class_column.dataframe(
                pd.DataFrame(view.per_class, columns=list(widgets.PER_CLASS_HEADERS)),
                hide_index=True,
                key="train_per_class",
            )
        if was_running and not is_training(run_dir):
            st.rerun()

    st.caption(f"{widgets.RUN_LABEL}: `{run_dir.name}`")
    live()
    return was_running


# ---- 4. what it learnt ------------------------------------------------------------------------------------------


def results_section(run_dir: Path, view: RunView) -> None:
    """After the run: the confusion matrix, a cell's images, and using, zipping or pushing the model."""
    if not view.per_class:
        return
    st.subheader(widgets.RESULTS_SECTION)
    if view.confusion_png is not None:
        st.image(str(view.confusion_png), caption=widgets.CONFUSION_CAPTION, width=420)
    live_prediction(run_dir)
    cell_section(run_dir, list(view.classes))
    share_section(run_dir)


def cell_section(run_dir: Path, classes: list[str]) -> None:
    true_column, predicted_column, button_column = st.columns([2, 2, 1], vertical_alignment="bottom")
    true_class = true_column.selectbox(widgets.TRUE_CLASS_LABEL, classes, key=f"train_true:{run_dir}")
    predicted = predicted_column.selectbox(
        widgets.PREDICTED_LABEL, classes, index=len(classes) - 1, key=f"train_predicted:{run_dir}"
    )
    if button_column.button(widgets.SHOW_CELL_BUTTON, key="train_show_cell"):
        pictures = shown_errors(lambda: _cell_pictures(run_dir, true_class, predicted))
        if pictures is not None:
            st.session_state[CELL] = (true_class, predicted, pictures)
            if not pictures:
                st.info(empty_cell(true_class, predicted))
    if CELL in st.session_state:
        shown_true, shown_predicted, pictures = st.session_state[CELL]
        if pictures:
            st.markdown(f"**{shown_true} predicted as {shown_predicted}**, with where the trained model looks")
            st.image([image for image, _ in pictures], caption=[text for _, text in pictures], width=TILE_WIDTH)
    with st.expander(widgets.COMPARE_SECTION):
        st.markdown(COMPARE_NOTE)
        if st.button("Compare attention on the first image of the cell", key="train_compare"):
            pair = shown_errors(lambda: compare_base(saved_model_dir(run_dir), true_class, predicted))
            if pair is not None:
                st.session_state[COMPARED] = pair
        if COMPARED in st.session_state:
            base_column, trained_column = st.columns(2)
            base_column.image(st.session_state[COMPARED][0], caption=widgets.BASE_MODEL_LABEL, width=300)
            trained_column.image(st.session_state[COMPARED][1], caption=widgets.TRAINED_MODEL_LABEL, width=300)


def _cell_pictures(run_dir: Path, true_class: str, predicted: str) -> list:
    with st.spinner("Classifying the validation images and drawing their attention ..."):
        return cell_overlays(saved_model_dir(run_dir), true_class, predicted)


def share_section(run_dir: Path) -> None:
    use_column, zip_column = st.columns(2)
    if use_column.button(widgets.USE_BUTTON, type="primary", key="train_use"):
        folder = shown_errors(lambda: saved_model_dir(run_dir))
        if folder is not None:
            for key in (CLASSIFY_MODEL_KEY, ATTENTION_MODEL_KEY, WALKTHROUGH_MODEL_KEY):
                st.session_state[key] = str(folder.resolve())
            st.success(run_in_use(folder.name))
    zip_download(run_dir, zip_column, key="train_zip_download")
    export_section(run_dir)
    push_section(run_dir, "train", widgets.REPO_PLACEHOLDER)


def export_section(run_dir: Path) -> None:
    """Export to ONNX, then the file to download and how its answers compare with PyTorch's."""
    if st.button(widgets.EXPORT_ONNX_BUTTON, key="train_export_onnx"):
        with st.spinner("Exporting and checking with onnxruntime ..."):
            exported = shown_errors(
                lambda: export_onnx(saved_model_dir(run_dir), work_folder() / f"{run_dir.name}.onnx")
            )
        if exported is not None:
            st.session_state[ONNX_EXPORTED] = (str(run_dir), exported)
    shown = st.session_state.get(ONNX_EXPORTED)
    if shown is not None and shown[0] == str(run_dir):
        exported = shown[1]
        st.download_button(
            widgets.ONNX_FILE_LABEL,
            exported.path.read_bytes(),
            file_name=exported.path.name,
            mime="application/octet-stream",
            key="train_onnx_download",
            on_click="ignore",
        )
        st.caption(onnx_check_line(exported))


# ---- webcam training (Teachable Machine style) ---------------------------------------------------------------


def collect_section() -> None:
    """Type a class name, take pictures (or upload them) into it; the classes collected so far; train on them."""
    st.markdown(widgets.WEBCAM_INTRO)
    st.text_input(widgets.CLASS_NAME_LABEL, placeholder=widgets.CLASS_NAME_PLACEHOLDER, key="train_webcam_class")
    # Saved in the widgets' callbacks, so a picture goes in once, not again on every rerun that still holds it.
    st.camera_input(widgets.SNAPSHOT_COLLECT_LABEL, key="train_webcam_capture", on_change=_save_capture)
    st.file_uploader(
        "Or upload pictures into the class",
        type=["png", "jpg", "jpeg", "webp", "bmp", "gif"],
        accept_multiple_files=True,
        key="train_webcam_upload",
        on_change=_save_uploads,
    )
    folder = st.session_state.get(WEBCAM_FOLDER)
    collected = read_collection(folder) if folder else None
    classes = list(collected.classes) if collected else []
    st.markdown(collection_summary(classes, collected.counts if collected else ()))
    if collected and classes:
        pictures = collection_thumbnails([(name, class_samples(folder, name)) for name in classes])
        st.image([picture for picture, _ in pictures], caption=[name for _, name in pictures], width=72)
        remove_column, button_column = st.columns([2, 1], vertical_alignment="bottom")
        doomed = remove_column.selectbox(widgets.REMOVE_CLASS_LABEL, classes, key="train_webcam_remove_class")
        if button_column.button(widgets.REMOVE_CLASS_BUTTON, key="train_webcam_remove"):
            if shown_errors(lambda: remove_class(folder, doomed)) is None:
                st.rerun()
    if st.button(widgets.TRAIN_COLLECTED_BUTTON, type="primary", key="train_webcam_train"):
        job = shown_errors(lambda: start_collected_run(folder))
        if job is not None:
            st.session_state[RUN_ON_SHOW] = str(job.output_dir)
            _forget_results()


def _collection_folder() -> Path:
    if WEBCAM_FOLDER not in st.session_state:
        st.session_state[WEBCAM_FOLDER] = str(work_folder())
    return Path(st.session_state[WEBCAM_FOLDER])


def _save_capture() -> None:
    picture = st.session_state.get("train_webcam_capture")
    if picture is not None:
        shown_errors(
            lambda: save_sample(_collection_folder(), st.session_state.get("train_webcam_class"), picture.getvalue())
        )


def _save_uploads() -> None:
    for upload in st.session_state.get("train_webcam_upload") or []:
        if (
            shown_errors(
                lambda upload=upload: save_sample(
                    _collection_folder(), st.session_state.get("train_webcam_class"), upload.getvalue()
                )
            )
            is None
        ):
            return


def start_collected_run(folder: str | None) -> TrainingJob:
    """A head-only run on the collected images, from the "Start from" model, with head-only's own defaults."""
    if not folder:
        raise ValueError("Nothing is collected yet: type a class name and take a picture first.")
    head = widgets.MODE_DEFAULTS["head"]
    archive = zip_collection(folder, work_folder())
    config = form_config(
        archive,
        st.session_state.get("train_base") or widgets.default_base(hub_at_start()),
        mode="head",
        epochs=head["num_train_epochs"],
        learning_rate=head["learning_rate"],
        batch_size=collection_batch_size(read_collection(folder), int(widgets.BATCH_SIZE.default)),
        weight_decay=0.0,
        warmup_ratio=widgets.WARMUP.default,
        image_size=0,
        augment=False,
        seed=st.session_state.get("train_seed", widgets.SEED.default),
        precision=st.session_state.get("train_precision", widgets.DEFAULT_PRECISION),
    )
    name = (st.session_state.get("train_run_name") or "").strip() or widgets.WEBCAM_RUN_NAME
    return start_new_run(config, name, visitor=this_visitor())


def live_prediction(run_dir: Path) -> None:
    """A webcam snapshot classified by the run (Streamlit's camera takes pictures, not a stream)."""
    st.markdown(f"**{widgets.LIVE_SECTION}**")
    snapshot = st.camera_input(widgets.SNAPSHOT_LABEL, key=f"train_live:{run_dir.name}")
    if snapshot is not None:
        predictions = shown_errors(
            lambda: classify(snapshot.getvalue(), model=str(saved_model_dir(run_dir).resolve()), top_k=3)
        )
        if predictions:
            st.dataframe(
                pd.DataFrame(
                    [(prediction.label, f"{prediction.score:.0%}") for prediction in predictions],
                    columns=["class", "score"],
                ),
                hide_index=True,
                key="train_live_predictions",
            )
    teacher_note("webcam-live")


# ---- earlier runs -----------------------------------------------------------------------------------------------


def earlier_runs() -> None:
    st.subheader(widgets.EARLIER_RUNS_SECTION)
    asking = this_visitor()
    # The captioner runs are listed in the captioner part of the page.
    runs = {summary.name: run_label(summary) for summary in visible_runs(asking) if summary.task != "caption"}
    picked_column, show_column, resume_column = st.columns([6, 1, 1], vertical_alignment="bottom")
    label = runs_list_label(asking.shared, runs_root())
    picked = picked_column.selectbox(
        label,
        list(runs),
        format_func=runs.get,
        index=None,
        placeholder="no run picked" if runs else "no runs yet",
        key="train_runs",
    )
    if show_column.button(widgets.SHOW_RUN_BUTTON, key="train_show_run"):
        folder = shown_errors(lambda: find_run(picked, asking))
        if folder is not None:
            st.session_state[RUN_ON_SHOW] = str(folder)
            _forget_results()
            st.rerun()
    if resume_column.button(widgets.RESUME_BUTTON, key="train_resume"):
        if picked is None:
            st.error(PICK_A_RUN_TO_RESUME)
        else:
            job = shown_errors(
                lambda: start_training(resume_config(find_run(picked, asking, change=True)), visitor=asking)
            )
            if job is not None:
                st.session_state[RUN_ON_SHOW] = str(job.output_dir)
                _forget_results()
                st.rerun()


# ---- the page -----------------------------------------------------------------------------------------------------


def render() -> None:
    st.header(TRAIN_TITLE)
    if disk_budget() is not None:
        st.info(space_runs_note(disk_budget().keep_runs_s))
    # Kept for the session: back from the Caption page, the captioner part is still the one shown.
    task = st.radio(TASK_LABEL, TASK_CHOICES, horizontal=True, key="train_task", persist_state="session")
    if task == CAPTIONER_TASK:
        render_captioner()
    else:
        render_classifier()


def render_classifier() -> None:
    st.markdown(TRAIN_INTRO)
    data_column, settings_column = st.columns([2, 3], gap="large")
    with data_column:
        st.subheader(widgets.DATA_SECTION)
        source = data_inputs()
        if st.button(widgets.CHECK_BUTTON, key="train_check"):
            st.session_state.pop(REPORT, None)  # the last report must not stand under this check's error
            report = shown_errors(lambda: checked(source))
            if report is not None:
                st.session_state[REPORT] = report
        if REPORT in st.session_state:
            show_report(*st.session_state[REPORT])
    with settings_column:
        st.subheader(widgets.SETTINGS_SECTION)
        settings_form(source)
    st.subheader(widgets.TRAINING_SECTION)
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
