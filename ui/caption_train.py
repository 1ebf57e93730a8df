"""The Train tab's captioner section: check image + caption pairs, train a captioner with live ROUGE, then read
its captions and compare where each word looked before and after training."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import gradio as gr
import pandas as pd

from core import DEFAULT_CAPTIONER, loads_offline
from training import (
    EVENTS_LOG,
    SCRATCH_CAPTIONER,
    TRAINING_PRECISIONS,
    CaptionPrediction,
    CaptionTrainConfig,
    RunSummary,
    Visitor,
    caption_predictions,
    current_job,
    example_caption_zip,
    find_run,
    is_training,
    may_see,
    read_events,
    resume_config,
    start_new_run,
    start_training,
    stop_current,
    visible_runs,
    watch,
    word_maps_before_after,
)
from ui.gradio_common import output_folder, user_errors
from ui.shared import train_widgets as widgets
from ui.shared.caption_training import (
    AFTER_LABEL,
    BEFORE_LABEL,
    CAPTION_BATCH_SIZE,
    CAPTION_COLUMN_LABEL,
    CAPTION_COUNTS_LABEL,
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
    NO_CAPTION_DATA,
    NOT_A_VALIDATION_IMAGE,
    PREDICTION_HEADERS,
    PREDICTIONS_LABEL,
    TOKEN_HISTOGRAM_LABEL,
    USE_CAPTIONER_BUTTON,
    WORD_MAPS_BUTTON,
    WORD_MAPS_IMAGE_LABEL,
    WORD_MAPS_LABEL,
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
from ui.shared.models import model_box_choices
from ui.shared.texts import PICK_A_RUN_TO_RESUME
from ui.shared.training import run_label, run_view, saved_model_dir, stop_message
from ui.shared.widgets import CAPTIONER_CHOICES
from ui.train_tab import (
    _HUB,
    STARTS,
    WATCHERS,
    _runs_label,
    _shown,
    _visitor,
    push_current,
    zip_current,
)

CAPTION_TAB_ID = "caption"  # gradio_app's id of the Caption tab, which "Use this model" switches to


@dataclass(frozen=True)
class CaptionSection:
    """What the Train tab needs of the captioner section: the box the task radio shows, and its run lists (redrawn
    when a page loads)."""

    box: gr.Column
    runs: gr.Dropdown
    base: gr.Dropdown


def caption_section(
    visitor_id: gr.State,
    caption_model: gr.Dropdown | None,
    tabs: gr.Tabs | None,
    *,
    allow_server_paths: bool,
    runs_now: Sequence[RunSummary],
) -> CaptionSection:
    """The captioner's four sections, hidden until "What to train" picks it. "Use this model" fills
    `caption_model` (the Caption tab's box) and switches `tabs` to the Caption tab."""
    with gr.Column(visible=False, elem_id="ctrain") as box:
        gr.Markdown(CAPTION_TRAIN_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown(f"### {widgets.DATA_SECTION}")
                zip_file = gr.File(file_types=[".zip"], label=CAPTION_ZIP_LABEL, elem_id="ctrain-zip")
                example = gr.Button(CAPTION_EXAMPLE_BUTTON, size="sm", elem_id="ctrain-example")
                if allow_server_paths:
                    server_path = gr.Textbox(
                        label=CAPTION_FILE_LABEL, placeholder="/data/captions.csv", elem_id="ctrain-path"
                    )
                else:
                    server_path = gr.State("")  # never a path from a visitor: the app may be public
                with gr.Accordion("Columns", open=False):
                    gr.Markdown(CAPTION_DATA_HELP)
                    with gr.Row():
                        image_column = gr.Textbox(label=IMAGE_COLUMN_LABEL, min_width=160)
                        caption_column = gr.Textbox(label=CAPTION_COLUMN_LABEL, min_width=160)
                check = gr.Button(widgets.CHECK_BUTTON, elem_id="ctrain-check")
                data_summary = gr.Markdown(elem_id="ctrain-data-summary")
                with gr.Column(visible=False, elem_id="ctrain-report") as report_box:
                    counts = gr.Dataframe(
                        headers=list(CAPTION_REPORT_HEADERS),
                        interactive=False,
                        label=CAPTION_COUNTS_LABEL,
                        elem_id="ctrain-counts",
                    )
                    histogram = gr.Plot(label=TOKEN_HISTOGRAM_LABEL, elem_id="ctrain-histogram")
                    length_note = gr.Markdown(elem_id="ctrain-length-note")
                    thumbnails = gr.Gallery(label=CAPTION_THUMBNAILS_LABEL, columns=3, elem_id="ctrain-thumbnails")
                    skipped = gr.Dataframe(
                        headers=list(widgets.SKIPPED_HEADERS),
                        interactive=False,
                        label=widgets.SKIPPED_LABEL,
                        wrap=True,
                        elem_id="ctrain-skipped",
                    )
            with gr.Column(scale=3, min_width=320):
                gr.Markdown(f"### {widgets.SETTINGS_SECTION}")
                base = gr.Dropdown(
                    captioner_start_choices(runs_now),
                    value=SCRATCH_CAPTIONER,
                    allow_custom_value=True,
                    label=CAPTIONER_BASE_LABEL,
                    info=CAPTIONER_BASE_INFO,
                    elem_id="ctrain-base",
                )
                with gr.Row():
                    encoder = gr.Textbox(
                        label=ENCODER_LABEL, placeholder=ENCODER_PLACEHOLDER, min_width=200, elem_id="ctrain-encoder"
                    )
                    decoder = gr.Textbox(
                        label=DECODER_LABEL, placeholder=DECODER_PLACEHOLDER, min_width=200, elem_id="ctrain-decoder"
                    )
                mode = gr.Radio(
                    [tuple(choice) for choice in CAPTION_MODE_CHOICES],
                    value=CAPTION_MODE_CHOICES[0][1],
                    label=CAPTION_MODE_LABEL,
                    elem_id="ctrain-mode",
                )
                with gr.Row():
                    epochs = gr.Number(
                        CAPTION_EPOCHS.default,
                        precision=0,
                        minimum=CAPTION_EPOCHS.minimum,
                        label=widgets.EPOCHS_LABEL,
                        min_width=120,
                        elem_id="ctrain-epochs",
                    )
                    learning_rate = gr.Number(
                        CAPTION_LEARNING_RATE.default,
                        label=widgets.LEARNING_RATE_LABEL,
                        min_width=120,
                        elem_id="ctrain-lr",
                    )
                    batch_size = gr.Number(
                        CAPTION_BATCH_SIZE.default,
                        precision=0,
                        minimum=CAPTION_BATCH_SIZE.minimum,
                        label=widgets.BATCH_SIZE_LABEL,
                        min_width=120,
                        elem_id="ctrain-batch",
                    )
                with gr.Accordion(widgets.MORE_SETTINGS, open=False, elem_id="ctrain-more-settings"):
                    with gr.Row():
                        warmup_ratio = gr.Slider(
                            CAPTION_WARMUP.minimum,
                            CAPTION_WARMUP.maximum,
                            value=CAPTION_WARMUP.default,
                            step=CAPTION_WARMUP.step,
                            label=widgets.WARMUP_LABEL,
                            min_width=160,
                        )
                        weight_decay = gr.Number(
                            CAPTION_WEIGHT_DECAY.default,
                            minimum=CAPTION_WEIGHT_DECAY.minimum,
                            label=widgets.WEIGHT_DECAY_LABEL,
                            min_width=160,
                        )
                        max_target_length = gr.Number(
                            MAX_TARGET_LENGTH.default,
                            precision=0,
                            minimum=MAX_TARGET_LENGTH.minimum,
                            maximum=MAX_TARGET_LENGTH.maximum,
                            label=MAX_TARGET_LENGTH_LABEL,
                            min_width=160,
                        )
                    with gr.Row():
                        label_smoothing = gr.Slider(
                            LABEL_SMOOTHING.minimum,
                            LABEL_SMOOTHING.maximum,
                            value=LABEL_SMOOTHING.default,
                            step=LABEL_SMOOTHING.step,
                            label=LABEL_SMOOTHING_LABEL,
                            min_width=160,
                        )
                        num_beams = gr.Number(
                            EVAL_BEAMS.default,
                            precision=0,
                            minimum=EVAL_BEAMS.minimum,
                            maximum=EVAL_BEAMS.maximum,
                            label=EVAL_BEAMS_LABEL,
                            min_width=160,
                        )
                        max_new_tokens = gr.Number(
                            EVAL_MAX_NEW_TOKENS.default,
                            precision=0,
                            minimum=EVAL_MAX_NEW_TOKENS.minimum,
                            maximum=EVAL_MAX_NEW_TOKENS.maximum,
                            label=EVAL_MAX_NEW_TOKENS_LABEL,
                            min_width=160,
                        )
                    with gr.Row():
                        seed = gr.Number(CaptionTrainConfig.seed, precision=0, label=widgets.SEED_LABEL, min_width=120)
                        precision = gr.Radio(
                            list(TRAINING_PRECISIONS), value=widgets.DEFAULT_PRECISION, label=widgets.PRECISION_LABEL
                        )
                run_name = gr.Textbox(
                    label=widgets.RUN_NAME_LABEL, placeholder=widgets.RUN_NAME_PLACEHOLDER, elem_id="ctrain-run-name"
                )
                with gr.Row():
                    start = gr.Button(widgets.START_BUTTON, variant="primary", elem_id="ctrain-start")
                    stop = gr.Button(widgets.STOP_BUTTON, variant="stop", elem_id="ctrain-stop")
                    watch_button = gr.Button("Watch the current run", elem_id="ctrain-watch")
        with gr.Column(visible=False, elem_id="ctrain-run-section") as run_box:
            gr.Markdown(f"### {widgets.TRAINING_SECTION}")
            with gr.Row():
                progress_line = gr.Markdown(elem_id="ctrain-progress")
                run_dir = gr.Textbox(label=widgets.RUN_LABEL, interactive=False, elem_id="ctrain-run-dir", scale=1)
            curves_plot = gr.Plot(label="Loss and validation ROUGE", elem_id="ctrain-curves")
            scores = gr.Markdown(elem_id="ctrain-scores")
            examples = gr.Dataframe(
                headers=list(EXAMPLE_HEADERS),
                interactive=False,
                wrap=True,
                label=EXAMPLES_LABEL,
                elem_id="ctrain-examples",
            )
        with gr.Column(visible=False, elem_id="ctrain-results-section") as results_box:
            gr.Markdown(f"### {widgets.RESULTS_SECTION}")
            predictions = gr.Dataframe(
                headers=list(PREDICTION_HEADERS),
                interactive=False,
                wrap=True,
                max_height=420,
                column_widths=["16%", "34%", "34%", "16%"],
                label=PREDICTIONS_LABEL,
                elem_id="ctrain-predictions",
            )
            gr.Markdown(f"#### {WORD_MAPS_LABEL}")
            with gr.Row(equal_height=True):
                # Any value is let through to the handler, which takes only the run's own validation images.
                word_image = gr.Dropdown(
                    [], allow_custom_value=True, label=WORD_MAPS_IMAGE_LABEL, scale=3, elem_id="ctrain-word-image"
                )
                show_maps = gr.Button(WORD_MAPS_BUTTON, scale=1, elem_id="ctrain-word-maps")
            maps_line = gr.Markdown(elem_id="ctrain-maps-line")
            with gr.Row(equal_height=False, visible=False) as maps_row:
                before = gr.Gallery(label=BEFORE_LABEL, columns=4, elem_id="ctrain-before")
                after = gr.Gallery(label=AFTER_LABEL, columns=4, elem_id="ctrain-after")
            with gr.Row():
                use_model = gr.Button(USE_CAPTIONER_BUTTON, variant="primary", elem_id="ctrain-use")
                make_zip = gr.Button("Zip the run")
                run_zip = gr.File(label="The run (.zip)", visible=False, elem_id="ctrain-run-zip")
            with gr.Accordion(widgets.PUSH_SECTION, open=False):
                with gr.Row():
                    repo_id = gr.Textbox(label=widgets.REPO_LABEL, placeholder=widgets.REPO_PLACEHOLDER)
                    token = gr.Textbox(label=widgets.TOKEN_LABEL, type="password", info=widgets.TOKEN_INFO)
                    private = gr.Checkbox(True, label=widgets.PRIVATE_LABEL)
                push = gr.Button(widgets.PUSH_BUTTON)
                pushed = gr.Markdown()
        gr.Markdown(f"### {widgets.EARLIER_RUNS_SECTION}")
        with gr.Row():
            runs = gr.Dropdown(
                caption_run_choices(runs_now), label=_runs_label(), scale=3, min_width=240, elem_id="ctrain-runs"
            )
            refresh = gr.Button("Refresh", scale=1)
            show_run = gr.Button(widgets.SHOW_RUN_BUTTON, scale=1, elem_id="ctrain-show-run")
            resume = gr.Button(widgets.RESUME_BUTTON, scale=1, elem_id="ctrain-resume")

    source = [zip_file, server_path, image_column, caption_column]
    live_outputs = [progress_line, curves_plot, scores, examples, predictions, word_image, runs, base]
    example.click(example_zip, outputs=[zip_file], api_name="caption_example")
    check.click(
        check_captions,
        inputs=[*source, base, encoder, decoder, max_target_length],
        outputs=[data_summary, counts, histogram, length_note, thumbnails, skipped],
        api_name="check_captions",
    ).success(lambda: gr.Column(visible=True), outputs=[report_box], api_visibility="private", queue=False)
    settings = [
        base,
        encoder,
        decoder,
        mode,
        epochs,
        learning_rate,
        batch_size,
        warmup_ratio,
        weight_decay,
        max_target_length,
        label_smoothing,
        num_beams,
        max_new_tokens,
        seed,
        precision,
        run_name,
    ]
    start.click(
        start_caption_run,
        inputs=[*source, *settings, visitor_id],
        outputs=[run_dir, *live_outputs],
        api_name="train_captioner",
        **STARTS,
    )
    stop.click(stop_caption_run, inputs=[visitor_id], outputs=[progress_line], api_name="stop_captioner")
    watch_button.click(
        watch_caption_run,
        inputs=[visitor_id],
        outputs=[run_dir, *live_outputs],
        api_name="watch_captioner",
        **WATCHERS,
    )
    run_dir.change(
        lambda name: gr.Column(visible=bool(name)),
        inputs=[run_dir],
        outputs=[run_box],
        api_visibility="private",
        queue=False,
    )
    # "What it learnt" shows once the run on show has validation captions (the image picker is filled from them).
    word_image.change(
        lambda picked: gr.Column(visible=bool(picked)),
        inputs=[word_image],
        outputs=[results_box],
        api_visibility="private",
        queue=False,
    )
    # Maps belong to the image and run that made them: a new pick clears (and hides) them.
    word_image.change(
        lambda: ([], [], "", gr.Row(visible=False)),
        outputs=[before, after, maps_line, maps_row],
        api_visibility="private",
        queue=False,
    )
    show_maps.click(
        show_word_maps,
        inputs=[run_dir, word_image, visitor_id],
        outputs=[before, after, maps_line],
        api_name="caption_word_maps",
    ).success(_shown, outputs=[maps_row], api_visibility="private", queue=False)
    make_zip.click(zip_current, inputs=[run_dir, visitor_id], outputs=[run_zip], api_name="zip_captioner").success(
        _shown, outputs=[run_zip], api_visibility="private", queue=False
    )
    push.click(
        push_current,
        inputs=[run_dir, repo_id, token, private, visitor_id],
        outputs=[pushed],
        api_name="push_captioner",
    )
    refresh.click(refresh_caption_lists, inputs=[visitor_id], outputs=[runs, base], api_visibility="undocumented")
    show_run.click(
        show_caption_run, inputs=[runs, visitor_id], outputs=[run_dir, *live_outputs], api_name="show_caption_run"
    )
    resume.click(
        resume_caption_run,
        inputs=[runs, visitor_id],
        outputs=[run_dir, *live_outputs],
        api_name="resume_captioner",
        **STARTS,
    )
    if caption_model is not None:
        use_outputs = [caption_model, *([tabs] if tabs is not None else [])]

        def use_in_caption_tab(run_name, visitor_id, request: gr.Request):
            box, tab = use_captioner(run_name, visitor_id, request)
            return (box, tab) if tabs is not None else box

        use_model.click(use_in_caption_tab, inputs=[run_dir, visitor_id], outputs=use_outputs, api_name="use_captioner")
    return CaptionSection(box, runs, base)


def caption_run_choices(runs: Sequence[RunSummary]) -> list[tuple[str, str]]:
    """The captioner runs of a list, as (label, name) pairs for the captioner's Earlier runs."""
    return [(run_label(summary), summary.name) for summary in caption_runs(runs)]


def refresh_caption_lists(visitor_id: str | None, request: gr.Request):
    """The captioner's Earlier runs and Start from, with the runs this visitor may see now."""
    runs = visible_runs(_visitor(visitor_id, request))
    return gr.update(choices=caption_run_choices(runs)), gr.update(choices=captioner_start_choices(runs))


# ---- data -------------------------------------------------------------------------------------------------


def example_zip() -> str:
    """A copy of the generated example set for the zip box (a copy: Gradio serves only its own folders)."""
    example = example_caption_zip()
    return str(shutil.copy(example, output_folder() / example.name))


def caption_source(zip_file: str | None, server_path: str | None) -> str:
    """The zip the user gave, else the path on this machine (only offered when the app allows it)."""
    if zip_file:
        return str(zip_file)
    if (server_path or "").strip():
        return server_path.strip()
    raise gr.Error(NO_CAPTION_DATA)


def check_captions(
    zip_file, server_path, image_column, caption_column, base, encoder, decoder, max_target_length
) -> tuple:
    """The data check: summary, counts, the caption-length histogram and its note, thumbnails, skipped rows."""
    source = caption_source(zip_file, server_path)
    work_dir = output_folder()
    try:
        with user_errors():
            view = check_captioned_data(
                source,
                work_dir=work_dir,
                image_column=image_column,
                caption_column=caption_column,
                base=base,
                encoder=encoder,
                decoder=decoder,
                max_target_length=max_target_length,
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # a check keeps no copy of the upload
    return (
        view.summary,
        pd.DataFrame(view.rows, columns=list(CAPTION_REPORT_HEADERS)),
        view.histogram,
        view.length_note,
        view.thumbnails,
        pd.DataFrame(view.skipped, columns=list(widgets.SKIPPED_HEADERS)),
    )


# ---- training -----------------------------------------------------------------------------------------------


def start_caption_run(
    zip_file,
    server_path,
    image_column,
    caption_column,
    base,
    encoder,
    decoder,
    mode,
    epochs,
    learning_rate,
    batch_size,
    warmup_ratio,
    weight_decay,
    max_target_length,
    label_smoothing,
    num_beams,
    max_new_tokens,
    seed,
    precision,
    run_name,
    visitor_id,
    request: gr.Request,
):
    """Start a captioner run in the background and stream its progress, curves and captions until it ends."""
    asking = _visitor(visitor_id, request)
    source = caption_source(zip_file, server_path)
    with user_errors():
        config = caption_form_config(
            source,
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
            image_column=image_column,
            caption_column=caption_column,
            seed=seed,
            precision=precision,
        )
        job = start_new_run(config, run_name, visitor=asking)
    yield from _stream(job, asking)


def resume_caption_run(run_name, visitor_id, request: gr.Request):
    asking = _visitor(visitor_id, request)
    if not run_name:
        raise gr.Error(PICK_A_RUN_TO_RESUME)
    with user_errors():
        config = resume_config(find_run(run_name, asking, change=True))
        if not isinstance(config, CaptionTrainConfig):
            raise ValueError(f"The run '{run_name}' is a classifier: resume it with Classifier chosen above.")
        job = start_training(config, visitor=asking)
    yield from _stream(job, asking)


def watch_caption_run(visitor_id, request: gr.Request):
    asking = _visitor(visitor_id, request)
    job = current_job()
    if job is None or not isinstance(job.config, CaptionTrainConfig):
        raise gr.Error("No captioner is training; pick a saved run under Earlier runs.")
    if not may_see(job.output_dir, asking):
        raise gr.Error(f"The run training now is another visitor's, and {job.time_left()}.")
    yield from _stream(job, asking)


def stop_caption_run(visitor_id, request: gr.Request):
    with user_errors():
        return stop_message(stop_current(visitor=_visitor(visitor_id, request)))


def _stream(job, asking: Visitor):
    """The run's view twice a second, only when something happened; the lists and results are redrawn at the start
    (emptied) and at the end (the finished run's captions)."""
    state, shown_events, first = None, -1, True
    for state in watch(job, every_s=0.5):
        job.watched_by(asking)
        if state.running and len(state.events) == shown_events:
            continue
        shown_events = len(state.events)
        redraw = first or not state.running
        first = False
        yield (
            job.output_dir.name,
            *_view_outputs(state.run_events, state.running, job.output_dir, asking, redraw=redraw),
        )
    if state is not None and state.error:
        raise gr.Error(state.error)


def show_caption_run(run_name, visitor_id, request: gr.Request):
    """An earlier run as it ended (or as far as it got), with its validation captions when it finished."""
    asking = _visitor(visitor_id, request)
    with user_errors():
        folder = find_run(run_name, asking)
    events = read_events(folder / EVENTS_LOG)
    return (folder.name, *_view_outputs(events, is_training(folder), folder, asking))


def _view_outputs(events, running: bool, folder: Path, asking: Visitor, redraw: bool = True) -> tuple:
    """progress line, curves, scores line, latest examples, predictions table, the word-map image picker, the
    runs list and Start from (a run that has just ended joins both)."""
    view = run_view(events, running, folder=folder)
    examples = pd.DataFrame(latest_examples(events), columns=list(EXAMPLE_HEADERS))
    if not redraw:
        return (view.progress, view.figure, scores_line(events), examples, *(gr.skip(),) * 4)
    found = () if running else _predictions_of(folder)
    choices = prediction_choices(found)
    runs = visible_runs(asking)
    return (
        view.progress,
        view.figure,
        scores_line(events),
        examples,
        pd.DataFrame(prediction_rows(found), columns=list(PREDICTION_HEADERS)),
        gr.update(choices=choices, value=choices[0][1] if choices else None),
        gr.update(choices=caption_run_choices(runs)),
        gr.update(choices=captioner_start_choices(runs)),
    )


def _predictions_of(folder: Path) -> tuple[CaptionPrediction, ...]:
    """A run's validation captions; none when it has not finished (or is not a captioner)."""
    try:
        return caption_predictions(folder)
    except ValueError:
        return ()


# ---- after training -----------------------------------------------------------------------------------------


def _captioner_run(run_name, visitor_id, request: gr.Request | None) -> tuple[Path, tuple[CaptionPrediction, ...]]:
    """A finished captioner run this visitor may see, and its validation captions."""
    with user_errors():
        folder = saved_model_dir(find_run(run_name, _visitor(visitor_id, request)))
        return folder, caption_predictions(folder)


def show_word_maps(run_name, image, visitor_id, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
    """Where each word of the trained model's caption looked, in the model before training and after."""
    folder, found = _captioner_run(run_name, visitor_id, request)
    # Only the run's own validation images: a path typed into the API must not open any file on this machine.
    generated = {str(prediction.image): prediction.generated for prediction in found}
    if image not in generated:
        raise gr.Error(NOT_A_VALIDATION_IMAGE)
    with user_errors():
        # The caption the table shows (written with the run's own decoding), so the maps explain that caption.
        compared = word_maps_before_after(folder, image, text=generated[image] or None)
    before, after = word_map_pairs(compared)
    return before, after, word_maps_line(compared)


def use_captioner(run_name, visitor_id, request: gr.Request):
    """The Caption tab's model box on the run (its list redrawn with this visitor's captioners), and the Caption
    tab chosen."""
    folder, _ = _captioner_run(run_name, visitor_id, request)
    runs = visible_runs(_visitor(visitor_id, request))
    box = model_box_choices(
        DEFAULT_CAPTIONER,
        CAPTIONER_CHOICES,
        runs,
        hub_up=_HUB["available"],
        loads_offline=loads_offline,
        task="caption",
    )
    gr.Info(caption_run_in_use(folder.name))
    return gr.update(choices=list(box.choices), value=str(folder.resolve())), gr.Tabs(selected=CAPTION_TAB_ID)
