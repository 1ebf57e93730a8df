"""The Gradio front end: build_demo() arranges the tabs; every computation is a call into core/."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from core import (
    DEFAULT_CAPTIONER,
    DEFAULT_CLASSIFIER,
    RunInfo,
    classify,
    classify_files,
    example_images,
    hub_available,
    loads_offline,
)
from training import session_visitor, visible_runs, visitor
from ui.attention_tab import attention_tab
from ui.caption_tab import caption_tab
from ui.components import ImagePath
from ui.gradio_common import (
    load_progress,
    output_folder,
    require_image,
    slider,
    teacher_note,
    user_errors,
    write_cache_images_atomically,
)
from ui.inside_tab import inside_tab
from ui.shared.batch import CSV_COLUMNS, DONE_CLASSIFIED, PREDICTIONS_CSV, batch_summary, results_table, write_csv
from ui.shared.inside import INSIDE_TITLE
from ui.shared.models import model_box_choices
from ui.shared.notes import (
    NOTES_TOGGLE_LABEL,
    PRESENTATION_TOGGLE_LABEL,
)
from ui.shared.status import last_run_line
from ui.shared.texts import (
    APP_TAGLINE,
    APP_TITLE,
    ATTENTION_TITLE,
    CAPTION_TITLE,
    CLASSIFY_ALL_BUTTON,
    CLASSIFY_BUTTON,
    CLASSIFY_INTRO,
    CLASSIFY_TITLE,
    FILES_LABEL,
    MANY_IMAGES_TAB,
    MODEL_INFO,
    MODEL_LABEL,
    NO_FILES,
    OFFLINE_BANNER,
    ONE_IMAGE_TAB,
    TOP_LABELS_TITLE,
    TRAIN_TITLE,
    ZERO_SHOT_TITLE,
)
from ui.shared.walkthrough import WALKTHROUGH_TITLE
from ui.shared.widgets import CAPTIONER_CHOICES, CLASSIFIER_CHOICES, EXPLAINER_CHOICES, TOP_K
from ui.train_tab import FOLDER_NAMES_JS, connect_visitor, train_tab, visitor_boxes
from ui.walkthrough_tab import walkthrough_tab
from ui.zero_shot_tab import zero_shot_tab

CSS = """
#status {min-height: 1.5em; opacity: 0.8}
.hidden-box {display: none !important}
.teacher-note {border-left: 3px solid var(--color-accent); padding-left: 0.6em; opacity: 0.9}
body.hide-notes .teacher-note {display: none !important}
/* Zoom, not font sizes: every label, slider and plot grows together, and the layout stays the one the class saw. */
body.presenting .gradio-container {zoom: 1.35}
#page-toggles {justify-content: flex-end; flex-wrap: wrap; gap: 0.5em 2em}
/* A captioned thumbnail's caption is what it is there for: wrapped, not cut to "three blue square...". */
#ctrain-thumbnails .caption-label {white-space: normal; max-width: 96%; line-height: 1.25}
/* Galleries of a few tiles take the height of their tiles, not Gradio's 450 px minimum. */
#ctrain-thumbnails .fixed-height, #ctrain-before .fixed-height, #ctrain-after .fixed-height {
  min-height: 0; max-height: none
}
/* The token-merging strip: small tiles, as many a row as fit, not two layers a screen wide each. */
#merging-strip .grid-container {grid-template-columns: repeat(auto-fill, minmax(110px, 170px)) !important}
#merging-strip .fixed-height {min-height: 0; max-height: none}
"""
# The notes and presentation toggles only restyle the page: a class on <body>, set in the browser, no server trip.
TOGGLE_NOTES_JS = "(shown) => { document.body.classList.toggle('hide-notes', !shown); return shown; }"
TOGGLE_PRESENTING_JS = "(on) => { document.body.classList.toggle('presenting', on); return on; }"
JS = FOLDER_NAMES_JS


def build_demo(
    default_model: str = DEFAULT_CLASSIFIER,
    model_choices: tuple[str, ...] = CLASSIFIER_CHOICES,
    allow_server_paths: bool = False,
    delete_cache: tuple[int, int] | None = None,
) -> gr.Blocks:
    """The whole app; launch it with demo.launch(css=CSS, js=JS) or mount it in FastAPI.
    `allow_server_paths` lets the Train tab read a folder on the machine the app runs on (local use only);
    `delete_cache` is gr.Blocks' (every so many seconds, remove visitors' files older than so many)."""
    hub_up = hub_available()
    runs = visible_runs(visitor(None))
    classify_choices = model_box_choices(default_model, model_choices, runs, hub_up=hub_up, loads_offline=loads_offline)
    attention_choices = model_box_choices(
        default_model, EXPLAINER_CHOICES, runs, hub_up=hub_up, loads_offline=loads_offline
    )
    caption_choices = model_box_choices(
        DEFAULT_CAPTIONER, CAPTIONER_CHOICES, runs, hub_up=hub_up, loads_offline=loads_offline, task="caption"
    )
    write_cache_images_atomically()
    with gr.Blocks(title=APP_TITLE, delete_cache=delete_cache) as demo:
        gr.Markdown(f"# {APP_TITLE}\n{APP_TAGLINE}")
        gr.Markdown(OFFLINE_BANNER, visible=not hub_up, elem_id="offline-banner")
        with gr.Row(elem_id="page-toggles"):
            notes = gr.Checkbox(value=True, label=NOTES_TOGGLE_LABEL, scale=0, min_width=280, elem_id="notes-toggle")
            presenting = gr.Checkbox(
                value=False,
                label=PRESENTATION_TOGGLE_LABEL,
                scale=0,
                min_width=280,
                elem_id="presentation-toggle",
            )
        notes.change(None, inputs=[notes], js=TOGGLE_NOTES_JS, api_visibility="private")
        presenting.change(None, inputs=[presenting], js=TOGGLE_PRESENTING_JS, api_visibility="private")
        visitor_id, browser_id = visitor_boxes()
        # On a phone every tab shows, in two rows, instead of all but two hiding behind a "…" menu.
        with gr.Tabs(overflow_behavior="wrap") as tabs:
            with gr.Tab(CLASSIFY_TITLE, id="classify"):
                classify_model = classify_tab(classify_choices.start, list(classify_choices.choices))
            with gr.Tab(ATTENTION_TITLE, id="attention"):
                attention_model = attention_tab(attention_choices.start, list(attention_choices.choices))
            with gr.Tab(WALKTHROUGH_TITLE, id="step-by-step"):
                walkthrough_model = walkthrough_tab(attention_choices.start, list(attention_choices.choices))
            with gr.Tab(INSIDE_TITLE, id="inside"):
                inside_tab(classify_choices.start, list(classify_choices.choices))
            with gr.Tab(CAPTION_TITLE, id="caption"):
                caption_model = caption_tab(caption_choices.start, list(caption_choices.choices))
            with gr.Tab(ZERO_SHOT_TITLE, id="zero-shot"):
                zero_shot_tab()
            with gr.Tab(TRAIN_TITLE, id="train"):
                run_lists = train_tab(
                    (classify_model, attention_model, walkthrough_model),
                    visitor_id,
                    allow_server_paths=allow_server_paths,
                    caption_model=caption_model,
                    tabs=tabs,
                )
        connect_visitor(demo, visitor_id, browser_id, run_lists)
        # Runs finished since the app started join the model boxes when a page loads (once its visitor is known).
        boxes = {
            classify_model: BoxSpec(default_model, model_choices),
            attention_model: BoxSpec(default_model, EXPLAINER_CHOICES),
            walkthrough_model: BoxSpec(default_model, EXPLAINER_CHOICES),
            caption_model: BoxSpec(DEFAULT_CAPTIONER, CAPTIONER_CHOICES, task="caption"),
        }

        def refresh_model_boxes(
            visitor_id: str | None,
            classify_value: str,
            attention_value: str,
            walkthrough_value: str,
            caption_value: str,
            request: gr.Request,
        ):
            values = (classify_value, attention_value, walkthrough_value, caption_value)
            return refreshed_model_boxes(visitor_id, request, hub_up, list(boxes.values()), values)

        visitor_id.change(
            refresh_model_boxes, inputs=[visitor_id, *boxes], outputs=list(boxes), api_visibility="private", queue=False
        )
    return demo


@dataclass(frozen=True)
class BoxSpec:
    """What one model box lists: its default, its suggestions, and which runs fit it ("classify" or "caption")."""

    default: str
    suggestions: tuple[str, ...]
    task: str = "classify"


def refreshed_model_boxes(
    visitor_id: str | None,
    request: gr.Request,
    hub_up: bool,
    specs: list[BoxSpec],
    values: tuple[str, ...],
) -> list:
    """Each model box's choices again, with the runs this visitor may see now; offline, a box still on a model that
    needs the Hub moves to the newest run."""
    runs = visible_runs(session_visitor(visitor_id, request.session_hash if request else None))
    updates = []
    for spec, value in zip(specs, values):
        fresh = model_box_choices(
            spec.default, spec.suggestions, runs, hub_up=hub_up, loads_offline=loads_offline, task=spec.task
        )
        keep = hub_up or loads_offline(value or "")
        updates.append(gr.update(choices=list(fresh.choices), value=value if keep else fresh.start))
    return updates


def classify_tab(default_model: str, choices: list[tuple[str, str]]) -> gr.Dropdown:
    gr.Markdown(CLASSIFY_INTRO)
    with gr.Row():
        model = gr.Dropdown(
            choices,
            value=default_model,
            allow_custom_value=True,
            label=MODEL_LABEL,
            info=MODEL_INFO,
            scale=3,
            min_width=300,
            elem_id="classify-model",
        )
        top_k = slider(TOP_K, scale=1, min_width=200)
    with gr.Tabs():
        with gr.Tab(ONE_IMAGE_TAB):
            with gr.Row(equal_height=False):
                with gr.Column():
                    image = ImagePath(
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard", "webcam"],
                        label="Photo (upload, paste or webcam)",
                        height=360,
                        elem_id="photo",
                    )
                    run = gr.Button(CLASSIFY_BUTTON, variant="primary")
                    gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
                with gr.Column():
                    labels = gr.Label(label=TOP_LABELS_TITLE, show_heading=True, elem_id="top-labels")
                    status = gr.Markdown(elem_id="status", label="run")
                    teacher_note("classify-labels")
            run.click(classify_one, inputs=[image, model, top_k], outputs=[labels, status], api_name="classify")
            # Labels and a status line belong to the model and photo that made them: a new one clears them.
            gr.on(
                [model.change, image.change],
                lambda: (None, ""),
                outputs=[labels, status],
                api_visibility="undocumented",
                queue=False,
            )
        with gr.Tab(MANY_IMAGES_TAB):
            files = gr.File(
                file_count="multiple", file_types=["image", ".zip"], label=FILES_LABEL, elem_id="batch-files"
            )
            run_batch = gr.Button(CLASSIFY_ALL_BUTTON, variant="primary")
            summary = gr.Markdown(label="summary")
            table = gr.Dataframe(
                headers=list(CSV_COLUMNS),
                label="Results",
                wrap=True,
                interactive=False,
                column_widths=["22%", "12%", "8%", "33%", "25%"],
            )
            csv_file = gr.File(label="Download CSV")
            run_batch.click(
                classify_many,
                inputs=[files, model, top_k],
                outputs=[table, csv_file, summary],
                api_name="classify_batch",
            )
            gr.on(
                [model.change, files.change],
                lambda: (None, None, ""),
                outputs=[table, csv_file, summary],
                api_visibility="undocumented",
                queue=False,
            )
    return model


def classify_one(image_path: str | None, model: str, top_k: float, progress=gr.Progress(track_tqdm=True)):
    """Top labels as {label: score} for gr.Label, plus a line saying what ran."""
    require_image(image_path)
    runs: list[RunInfo] = []
    with user_errors():
        predictions = classify(
            image_path, model=model, top_k=int(top_k), on_load=load_progress(progress), on_run=runs.append
        )
    return {p.label: p.score for p in predictions}, last_run_line(runs)


def classify_many(paths: list[str] | None, model: str, top_k: float, progress=gr.Progress(track_tqdm=True)):
    """A results table, a CSV file to download and a one-line summary."""
    if not paths:
        raise gr.Error(NO_FILES)
    with user_errors():
        results = classify_files(paths, model=model, top_k=int(top_k), on_load=load_progress(progress))
    csv_path = write_csv(results, output_folder() / PREDICTIONS_CSV)
    return results_table(results), str(csv_path), batch_summary(results, DONE_CLASSIFIED)
