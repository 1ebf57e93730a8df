"""The Zero-shot page: CLIP ranks the user's own labels for a photo, per template on request, and maps one label."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st
from PIL import Image

from core import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    Prediction,
    RunInfo,
    check_labels,
    pretrained_tags,
    resolve_templates,
    takes_pretrained,
    zero_shot,
    zero_shot_map,
)
from ui.shared.status import last_run_line
from ui.shared.texts import (
    ASK_CLIP_BUTTON,
    BEST_LABELS_TITLE,
    CLIP_MODEL_INFO,
    CLIP_MODEL_LABEL,
    COLORMAP_LABEL,
    COLORMAPS,
    DEFAULT_TEMPLATE,
    LABEL_MAP_TITLE,
    LABEL_TO_MAP,
    LABELS_INFO,
    LABELS_LABEL,
    MAP_LABEL_BUTTON,
    NO_IMAGE,
    PER_TEMPLATE_LABEL,
    PER_TEMPLATE_TITLE,
    PRETRAINED_INFO,
    PRETRAINED_LABEL,
    TEMPLATE_CHOICES,
    TEMPLATE_LABEL,
    TEMPLATES_LABEL,
    ZERO_SHOT_EXAMPLE_LABELS,
    ZERO_SHOT_INTRO,
    ZERO_SHOT_TITLE,
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
from ui.streamlit_pages.common import (
    Photo,
    forget_when_changed,
    load_notice,
    model_box,
    photo_input,
    png_bytes,
    predictions_table,
    shown_errors,
    slider,
    teacher_note,
)

ANSWER = "zero_shot_result"
LABEL_MAP = "zero_shot_map"
# Counts the questions asked, to give the "Label to map" box a new key each time: the browser keeps a keyed box's
# old choice otherwise, and a new ranking should arrive with its best label chosen.
ROUND = "zero_shot_round"
TOP_LABELS = 5
TEMPLATE_NAMES = {value: label for label, value in TEMPLATE_CHOICES}


@dataclass(frozen=True)
class Question:
    """What CLIP is asked, as zero_shot takes it."""

    labels: str
    model: str
    pretrained: str | None  # as typed; ui.shared.zero_shot.pretrained_weights checks it
    templates: str  # a template, or the name of a template set


@dataclass(frozen=True)
class Answer:
    question: Question
    photo: Photo
    predictions: list[Prediction]
    per_template: tuple[list[str], list[list]] | None  # (columns, rows) when asked for
    status: str


def question_controls() -> Question:
    model_column, pretrained_column = st.columns([3, 2])
    with model_column:
        model = model_box(
            CLIP_MODEL_LABEL, CLIP_MODEL_CHOICES, "zero_shot_model", DEFAULT_CLIP_MODEL, help=CLIP_MODEL_INFO
        )
    with pretrained_column:
        pretrained = pretrained_box(model)
    labels_column, templates_column = st.columns([3, 2])
    labels = labels_column.text_area(
        LABELS_LABEL, ZERO_SHOT_EXAMPLE_LABELS, height=110, key="zero_shot_labels", help=LABELS_INFO
    )
    with templates_column:
        mode = st.radio(
            TEMPLATES_LABEL, list(TEMPLATE_NAMES), format_func=TEMPLATE_NAMES.get, key="zero_shot_template_mode"
        )
        template = st.text_input(
            TEMPLATE_LABEL, DEFAULT_TEMPLATE, key="zero_shot_template", disabled=not template_box_editable(mode)
        )
    return Question(labels, model, pretrained, chosen_templates(mode, template))


def pretrained_box(model: str) -> str | None:
    """open_clip's tags for an open_clip name (any tag or checkpoint path may be typed); switched off for a model
    that brings its own weights. Each model has its own box, so a new model starts from its own first tag."""
    if not takes_pretrained(model):
        st.selectbox(
            PRETRAINED_LABEL,
            [],
            disabled=True,
            placeholder="not needed",
            key="zero_shot_no_weights",
            help=PRETRAINED_INFO[False],
        )
        return None
    tags = pretrained_tags(model)
    first = DEFAULT_CLIP_PRETRAINED if DEFAULT_CLIP_PRETRAINED in tags else (tags[0] if tags else None)
    return st.selectbox(
        PRETRAINED_LABEL,
        tags,
        index=tags.index(first) if first else None,
        accept_new_options=True,
        key=f"zero_shot_weights:{model}",
        help=PRETRAINED_INFO[True],
    )


def answered(photo: Photo, question: Question, per_template: bool) -> Answer:
    check_labels(question.labels)  # a typo in the labels should not wait for a model download
    resolve_templates(question.templates)
    weights = pretrained_weights(question.model, question.pretrained)
    runs: list[RunInfo] = []
    with load_notice() as on_load:
        predictions = zero_shot(
            photo.data,
            question.labels,
            model=question.model,
            pretrained=weights,
            templates=question.templates,
            on_load=on_load,
            on_run=runs.append,
        )
    table = (
        template_table(
            photo.data,
            question.labels,
            model=question.model,
            pretrained=weights,
            templates=question.templates,
            predictions=predictions,
        )
        if per_template
        else None
    )
    return Answer(question, photo, predictions, table, last_run_line(runs))


def label_map(answer: Answer, label: str, cmap: str, alpha: float) -> Image.Image:
    question = answer.question
    weights = pretrained_weights(question.model, question.pretrained)
    with load_notice() as on_load, st.spinner(mapping_text(label)):
        return zero_shot_map(
            answer.photo.data,
            label,
            question.labels,
            model=question.model,
            pretrained=weights,
            templates=question.templates,
            alpha=alpha,
            cmap=cmap,
            on_load=on_load,
        ).overlay


def show_answer(answer: Answer) -> None:
    st.subheader(BEST_LABELS_TITLE)
    predictions_table(answer.predictions[:TOP_LABELS], key="zero_shot_top")
    st.bar_chart(pd.DataFrame(chart_columns(answer.predictions)), x=CHART_X, y=CHART_Y, sort=f"-{CHART_Y}", height=260)
    st.caption(answer.status)


def map_controls(answer: Answer | None) -> None:
    with st.expander(LABEL_MAP_TITLE, expanded=True):
        labels = [p.label for p in answer.predictions] if answer is not None else []
        label_column, cmap_column, alpha_column = st.columns([2, 1, 1])
        label = label_column.selectbox(
            LABEL_TO_MAP,
            labels,
            index=0 if labels else None,
            key=f"zero_shot_target:{st.session_state.get(ROUND, 0)}",
            accept_new_options=True,
            placeholder="ask CLIP first",
        )
        cmap = cmap_column.selectbox(COLORMAP_LABEL, COLORMAPS, key="zero_shot_cmap")
        alpha = slider(OPACITY, "zero_shot_alpha", alpha_column)
        if st.button(MAP_LABEL_BUTTON, key="zero_shot_map_run"):
            if answer is None:
                st.error(NO_IMAGE)
            else:
                overlay = shown_errors(lambda: label_map(answer, label or "", cmap, alpha))
                if overlay is not None:
                    st.session_state[LABEL_MAP] = (label, overlay)
        if LABEL_MAP in st.session_state:
            label, overlay = st.session_state[LABEL_MAP]
            st.image(overlay, caption=f"Gradient-weighted attention rollout for '{label}'", width=480)
            st.download_button(
                "Download the map (PNG)",
                png_bytes(overlay),
                file_name="label-map.png",
                mime="image/png",
                key="zero_shot_download",
                on_click="ignore",
            )


def render() -> None:
    st.header(ZERO_SHOT_TITLE)
    st.markdown(ZERO_SHOT_INTRO)
    question = question_controls()
    photo_column, result_column = st.columns(2, gap="large")
    with photo_column:
        photo = photo_input("zero_shot")
        forget_when_changed(
            [ANSWER, LABEL_MAP], question.model, question.pretrained, photo, marker="zero_shot_made_from"
        )
        per_template = st.checkbox(PER_TEMPLATE_LABEL, key="zero_shot_per_template")
        if st.button(ASK_CLIP_BUTTON, type="primary", key="zero_shot_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                answer = shown_errors(lambda: answered(photo, question, per_template))
                if answer is not None:
                    st.session_state[ANSWER] = answer
                    st.session_state[ROUND] = st.session_state.get(ROUND, 0) + 1
                    # The best label is mapped after every question, as the Gradio tab does.
                    best = answer.predictions[0].label
                    overlay = shown_errors(
                        lambda: label_map(
                            answer,
                            best,
                            st.session_state.get("zero_shot_cmap", COLORMAPS[0]),
                            st.session_state.get("zero_shot_alpha", OPACITY.default),
                        )
                    )
                    if overlay is not None:
                        st.session_state[LABEL_MAP] = (best, overlay)
    answer: Answer | None = st.session_state.get(ANSWER)
    with result_column:
        if answer is None:
            st.caption("CLIP's ranking of your labels appears here.")
        else:
            show_answer(answer)
            teacher_note("zero-shot")
    if answer is not None and answer.per_template is not None:
        columns, rows = answer.per_template
        st.markdown(f"**{PER_TEMPLATE_TITLE}**")
        st.dataframe(pd.DataFrame(rows, columns=columns), hide_index=True, key="zero_shot_templates", width="stretch")
    map_controls(answer)


if __name__ == "__main__":
    render()
