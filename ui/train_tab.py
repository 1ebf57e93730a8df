"""The Train tab: check a folder of images, fine-tune on it with live curves, then look at what it learnt."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gradio as gr
import pandas as pd

from core import classify, hub_available
from training import (
    EVENTS_LOG,
    SESSIONS,
    TRAINING_PRECISIONS,
    DataError,
    RunSummary,
    Visitor,
    check_data,
    compare_base,
    current_job,
    disk_budget,
    example_data_zip,
    export_onnx,
    find_run,
    is_training,
    kept_or_new_visitor_id,
    may_see,
    push_to_hub,
    read_events,
    resume_config,
    runs_root,
    session_visitor,
    start_new_run,
    start_training,
    stop_current,
    visible_runs,
    visitor,
    watch,
    zip_run,
)
from training import cell_overlays as cell_pictures
from ui import webcam_train
from ui.gradio_common import output_folder, teacher_note, user_errors
from ui.shared import train_widgets as widgets
from ui.shared.caption_training import CAPTIONER_TASK, CLASSIFIER_TASK, TASK_CHOICES, TASK_LABEL
from ui.shared.texts import (
    COMPARE_NOTE,
    EXAMPLE_DATA_INFO,
    EXAMPLE_DATA_LABEL,
    PICK_A_RUN_TO_RESUME,
    TRAIN_INTRO,
    empty_cell,
    pushed,
    run_in_use,
    space_runs_note,
)
from ui.shared.training import (
    form_config,
    onnx_check_line,
    run_label,
    run_view,
    runs_list_label,
    saved_model_dir,
    start_from_choices,
    stop_message,
)
from ui.shared.training_data import COUNT_HEADERS, chosen_source, count_rows, report_summary, skipped_rows, thumbnails

# Training streams sleep between redraws, so they get slots of their own: a second visitor's Start is answered at
# once (refused while another run trains) instead of waiting behind the first visitor's stream. Starting and
# watching are kept apart, so that pages watching a run can never hold up anyone's Start.
STARTS = dict(concurrency_id="training-starts", concurrency_limit=4)
WATCHERS = dict(concurrency_id="training-watchers", concurrency_limit=8)

# Gradio hands a Python function only the file names of a folder upload; the browser knows each file's path
# inside the folder (the class). This keeps those paths, in upload order, in a hidden box.
FOLDER_NAMES_JS = """
() => {
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.webkitdirectory) return;
    const names = Array.from(input.files || []).map((file) => file.webkitRelativePath || file.name);
    const box = document.querySelector("#train-folder-names textarea");
    if (!box) return;
    box.value = JSON.stringify(names);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }, true);
}
"""
# Whether the Hub answered when the page was built: asked once, at start; without it "Start from" begins with
# what is on this machine.
_HUB = {"available": True}

# Gradio keeps an upload as <cache>/<sha256 of its content>/<file name>: the folder the file came from is lost.
_UPLOAD_HASH_FOLDER = re.compile(r"^[0-9a-f]{40,64}$")


@dataclass(frozen=True)
class RunLists:
    """The Train tab's lists that depend on who is asking, redrawn when a page loads."""

    runs: gr.Dropdown
    base: gr.Dropdown
    caption_runs: gr.Dropdown | None = None  # the captioner section's own Earlier runs and Start from
    caption_base: gr.Dropdown | None = None


def visitor_boxes() -> tuple[gr.State, gr.BrowserState]:
    """This session's visitor id (None for an API client, whose session then stands in), and the same id kept in
    the browser, so a reload is still the same visitor. Made at the top of the page, outside any tab: a tab's
    contents are drawn only when it opens, and a BrowserState that is not drawn neither reads nor keeps its value."""
    return gr.State(None), gr.BrowserState(None, storage_key="vit-studio-visitor")


