"""The Step-by-step page: one photo through a ViT, top to bottom, each step a picture and a sentence with numbers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import Walkthrough, walkthrough
from ui.shared.status import run_line
from ui.shared.texts import EXPLAINER_INFO, MODEL_LABEL, NO_IMAGE
from ui.shared.walkthrough import (
    STEP_TITLES,
    WALKTHROUGH_BUTTON,
    WALKTHROUGH_INTRO,
    WALKTHROUGH_TITLE,
    WALKTHROUGH_WAITING,
    step_pictures,
    step_sentences,
    walk_sliders,
)
from ui.shared.widgets import EXPLAINER_CHOICES, Slider, in_range
from ui.streamlit_pages.common import (
    WALKTHROUGH_MODEL_KEY,
    default_classifier,
    forget_when_changed,
    load_notice,
    model_box,
    photo_input,
    shown_errors,
    slider,
)

WALKED = "walkthrough_result"
PICTURE_WIDTH = 640  # at most this wide on a wide screen; a phone's column is narrower and the picture shrinks to it


def fitted_slider(spec: Slider, key: str, container: Any = st) -> Any:
    """A slider whose range follows the model: a value past a maximum that just shrank is brought within it first
    (Streamlit refuses a value outside the range)."""
    if key in st.session_state:
        kept = in_range(st.session_state[key], spec)
        if kept != st.session_state[key]:
            st.session_state[key] = kept
    return slider(spec, key, container)


def walked(photo, model: str, layer: int, head: int) -> Walkthrough:
    with load_notice() as on_load, st.spinner("Walking through ..."):
        return walkthrough(photo.data, model=model, layer=layer, head=head, on_load=on_load)


def show_steps(walk: Walkthrough) -> None:
    """Every step, top to bottom: its title, its sentence, its picture."""
    st.caption(run_line(walk.run))
    sentences = step_sentences(walk)
    pictures = step_pictures(walk)
    for key, title in STEP_TITLES.items():
        with st.container(border=True, key=f"walk-{key}"):
            st.subheader(title)
            st.markdown(sentences[key])
            if key in pictures:
                st.image(pictures[key], width=min(PICTURE_WIDTH, pictures[key].width))


def render() -> None:
    st.header(WALKTHROUGH_TITLE)
    st.markdown(WALKTHROUGH_INTRO)
    controls, photo_column = st.columns([1, 1], gap="large")
    with controls:
        model = model_box(
            MODEL_LABEL,
            EXPLAINER_CHOICES,
            WALKTHROUGH_MODEL_KEY,
            default_classifier(),
            help=EXPLAINER_INFO,
            with_runs=True,
        )
        layer_spec, head_spec = walk_sliders(model)
        layer_column, head_column = st.columns(2)
        layer = fitted_slider(layer_spec, "walkthrough_layer", layer_column)
        head = fitted_slider(head_spec, "walkthrough_head", head_column)
    with photo_column:
        photo = photo_input("walkthrough")
    forget_when_changed([WALKED], model, photo, marker="walkthrough_made_from")
    with controls:
        if st.button(WALKTHROUGH_BUTTON, type="primary", key="walkthrough_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                walk = shown_errors(lambda: walked(photo, model, int(layer), int(head)))
                if walk is not None:
                    st.session_state[WALKED] = walk
    walk = st.session_state.get(WALKED)
    if walk is None:
        st.caption(WALKTHROUGH_WAITING)
    else:
        show_steps(walk)


if __name__ == "__main__":
    render()
