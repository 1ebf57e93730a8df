"""The Gradio front end: build_demo() arranges the tabs; every computation is a call into core/."""

from __future__ import annotations

import gradio as gr

from core import (
    DEFAULT_CLASSIFIER,
    RunInfo,
    classify,
    classify_files,
    example_images,
)
from ui.attention_tab import attention_tab
from ui.caption_tab import caption_tab
from ui.components import ImagePath
from ui.gradio_common import (
    load_progress,
    output_folder,
    require_image,
    slider,
    user_errors,
    write_cache_images_atomically,
)
from ui.shared.batch import CSV_COLUMNS, DONE_CLASSIFIED, PREDICTIONS_CSV, batch_summary, results_table, write_csv
from ui.shared.status import last_run_line
from ui.shared.texts import (
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
    ONE_IMAGE_TAB,
    TOP_LABELS_TITLE,
    TRAIN_TITLE,
    ZERO_SHOT_TITLE,
)
from ui.shared.widgets import CLASSIFIER_CHOICES, EXPLAINER_CHOICES, TOP_K
from ui.train_tab import FOLDER_NAMES_JS, connect_visitor, train_tab, visitor_boxes
from ui.zero_shot_tab import zero_shot_tab

CSS = """
#status {min-height: 1.5em; opacity: 0.8}
.hidden-box {display: none !important}
"""
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
    choices = list(dict.fromkeys([default_model, *model_choices]))
    write_cache_images_atomically()
    with gr.Blocks(title=APP_TITLE, delete_cache=delete_cache) as demo:
        gr.Markdown(
            f"# {APP_TITLE}\nSee what Vision Transformers do: classify a photo, see where the model looks, "
            "caption it, and ask CLIP about it with your own labels."
        )
        visitor_id, browser_id = visitor_boxes()
        with gr.Tabs():
            with gr.Tab(CLASSIFY_TITLE, id="classify"):
                classify_model = classify_tab(default_model, choices)
            with gr.Tab(ATTENTION_TITLE, id="attention"):
                attention_model = attention_tab(default_model, list(dict.fromkeys([default_model, *EXPLAINER_CHOICES])))
            with gr.Tab(CAPTION_TITLE, id="caption"):
                caption_tab()
            with gr.Tab(ZERO_SHOT_TITLE, id="zero-shot"):
                zero_shot_tab()
            with gr.Tab(TRAIN_TITLE, id="train"):
                run_lists = train_tab(
                    (classify_model, attention_model), visitor_id, allow_server_paths=allow_server_paths
                )
        connect_visitor(demo, visitor_id, browser_id, run_lists)
    return demo


def classify_tab(default_model: str, choices: list[str]) -> gr.Dropdown:
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
            run.click(classify_one, inputs=[image, model, top_k], outputs=[labels, status], api_name="classify")
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
