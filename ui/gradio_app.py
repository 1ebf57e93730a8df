"""The Gradio front end: build_demo() arranges the tabs; every computation is a call into core/."""
from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from core import classify, classify_files
from core.batch import CSV_COLUMNS, results_table, write_csv
from core.examples import example_images
from core.models import CLASSIFIER_CHOICES, DEFAULT_CLASSIFIER, is_cached, load_classifier

CLASSIFY_INTRO = """
A Vision Transformer cuts the photo into 16x16-pixel patches, turns each patch into a token,
adds a special **CLS** token, and lets every token attend to every other one through a stack of layers.
The label comes from the CLS token at the end. ([Dosovitskiy et al., 2020](https://arxiv.org/abs/2010.11929))
"""

MODEL_INFO = "Pick one, or type any Hugging Face image-classification id or the path of a local save_pretrained folder."

CSS = """
#status {min-height: 1.5em; opacity: 0.8}
"""


class ImagePath(gr.Image):
    """A gr.Image that hands the uploaded file to the engine unopened, so the engine's checks and messages apply
    (gr.Image itself opens the file first and fails on a bad one with a traceback-like message)."""

    is_template = True  # render with gr.Image's front-end code

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return payload.path
        return super().preprocess(payload)


def build_demo(default_model: str = DEFAULT_CLASSIFIER, model_choices: tuple[str, ...] = CLASSIFIER_CHOICES) -> gr.Blocks:
    """The whole app; launch it with demo.launch(css=CSS) or mount it in FastAPI."""
    choices = list(dict.fromkeys([default_model, *model_choices]))
    with gr.Blocks(title="ViT Studio") as demo:
        gr.Markdown("# ViT Studio\nSee what Vision Transformers do: classify a photo with any ViT.")
        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                classify_tab(default_model, choices)
    return demo


def classify_tab(default_model: str, choices: list[str]) -> None:
    gr.Markdown(CLASSIFY_INTRO)
    with gr.Row():
        model = gr.Dropdown(
            choices, value=default_model, allow_custom_value=True, label="Model", info=MODEL_INFO, scale=3
        )
        top_k = gr.Slider(1, 20, value=5, step=1, label="How many labels (top-k)", scale=1, min_width=200)
    with gr.Tabs():
        with gr.Tab("One image"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    image = ImagePath(
                        type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                        label="Photo (upload, paste or webcam)", height=360, elem_id="photo",
                    )
                    run = gr.Button("Classify", variant="primary")
                    gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
                with gr.Column():
                    labels = gr.Label(label="Top labels", show_heading=True, elem_id="top-labels")
                    status = gr.Markdown(elem_id="status", label="run")
            run.click(classify_one, inputs=[image, model, top_k], outputs=[labels, status], api_name="classify")
        with gr.Tab("Many images"):
            files = gr.File(
                file_count="multiple", file_types=["image", ".zip"], label="Images or zips of images", elem_id="batch-files"
            )
            run_batch = gr.Button("Classify all", variant="primary")
            summary = gr.Markdown(label="summary")
            table = gr.Dataframe(
                headers=list(CSV_COLUMNS), label="Results", wrap=True, interactive=False,
                column_widths=["22%", "12%", "8%", "33%", "25%"],
            )
            csv_file = gr.File(label="Download CSV")
            run_batch.click(
                classify_many, inputs=[files, model, top_k], outputs=[table, csv_file, summary],
                api_name="classify_batch",
            )


def classify_one(image_path: str | None, model: str, top_k: float, progress=gr.Progress(track_tqdm=True)):
    """Top labels as {label: score} for gr.Label, plus a line saying what ran."""
    if not image_path:
        raise gr.Error("Upload, paste or take a photo first (or click an example).")
    with _user_errors():
        _announce_load(model, progress)
        started = time.perf_counter()
        predictions = classify(image_path, model=model, top_k=int(top_k))
        elapsed_ms = (time.perf_counter() - started) * 1000
    return {p.label: p.score for p in predictions}, _describe_run(model, elapsed_ms)


def classify_many(paths: list[str] | None, model: str, top_k: float, progress=gr.Progress(track_tqdm=True)):
    """A results table, a CSV file to download and a one-line summary."""
    if not paths:
        raise gr.Error("Upload some images or a zip of images first.")
    with _user_errors():
        _announce_load(model, progress)
        results = classify_files(paths, model=model, top_k=int(top_k))
    csv_path = write_csv(results, Path(tempfile.mkdtemp(prefix="vit-studio-")) / "predictions.csv")
    failed = sum(not result.ok for result in results)
    summary = f"**{len(results) - failed}** images classified" + (f", **{failed}** could not be read (see the error column)." if failed else ".")
    return results_table(results), str(csv_path), summary


def _announce_load(model: str, progress: gr.Progress) -> None:
    if not is_cached(model):
        progress(0, desc=f"Loading {model} (the first use may download it)")
        load_classifier(model)


def _describe_run(model: str, elapsed_ms: float) -> str:
    loaded = load_classifier(model)
    precision = str(loaded.dtype).replace("torch.", "")
    return f"`{loaded.name}` on {loaded.device.type}, {precision}, {elapsed_ms:.0f} ms"


@contextmanager
def _user_errors():
    """Turn the engine's ValueErrors into gr.Error so the page shows the message, never a traceback."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as error:
        raise gr.Error(str(error)) from error
