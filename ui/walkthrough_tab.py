"""The Step-by-step tab: one photo through a ViT, top to bottom, each step a picture and a sentence with its numbers."""

from __future__ import annotations

import gradio as gr

from core import RunInfo, example_images, walkthrough
from ui.components import ImagePath
from ui.gradio_common import load_progress, require_image, slider, user_errors
from ui.shared.status import last_run_line
from ui.shared.texts import EXPLAINER_INFO, MODEL_LABEL, PHOTO_LABEL
from ui.shared.walkthrough import (
    STEP_TITLES,
    WALKTHROUGH_BUTTON,
    WALKTHROUGH_INTRO,
    WALKTHROUGH_WAITING,
    step_pictures,
    step_sentences,
    walk_sliders,
)
from ui.shared.widgets import Slider, in_range


def walkthrough_tab(default_model: str, choices: list[str]) -> gr.Dropdown:
    """The tab's controls and steps; returns its model box so the Train tab's "Use this model" can fill it."""
    gr.Markdown(WALKTHROUGH_INTRO)
    layer_spec, head_spec = walk_sliders(default_model)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(
                choices,
                value=default_model,
                allow_custom_value=True,
                label=MODEL_LABEL,
                info=EXPLAINER_INFO,
                elem_id="walk-model",
            )
            with gr.Row():
                layer = slider(layer_spec)
                head = slider(head_spec)
            run = gr.Button(WALKTHROUGH_BUTTON, variant="primary", elem_id="walk-run")
            status = gr.Markdown(WALKTHROUGH_WAITING, elem_id="walk-status")
        with gr.Column(scale=1, min_width=280):
            image = ImagePath(
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard", "webcam"],
                label=PHOTO_LABEL,
                height=280,
                elem_id="walk-photo",
            )
            gr.Examples(
                [[str(path)] for path in example_images()],
                inputs=[image],
                label="Example photos",
                elem_id="walk-examples",
            )
    texts: list[gr.Markdown] = []
    pictures: list[gr.Image] = []
    # Wide screens put each step's sentence beside its picture (each about its drawn size); on a phone, narrower than
    # the two columns' minimum widths together, they stack: the title and sentence first, then the picture.
    for key, title in STEP_TITLES.items():
        with gr.Row(equal_height=False, elem_classes=["walk-step"], elem_id=f"walk-{key}"):
            with gr.Column(scale=2, min_width=260):
                gr.Markdown(f"### {title}")
                texts.append(gr.Markdown(elem_id=f"walk-{key}-text"))
            with gr.Column(scale=3, min_width=300):
                pictures.append(
                    gr.Image(
                        type="pil",
                        format="png",
                        show_label=False,
                        buttons=["download"],
                        elem_id=f"walk-{key}-picture",
                    )
                )
    run.click(
        walk_one,
        inputs=[image, model, layer, head],
        outputs=[status, *texts, *pictures],
        api_name="walkthrough",
    )
    model.change(fit_walk_sliders, inputs=[model, layer, head], outputs=[layer, head], api_visibility="undocumented")
    # The steps belong to the photo and model they were computed for: another one clears them, so a page never shows
    # one model's numbers under another model's name.
    gr.on(
        [model.change, image.change],
        cleared_steps,
        outputs=[status, *texts, *pictures],
        api_visibility="undocumented",
        queue=False,
    )
    return model


def walk_one(image_path, model, layer, head, progress=gr.Progress(track_tqdm=True)):
    """The status line, then each step's sentence, then each step's picture (None where a step has none)."""
    require_image(image_path)
    with user_errors():
        walk = walkthrough(image_path, model=model, layer=int(layer), head=int(head), on_load=load_progress(progress))
    runs: list[RunInfo] = [walk.run]
    sentences = step_sentences(walk)
    drawn = step_pictures(walk)
    return (
        last_run_line(runs),
        *(sentences[key] for key in STEP_TITLES),
        *(drawn.get(key) for key in STEP_TITLES),
    )


def cleared_steps():
    """The waiting line, and every step's sentence and picture empty."""
    return (WALKTHROUGH_WAITING, *("" for _ in STEP_TITLES), *(None for _ in STEP_TITLES))


def fit_walk_sliders(model, layer, head):
    """The layer and head sliders fitted to this model's layers and heads, their values kept in range."""
    layer_spec, head_spec = walk_sliders(model or "")
    return _fitted(layer_spec, layer), _fitted(head_spec, head)


def _fitted(spec: Slider, value) -> dict:
    return gr.update(maximum=spec.maximum, value=in_range(value, spec))
