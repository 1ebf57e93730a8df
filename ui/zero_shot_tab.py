"""The Zero-shot tab: CLIP ranks the user's own labels for a photo, per template on request, and maps one label."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from core import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    RunInfo,
    check_labels,
    example_images,
    pretrained_tags,
    resolve_templates,
    takes_pretrained,
    zero_shot,
    zero_shot_map,
)
from ui.components import ImagePath
from ui.gradio_common import load_progress, require_image, slider, teacher_note, user_errors
from ui.shared.status import last_run_line
from ui.shared.texts import (
    ASK_CLIP_BUTTON,
    BEST_LABELS_TITLE,
    CLIP_MODEL_INFO,
    CLIP_MODEL_LABEL,
    COLORMAP_LABEL,
    COLORMAPS,
    DEFAULT_TEMPLATE,
    LABEL_MAP_CAPTION,
    LABEL_MAP_TITLE,
    LABEL_TO_MAP,
    LABELS_INFO,
    LABELS_LABEL,
    MAP_LABEL_BUTTON,
    PER_TEMPLATE_LABEL,
    PER_TEMPLATE_TITLE,
    PRETRAINED_INFO,
    PRETRAINED_LABEL,
    SINGLE_TEMPLATE,
    TEMPLATE_CHOICES,
    TEMPLATE_LABEL,
    TEMPLATES_LABEL,
    ZERO_SHOT_EXAMPLE_LABELS,
    ZERO_SHOT_INTRO,
    mapping_text,
)
from ui.shared.widgets import CLIP_MODEL_CHOICES, OPACITY
from ui.shared.zero_shot import (
    CHART_X,
    CHART_Y,
    chart_columns,
    chosen_templates,
    pretrained_weights,
    template_box_editable,
    template_table,
)

EXAMPLE_LABELS = ZERO_SHOT_EXAMPLE_LABELS


def zero_shot_tab() -> None:
    gr.Markdown(ZERO_SHOT_INTRO)
    with gr.Row():
        model = gr.Dropdown(
            list(CLIP_MODEL_CHOICES),
            value=DEFAULT_CLIP_MODEL,
            allow_custom_value=True,
            label=CLIP_MODEL_LABEL,
            info=CLIP_MODEL_INFO,
            scale=3,
            min_width=300,
            elem_id="clip-model",
        )
        pretrained = gr.Dropdown(
            pretrained_tags(DEFAULT_CLIP_MODEL),
            value=DEFAULT_CLIP_PRETRAINED,
            allow_custom_value=True,
            label=PRETRAINED_LABEL,
            info=PRETRAINED_INFO[True],
            scale=2,
            min_width=240,
            elem_id="clip-pretrained",
        )
    with gr.Row():
        labels = gr.Textbox(
            value=EXAMPLE_LABELS,
            lines=3,
            max_lines=12,
            label=LABELS_LABEL,
            info=LABELS_INFO,
            scale=3,
            elem_id="clip-labels",
        )
        with gr.Column(scale=2, min_width=240):
            template_mode = gr.Radio(
                TEMPLATE_CHOICES, value=SINGLE_TEMPLATE, label=TEMPLATES_LABEL, elem_id="clip-template-mode"
            )
            template = gr.Textbox(
                value=DEFAULT_TEMPLATE,
                label=TEMPLATE_LABEL,
                max_lines=1,
                interactive=template_box_editable(SINGLE_TEMPLATE),
                elem_id="clip-template",
            )
    with gr.Row(equal_height=False):
        with gr.Column():
            image = ImagePath(
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard", "webcam"],
                label="Photo (upload, paste or webcam)",
                height=320,
                elem_id="clip-photo",
            )
            with gr.Row():
                run = gr.Button(ASK_CLIP_BUTTON, variant="primary", scale=2)
                per_template = gr.Checkbox(value=False, label=PER_TEMPLATE_LABEL, scale=1)
            gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
        with gr.Column():
            top = gr.Label(label=BEST_LABELS_TITLE, num_top_classes=5, elem_id="clip-top")
            chart = gr.BarPlot(
                x=CHART_X,
                y=CHART_Y,
                sort="-y",
                y_lim=[0, 1],
                x_label_angle=-30,
                label="Every label's probability",
                height=260,
                elem_id="clip-chart",
            )
            status = gr.Markdown(elem_id="clip-status", label="run")
            teacher_note("zero-shot")
    table = gr.Dataframe(label=PER_TEMPLATE_TITLE, interactive=False, visible=False, elem_id="clip-templates")
    with gr.Accordion(LABEL_MAP_TITLE, open=True):
        with gr.Row():
            # Custom values allowed so that a label edited away after asking gets the engine's message.
            target = gr.Dropdown(
                [],
                value=None,
                allow_custom_value=True,
                label=LABEL_TO_MAP,
                info="empty = the best label",
                scale=2,
                elem_id="clip-target",
            )
            cmap = gr.Dropdown(COLORMAPS, value="jet", label=COLORMAP_LABEL, scale=1)
            alpha = slider(OPACITY, scale=1)
            show_map = gr.Button(MAP_LABEL_BUTTON, scale=1)
        label_map = gr.Image(
            label=LABEL_MAP_CAPTION, type="pil", format="png", buttons=["download"], height=360, elem_id="clip-map"
        )

    question = [labels, model, pretrained, template_mode, template]
    run.click(
        ask_clip,
        inputs=[image, *question, per_template],
        outputs=[top, chart, table, status, target],
        api_name="zero_shot",
    ).success(
        map_label, inputs=[image, target, *question, cmap, alpha], outputs=[label_map], api_visibility="undocumented"
    )
    show_map.click(
        map_label, inputs=[image, target, *question, cmap, alpha], outputs=[label_map], api_name="zero_shot_map"
    )
    model.change(_pretrained_box, inputs=[model], outputs=[pretrained], api_visibility="undocumented")
    template_mode.change(_template_box, inputs=[template_mode], outputs=[template], api_visibility="undocumented")
    # Answers belong to the model and photo that made them: a new one clears them.
    gr.on(
        [model.change, pretrained.change, image.change],
        lambda: (None, None, gr.update(value=None, visible=False), "", gr.update(choices=[], value=None), None),
        outputs=[top, chart, table, status, target, label_map],
        api_visibility="undocumented",
        queue=False,
    )


def _template_box(template_mode: str):
    """The single-template box takes typing only while it is the template used: an ensemble brings its own."""
    return gr.update(interactive=template_box_editable(template_mode))


def _pretrained_box(model: str):
    """Tags for an open_clip name; switched off for a model that brings its own weights."""
    if not takes_pretrained(model):
        return gr.update(choices=[], value=None, interactive=False, info=PRETRAINED_INFO[False])
    tags = pretrained_tags(model)
    return gr.update(choices=tags, value=tags[0] if tags else None, interactive=True, info=PRETRAINED_INFO[True])


def ask_clip(
    image_path, labels, model, pretrained, template_mode, template, per_template, progress=gr.Progress(track_tqdm=True)
):
    """The best labels, a bar chart of all of them, the per-template table (on request), a status line, and
    the labels offered for mapping."""
    require_image(image_path)
    templates = chosen_templates(template_mode, template)
    runs: list[RunInfo] = []
    with user_errors():
        check_labels(labels)  # a typo in the labels should not wait for a model download
        resolve_templates(templates)
        weights = pretrained_weights(model, pretrained)
        predictions = zero_shot(
            image_path,
            labels,
            model=model,
            pretrained=weights,
            templates=templates,
            on_load=load_progress(progress),
            on_run=runs.append,
        )
        table = _template_frame(image_path, labels, model, weights, templates, predictions) if per_template else None
    ordered = [p.label for p in predictions]
    return (
        {p.label: p.score for p in predictions},
        pd.DataFrame(chart_columns(predictions)),
        gr.update(value=table, visible=table is not None),
        last_run_line(runs),
        gr.update(choices=ordered, value=ordered[0]),
    )


def _template_frame(image_path, labels, model, weights, templates, predictions) -> pd.DataFrame:
    columns, rows = template_table(
        image_path, labels, model=model, pretrained=weights, templates=templates, predictions=predictions
    )
    return pd.DataFrame(rows, columns=columns)


def map_label(
    image_path,
    label,
    labels,
    model,
    pretrained,
    template_mode,
    template,
    cmap,
    alpha,
    progress=gr.Progress(track_tqdm=True),
):
    """The chosen label's map over the photo (the best label when none is chosen)."""
    require_image(image_path)
    templates = chosen_templates(template_mode, template)
    on_load = load_progress(progress)
    with user_errors():
        weights = pretrained_weights(model, pretrained)
        label = (
            label
            or zero_shot(image_path, labels, model=model, pretrained=weights, templates=templates, on_load=on_load)[
                0
            ].label
        )
        progress(0, desc=mapping_text(label))
        result = zero_shot_map(
            image_path,
            label,
            labels,
            model=model,
            pretrained=weights,
            templates=templates,
            alpha=float(alpha),
            cmap=cmap,
            on_load=on_load,
        )
    return result.overlay