def train_tab(
    model_boxes: tuple[gr.Dropdown, ...],
    visitor_id: gr.State,
    allow_server_paths: bool = False,
    caption_model: gr.Dropdown | None = None,
    tabs: gr.Tabs | None = None,
) -> RunLists:
    """`model_boxes` (the Classify, Attention and Step-by-step model choosers) each receive a finished run on
    "Use this model"; `visitor_id` is visitor_boxes()'s session id. `caption_model` (the Caption tab's chooser)
    receives a finished captioner run, and `tabs` then switches to the Caption tab."""
    from ui.caption_train import caption_section  # it builds on this module's helpers

    task = gr.Radio(list(TASK_CHOICES), value=CLASSIFIER_TASK, label=TASK_LABEL, elem_id="train-task")
    _HUB["available"] = hub_ok = hub_available()
    runs_now = visible_runs(_anyone())
    if disk_budget() is not None:
        gr.Markdown(space_runs_note(disk_budget().keep_runs_s), elem_id="train-space-note")
    # On a phone every section stacks: only what is relevant now shows. The data report appears after a check,
    # the training section when a run starts or is picked, what it learnt once a run has ended.
    with gr.Column(elem_id="train-classifier") as classifier_box:
        gr.Markdown(TRAIN_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown(f"### {widgets.DATA_SECTION}")
                with gr.Tabs():
                    with gr.Tab(widgets.ZIP_TAB) as zip_tab:
                        zip_file = gr.File(file_types=[".zip"], label=widgets.ZIP_LABEL, elem_id="train-zip")
                        gr.Examples(
                            [[str(example_data_zip())]],
                            inputs=[zip_file],
                            label=f"{EXAMPLE_DATA_LABEL} ({EXAMPLE_DATA_INFO})",
                            elem_id="train-example",
                        )
                    with gr.Tab(widgets.FOLDER_TAB) as folder_tab:
                        folder_files = gr.File(
                            file_count="directory", label=widgets.FOLDER_LABEL, elem_id="train-folder"
                        )
                        folder_names = gr.Textbox(
                            elem_id="train-folder-names", elem_classes=["hidden-box"], show_label=False, container=False
                        )
                    with gr.Tab(widgets.WEBCAM_TAB, elem_id="train-webcam-tab") as webcam_tab:
                        collect = webcam_train.collect_section()
                    if allow_server_paths:
                        with gr.Tab(widgets.SERVER_PATH_TAB) as path_tab:
                            server_path = gr.Textbox(
                                label=widgets.SERVER_PATH_LABEL,
                                placeholder=widgets.SERVER_PATH_PLACEHOLDER,
                                elem_id="train-path",
                            )
                if not allow_server_paths:
                    server_path = gr.State("")  # never a path from a visitor: the app may be public
                check = gr.Button(widgets.CHECK_BUTTON, elem_id="train-check")
                data_summary = gr.Markdown(elem_id="train-data-summary")
                with gr.Column(visible=False, elem_id="train-report") as report_box:
                    counts = gr.Dataframe(
                        headers=list(COUNT_HEADERS),
                        interactive=False,
                        label=widgets.COUNTS_LABEL,
                        elem_id="train-counts",
                    )
                    counts_chart = gr.BarPlot(
                        x=widgets.CLASS_AXIS,
                        y=widgets.IMAGES_AXIS,
                        color=widgets.SPLIT_KEY,
                        color_map=widgets.SPLIT_COLORS,
                        label=widgets.COUNTS_LABEL,
                        height=220,
                        elem_id="train-counts-chart",
                    )
                    # The chart's own legend shows its title but not its entries (gradio 6): the key in words instead.
                    gr.Markdown(widgets.COUNTS_KEY, elem_id="train-counts-key")
                    thumbnails = gr.Gallery(
                        label=widgets.THUMBNAILS_LABEL, columns=6, height=200, elem_id="train-thumbnails"
                    )
                    skipped = gr.Dataframe(
                        headers=list(widgets.SKIPPED_HEADERS), interactive=False, label=widgets.SKIPPED_LABEL, wrap=True
                    )
            with gr.Column(scale=3, min_width=320):
                gr.Markdown(f"### {widgets.SETTINGS_SECTION}")
                base = gr.Dropdown(
                    start_from_choices(runs_now, hub_available=hub_ok),
                    value=widgets.default_base(hub_ok),
                    allow_custom_value=True,
                    label=widgets.BASE_LABEL,
                    elem_id="train-base",
                    info=widgets.BASE_INFO,
                )
                mode = gr.Radio(
                    list(widgets.MODE_CHOICES),
                    value=widgets.DEFAULT_MODE,
                    label=widgets.MODE_LABEL,
                    elem_id="train-mode",
                )
                with gr.Row():
                    epochs = gr.Number(
                        widgets.EPOCHS.default,
                        precision=0,
                        minimum=widgets.EPOCHS.minimum,
                        label=widgets.EPOCHS_LABEL,
                        elem_id="train-epochs",
                    )
                    learning_rate = gr.Number(
                        widgets.LEARNING_RATE.default, label=widgets.LEARNING_RATE_LABEL, elem_id="train-lr"
                    )
                    batch_size = gr.Number(
                        widgets.BATCH_SIZE.default,
                        precision=0,
                        minimum=widgets.BATCH_SIZE.minimum,
                        label=widgets.BATCH_SIZE_LABEL,
                        elem_id="train-batch",
                    )
                with gr.Accordion(widgets.MORE_SETTINGS, open=False, elem_id="train-more-settings"):
                    with gr.Row():
                        weight_decay = gr.Number(
                            widgets.WEIGHT_DECAY.default,
                            minimum=widgets.WEIGHT_DECAY.minimum,
                            label=widgets.WEIGHT_DECAY_LABEL,
                        )
                        warmup_ratio = gr.Slider(
                            widgets.WARMUP.minimum,
                            widgets.WARMUP.maximum,
                            value=widgets.WARMUP.default,
                            step=widgets.WARMUP.step,
                            label=widgets.WARMUP_LABEL,
                        )
                        image_size = gr.Number(
                            widgets.IMAGE_SIZE.default,
                            precision=0,
                            minimum=widgets.IMAGE_SIZE.minimum,
                            label=widgets.IMAGE_SIZE_LABEL,
                        )
                    with gr.Row():
                        augment = gr.Checkbox(True, label=widgets.AUGMENT_LABEL, info=widgets.AUGMENT_INFO)
                        seed = gr.Number(widgets.SEED.default, precision=0, label=widgets.SEED_LABEL)
                        precision = gr.Radio(
                            list(TRAINING_PRECISIONS), value=widgets.DEFAULT_PRECISION, label=widgets.PRECISION_LABEL
                        )
                run_name = gr.Textbox(
                    label=widgets.RUN_NAME_LABEL, placeholder=widgets.RUN_NAME_PLACEHOLDER, elem_id="train-run-name"
                )
                with gr.Row():
                    start = gr.Button(widgets.START_BUTTON, variant="primary", elem_id="train-start")
                    stop = gr.Button(widgets.STOP_BUTTON, variant="stop", elem_id="train-stop")
                    watch_button = gr.Button("Watch the current run")
        with gr.Column(visible=False, elem_id="train-run-section") as run_box:
            gr.Markdown(f"### {widgets.TRAINING_SECTION}")
            with gr.Row():
                progress_line = gr.Markdown(elem_id="train-progress")
                # The run on show (training now, or picked from the list): every view below reads this folder.
                run_dir = gr.Textbox(label=widgets.RUN_LABEL, interactive=False, elem_id="train-run-dir", scale=1)
            # A matplotlib figure redrawn as the run goes: gr.LinePlot fixes its colour legend at the first frame,
            # so the validation curve that starts an epoch later would never show.
            curves_plot = gr.Plot(label="Loss and validation accuracy", elem_id="train-curves")
            teacher_note("train-curve")
        with gr.Column(visible=False, elem_id="train-results-section") as results_box:
            gr.Markdown(f"### {widgets.RESULTS_SECTION}")
            with gr.Row(equal_height=False):
                per_class = gr.Dataframe(
                    headers=list(widgets.PER_CLASS_HEADERS),
                    interactive=False,
                    label=widgets.PER_CLASS_LABEL,
                    elem_id="train-per-class",
                )
                confusion = gr.Image(
                    label=widgets.CONFUSION_CAPTION,
                    type="filepath",
                    height=320,
                    interactive=False,
                    elem_id="train-confusion",
                )
            live = webcam_train.live_section()
            with gr.Row():
                true_class = gr.Dropdown([], label=widgets.TRUE_CLASS_LABEL, elem_id="train-true")
                predicted_class = gr.Dropdown([], label=widgets.PREDICTED_LABEL, elem_id="train-predicted")
                show_cell = gr.Button(widgets.SHOW_CELL_BUTTON, elem_id="train-show-cell")
            cell_gallery = gr.Gallery(
                label="Those images, with where the trained model looks",
                columns=6,
                height=260,
                visible=False,
                elem_id="train-cell",
            )
            with gr.Accordion(widgets.COMPARE_SECTION, open=False):
                gr.Markdown(COMPARE_NOTE)
                compare = gr.Button("Compare attention on the first image above")
                with gr.Row():
                    base_view = gr.Image(label=widgets.BASE_MODEL_LABEL, type="pil", height=300)
                    trained_view = gr.Image(label=widgets.TRAINED_MODEL_LABEL, type="pil", height=300)
            with gr.Row():
                use_model = gr.Button(widgets.USE_BUTTON, variant="primary", elem_id="train-use")
                make_zip = gr.Button("Zip the run")
                run_zip = gr.File(label="The run (.zip)", visible=False, elem_id="train-run-zip")
            with gr.Row(equal_height=False):
                export = gr.Button(widgets.EXPORT_ONNX_BUTTON, elem_id="train-export-onnx")
                onnx_file = gr.File(label=widgets.ONNX_FILE_LABEL, visible=False, elem_id="train-onnx-file")
            onnx_check = gr.Markdown(elem_id="train-onnx-check")
            with gr.Accordion(widgets.PUSH_SECTION, open=False):
                with gr.Row():
                    repo_id = gr.Textbox(label=widgets.REPO_LABEL, placeholder=widgets.REPO_PLACEHOLDER)
                    token = gr.Textbox(label=widgets.TOKEN_LABEL, type="password", info=widgets.TOKEN_INFO)
                    private = gr.Checkbox(True, label=widgets.PRIVATE_LABEL)
                push = gr.Button(widgets.PUSH_BUTTON)
                pushed = gr.Markdown()
        gr.Markdown(f"### {widgets.EARLIER_RUNS_SECTION}")
        with gr.Row():
            runs = gr.Dropdown(_run_choices(runs_now), label=_runs_label(), scale=3, elem_id="train-runs")
            refresh = gr.Button("Refresh", scale=1)
            show_run = gr.Button(widgets.SHOW_RUN_BUTTON, scale=1)
            resume = gr.Button(widgets.RESUME_BUTTON, scale=1, elem_id="train-resume")

    source = [zip_file, folder_files, folder_names, server_path]
    settings = [
        base,
        mode,
        epochs,
        learning_rate,
        batch_size,
        weight_decay,
        warmup_ratio,
        image_size,
        augment,
        seed,
        precision,
        run_name,
    ]
    # "Check data" checks an upload or a path; the webcam's pictures are counted as they come.
    data_tabs = [zip_tab, folder_tab, *([path_tab] if allow_server_paths else [])]
    for tab in data_tabs:
        tab.select(_shown, outputs=[check], api_visibility="private", queue=False)
    webcam_tab.select(lambda: gr.update(visible=False), outputs=[check], api_visibility="private", queue=False)
    live_outputs = [progress_line, curves_plot, per_class, confusion, true_class, predicted_class, runs, base]
    check.click(
        check_source,
        inputs=source,
        outputs=[data_summary, counts, counts_chart, thumbnails, skipped],
        api_name="check_data",
    ).success(lambda: gr.Column(visible=True), outputs=[report_box], api_visibility="private", queue=False)
    mode.change(
        lambda chosen: [
            widgets.MODE_DEFAULTS[chosen]["num_train_epochs"],
            widgets.MODE_DEFAULTS[chosen]["learning_rate"],
        ],
        inputs=[mode],
        outputs=[epochs, learning_rate],
        api_visibility="undocumented",
    )
    # visitor_id is a gr.State: it never shows in the API, and each event reads this session's value.
    start.click(
        start_run,
        inputs=[*source, *settings, visitor_id],
        outputs=[run_dir, *live_outputs],
        api_name="train",
        **STARTS,
    )
    collect.train.click(
        start_collected_run,
        inputs=[collect.folder, base, seed, precision, run_name, visitor_id],
        outputs=[run_dir, *live_outputs],
        api_name="train_collected",
        **STARTS,
    )
    stop.click(stop_run, inputs=[visitor_id], outputs=[progress_line], api_name="stop_training")
    watch_button.click(
        watch_current, inputs=[visitor_id], outputs=[run_dir, *live_outputs], api_name="watch_training", **WATCHERS
    )
    # The sections follow the run on show: the training section once there is one, the results once it has ended
    # (its confusion matrix is drawn then).
    run_dir.change(
        lambda name: gr.Column(visible=bool(name)),
        inputs=[run_dir],
        outputs=[run_box],
        api_visibility="private",
        queue=False,
    )
    confusion.change(
        lambda picture: gr.Column(visible=picture is not None),
        inputs=[confusion],
        outputs=[results_box],
        api_visibility="private",
        queue=False,
    )
    live.camera.stream(
        predict_live,
        inputs=[live.camera, run_dir, visitor_id],
        outputs=[live.prediction],
        stream_every=widgets.LIVE_EVERY_S,
        time_limit=600,
        concurrency_limit=8,
        api_name="predict_live",
    )
    show_cell.click(
        cell_overlays,
        inputs=[run_dir, true_class, predicted_class, visitor_id],
        outputs=[cell_gallery],
        api_name="validation_cell",
    ).success(_shown, outputs=[cell_gallery], api_visibility="private", queue=False)
    compare.click(
        compare_attention,
        inputs=[run_dir, true_class, predicted_class, visitor_id],
        outputs=[base_view, trained_view],
        api_name="compare_base",
    )
    make_zip.click(zip_current, inputs=[run_dir, visitor_id], outputs=[run_zip], api_name="zip_run").success(
        _shown, outputs=[run_zip], api_visibility="private", queue=False
    )
    export.click(
        export_current, inputs=[run_dir, visitor_id], outputs=[onnx_file, onnx_check], api_name="export_onnx"
    ).success(_shown, outputs=[onnx_file], api_visibility="private", queue=False)
    push.click(
        push_current, inputs=[run_dir, repo_id, token, private, visitor_id], outputs=[pushed], api_name="push_to_hub"
    )
    refresh.click(refresh_lists, inputs=[visitor_id], outputs=[runs, base], api_visibility="undocumented")
    show_run.click(show_saved_run, inputs=[runs, visitor_id], outputs=[run_dir, *live_outputs], api_name="show_run")
    resume.click(resume_run, inputs=[runs, visitor_id], outputs=[run_dir, *live_outputs], api_name="resume", **STARTS)

    def use_run_everywhere(run_name, visitor_id, request: gr.Request):
        folder = use_run(run_name, visitor_id, request)
        # One update each: Gradio takes the value out of an update as it applies it, so a shared one fills one box.
        return tuple(gr.update(value=folder) for _ in model_boxes)

    use_model.click(use_run_everywhere, inputs=[run_dir, visitor_id], outputs=list(model_boxes), api_name="use_run")
    captioner = caption_section(
        visitor_id, caption_model, tabs, allow_server_paths=allow_server_paths, runs_now=runs_now
    )
    task.change(
        lambda chosen: (gr.Column(visible=chosen != CAPTIONER_TASK), gr.Column(visible=chosen == CAPTIONER_TASK)),
        inputs=[task],
        outputs=[classifier_box, captioner.box],
        api_visibility="private",
        queue=False,
    )
    return RunLists(runs, base, captioner.runs, captioner.base)


def _shown():
    """A box that stays hidden until it has something to show (a phone would scroll past empty boxes)."""
    return gr.update(visible=True)


def connect_visitor(demo: gr.Blocks, visitor_id: gr.State, browser_id: gr.BrowserState, lists: RunLists) -> None:
    """On every page load: the browser's visitor id (a new one on a first visit), and the lists of runs it may see."""
    demo.load(
        welcome_visitor,
        inputs=[browser_id],
        outputs=[visitor_id, browser_id, lists.runs, lists.base],
        api_visibility="private",
    )
    if lists.caption_runs is not None and lists.caption_base is not None:
        from ui.caption_train import refresh_caption_lists

        visitor_id.change(
            refresh_caption_lists,
            inputs=[visitor_id],
            outputs=[lists.caption_runs, lists.caption_base],
            api_visibility="private",
            queue=False,
        )


def welcome_visitor(browser_id: str | None, request: gr.Request):
    """The id kept in this browser (or a new one), for the session and back into the browser; then the lists."""
    visitor_id = kept_or_new_visitor_id(browser_id)
    SESSIONS.remember(request.session_hash, visitor_id)
    lists = refresh_lists(visitor_id, request)
    return visitor_id, visitor_id, *lists


def refresh_lists(visitor_id: str | None, request: gr.Request):
    runs = visible_runs(_visitor(visitor_id, request))
    return gr.update(choices=_run_choices(runs)), gr.update(
        choices=start_from_choices(runs, hub_available=_HUB["available"])
    )


def _visitor(visitor_id: str | None, request: gr.Request | None) -> Visitor:
    return session_visitor(visitor_id, request.session_hash if request is not None else None)


def _anyone() -> Visitor:
    """A visitor nobody knows yet, for the lists drawn before a page loads: on a shared app they hold only the
    example runs."""
    return visitor(None)


def _runs_label() -> str:
    return runs_list_label(_anyone().shared, runs_root())


def _run_choices(runs: Sequence[RunSummary]) -> list[tuple[str, str]]:
    """The classifier runs of a list (captioner runs are listed in the captioner section)."""
    return [(run_label(summary), summary.name) for summary in runs if summary.task != "caption"]


# ---- data -------------------------------------------------------------------------------------------------


def data_source(zip_file, folder_files, folder_names, server_path):
    """What the user gave, as training takes it: a zip, (name inside the folder, file) pairs, or a path."""
    with user_errors():
        folder_items = folder_upload(folder_names, folder_files) if folder_files else None
        return chosen_source(zip_file, folder_items, server_path=server_path)


def folder_upload(names_json: str | None, files: Sequence) -> list:
    """A folder upload as training takes it: (name inside the folder, file) pairs when the browser's names could
    be paired, else the bare files, unless Gradio's cache layout shows the class folders were lost."""
    items = pair_folder_names(names_json, files)
    check_folder_names_survived(items)
    return items


def pair_folder_names(names_json: str | None, files: Sequence) -> list:
    """A folder upload's files paired with their paths inside the folder (which hold the class), as a browser
    reports them in a JSON list: only when there is one name per file and each ends with its file's own name.
    Otherwise the bare files, and check_folder_names_survived says the class folders were lost: a wrong pairing
    would silently give images the wrong class."""
    try:
        names = json.loads(names_json) if names_json else []
    except ValueError:
        names = []
    pairs = list(zip(names, files)) if isinstance(names, list) and len(names) == len(files) else []
    if pairs and all(isinstance(name, str) and Path(name).name == Path(file).name for name, file in pairs):
        return pairs
    return list(files)


def check_folder_names_survived(items: Sequence) -> None:
    """Refuse an upload whose files' first folders are all Gradio's content-hash folders: the class folders are
    lost, and training would take each hash for a class. Pairs count by their names, bare files by their parent
    folder, as training names them; a pair whose name holds no folder counts for none."""
    folders = {folder for folder in map(_first_folder, items) if folder is not None}
    if folders and all(_UPLOAD_HASH_FOLDER.match(folder) for folder in folders):
        raise DataError(
            "The upload lost its folder names (the browser sends only file names), so the classes are unknown. "
            "Upload a .zip of the folder instead."
        )


def _first_folder(item: Any) -> str | None:
    """The first folder of an upload item's name as training reads it: a (name, file) pair's name with
    backslashes as slashes and no leading slash (None when it holds no folder); a bare file's parent folder."""
    if isinstance(item, (tuple, list)):
        name = str(item[0]).replace("\\", "/").lstrip("/")
        return name.split("/")[0] if "/" in name else None
    return Path(item).parent.name


def check_source(zip_file, folder_files, folder_names, server_path):
    """The data check: summary, counts (table and chart), thumbnails, skipped files."""
    source = data_source(zip_file, folder_files, folder_names, server_path)
    work_dir = output_folder()
    try:
        with user_errors():
            report = check_data(source, work_dir)
        pictures = thumbnails(report)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # a check keeps no copy of the upload
    summary = report_summary(report) + "".join(f"\n\n⚠️ {warning}" for warning in report.warnings)
    chart = pd.DataFrame(
        [
            (name, split, count)
            for name, train, val in zip(report.classes, report.train_counts, report.val_counts)
            for split, count in (("train", train), ("val", val))
        ],
        columns=[widgets.CLASS_AXIS, widgets.SPLIT_KEY, widgets.IMAGES_AXIS],
    )
    return summary, count_rows(report), chart, pictures, skipped_rows(report)


# ---- training -----------------------------------------------------------------------------------------------


def start_run(
    zip_file,
    folder_files,
    folder_names,
    server_path,
    base,
    mode,
    epochs,
    learning_rate,
    batch_size,
    weight_decay,
    warmup_ratio,
    image_size,
    augment,
    seed,
    precision,
    run_name,
    visitor_id,
    request: gr.Request,
):
    """Start a run in the background and stream its progress and curves until it ends."""
    asking = _visitor(visitor_id, request)
    source = data_source(zip_file, folder_files, folder_names, server_path)
    with user_errors():
        config = form_config(
            source,
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
        )
        job = start_new_run(config, run_name, visitor=asking)
    yield from _stream(job, asking)


def start_collected_run(folder, base, seed, precision, run_name, visitor_id, request: gr.Request):
    """Train the head on the images collected in the Webcam tab (the head-only settings' own defaults), then
    stream the run as Start does."""
    asking = _visitor(visitor_id, request)
    if not folder:
        raise gr.Error("Nothing is collected yet: type a class name and take a picture first.")
    archive, batch_size = webcam_train.collection_zip(folder)
    head = widgets.MODE_DEFAULTS["head"]
    with user_errors():
        config = form_config(
            str(archive),
            base,
            mode="head",
            epochs=head["num_train_epochs"],
            learning_rate=head["learning_rate"],
            batch_size=batch_size,
            weight_decay=0.0,
            warmup_ratio=widgets.WARMUP.default,
            image_size=0,
            augment=False,
            seed=seed,
            precision=precision,
        )
        job = start_new_run(config, (run_name or "").strip() or widgets.WEBCAM_RUN_NAME, visitor=asking)
    yield from _stream(job, asking)


def resume_run(run_name, visitor_id, request: gr.Request):
    asking = _visitor(visitor_id, request)
    if not run_name:
        raise gr.Error(PICK_A_RUN_TO_RESUME)
    with user_errors():
        job = start_training(resume_config(find_run(run_name, asking, change=True)), visitor=asking)
    yield from _stream(job, asking)


def watch_current(visitor_id, request: gr.Request):
    asking = _visitor(visitor_id, request)
    job = current_job()
    if job is None:
        raise gr.Error("No training has been started since the app started; pick a saved run under Earlier runs.")
    if not may_see(job.output_dir, asking):
        raise gr.Error(
            f"The run training now is another visitor's, and {job.time_left()}. Pick one of your own "
            "runs under Earlier runs."
        )
    yield from _stream(job, asking)


def _stream(job, asking: Visitor):
    """The run's view twice a second, but only when something happened: a figure is redrawn in the same
    process as the training, and the class boxes must stay put while a user picks a cell."""
    state, shown_events, shown_classes = None, -1, None
    for state in watch(job, every_s=0.5):
        job.watched_by(asking)
        if state.running and len(state.events) == shown_events:
            continue
        shown_events = len(state.events)
        # A resumed run's chart starts from its earlier log, as its saved curves.png does.
        view = run_view(state.run_events, state.running, folder=job.output_dir)
        lists_changed = view.classes != shown_classes or not state.running
        shown_classes = view.classes
        yield (job.output_dir.name, *_view_outputs(view, asking, refresh_lists=lists_changed))
    if state is not None and state.error:
        raise gr.Error(state.error)


def stop_run(visitor_id, request: gr.Request):
    with user_errors():
        return stop_message(stop_current(visitor=_visitor(visitor_id, request)))


def show_saved_run(run_name, visitor_id, request: gr.Request):
    asking = _visitor(visitor_id, request)
    with user_errors():
        folder = find_run(run_name, asking)
    events = read_events(folder / EVENTS_LOG)
    return (folder.name, *_view_outputs(run_view(events, is_training(folder), folder=folder), asking))


def _view_outputs(view, asking: Visitor, refresh_lists: bool = True) -> tuple:
    """progress line, curves figure, per-class table, confusion image, class choices (x2), runs, "Start from"
    (which lists finished runs: a run that has just ended joins it)."""
    classes = list(view.classes)
    runs = visible_runs(asking) if refresh_lists else []
    lists = (
        (
            gr.update(choices=classes, value=classes[0] if classes else None),
            gr.update(choices=classes, value=classes[-1] if classes else None),
            gr.update(choices=_run_choices(runs)),
            gr.update(choices=start_from_choices(runs, hub_available=_HUB["available"])),
        )
        if refresh_lists
        else (gr.skip(), gr.skip(), gr.skip(), gr.skip())
    )
    return (view.progress, view.figure, view.per_class, _served_copy(view.confusion_png), *lists)


def _served_copy(picture: Path | None) -> str | None:
    """A copy of a run's picture in the app's output folder, for Gradio to serve. Gradio serves only the working
    and temp folders unless told, and it must not be told the runs folder: anyone could then fetch any run's
    files (its split, its training images) by path, past the checks on run names."""
    if picture is None:
        return None
    return str(shutil.copy(picture, output_folder() / picture.name))


# ---- after training -----------------------------------------------------------------------------------------


def _finished_run(run_name, visitor_id, request: gr.Request | None) -> Path:
    """The folder of a run this visitor may see, checked to hold a saved model."""
    with user_errors():
        return saved_model_dir(find_run(run_name, _visitor(visitor_id, request)))


def cell_overlays(
    run_name, true_class, predicted_class, visitor_id, request: gr.Request, progress=gr.Progress(track_tqdm=True)
):
    """The validation images of one confusion-matrix cell, each with the trained model's attention rollout."""
    folder = _finished_run(run_name, visitor_id, request)
    with user_errors():
        pictures = cell_pictures(folder, true_class, predicted_class)
    if not pictures:
        gr.Info(empty_cell(true_class, predicted_class))
    return pictures


def compare_attention(run_name, true_class, predicted_class, visitor_id, request: gr.Request):
    """The base model's and the trained model's rollout on the first image of the chosen cell."""
    folder = _finished_run(run_name, visitor_id, request)
    with user_errors():
        return compare_base(folder, true_class, predicted_class)


def zip_current(run_name, visitor_id, request: gr.Request):
    folder = _finished_run(run_name, visitor_id, request)
    try:
        return str(zip_run(folder, output_folder()))
    except OSError as error:  # the disk is full, or the run was removed meanwhile
        raise gr.Error(f"Could not zip the run {folder.name}: {error.strerror or error}.") from None


def export_current(run_name, visitor_id, request: gr.Request):
    """The run as one .onnx file to download, and the line saying how its answers compare with PyTorch's."""
    folder = _finished_run(run_name, visitor_id, request)
    with user_errors():
        exported = export_onnx(folder, output_folder() / f"{folder.name}.onnx")
    return str(exported.path), onnx_check_line(exported)


def predict_live(frame, run_name, visitor_id, request: gr.Request):
    """What the run on show says about one webcam frame; nothing until a run with a saved model is on show."""
    if frame is None or not run_name:
        return gr.skip()
    folder = _finished_run(run_name, visitor_id, request)
    with user_errors():
        predictions = classify(frame, model=str(folder.resolve()), top_k=3)
    return {prediction.label: prediction.score for prediction in predictions}


def push_current(run_name, repo_id, token, private, visitor_id, request: gr.Request):
    folder = _finished_run(run_name, visitor_id, request)
    with user_errors():
        url = push_to_hub(folder, repo_id, token, private=bool(private))
    return pushed(url)


def use_run(run_name, visitor_id, request: gr.Request):
    """The run's folder, for the model boxes."""
    folder = _finished_run(run_name, visitor_id, request)
    gr.Info(run_in_use(folder.name))
    return str(folder.resolve())
