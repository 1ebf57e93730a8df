"""The Caption page: captions with decoding controls, where each word came from, and many files to a CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import (
    DEFAULT_CAPTIONER,
    FileCaptions,
    OnLoad,
    RunInfo,
    caption,
    caption_attention,
    caption_files,
    prompt_support,
)
from ui.shared.attention import decoder_layer_slider
from ui.shared.batch import (
    CAPTION_CSV_COLUMNS,
    CAPTIONS_CSV,
    DONE_CAPTIONED,
    batch_summary,
    caption_table,
    write_caption_csv,
)
from ui.shared.caption import decoding_settings, numbered, shown_captions, usable_prompt, word_overlays
from ui.shared.status import last_run_line
from ui.shared.texts import (
    CAPTION_ALL_BUTTON,
    CAPTION_BUTTON,
    CAPTION_INTRO,
    CAPTION_MODEL_INFO,
    CAPTION_TITLE,
    CAPTION_TO_MAP,
    CAPTIONER_LABEL,
    COLORMAP_LABEL,
    COLORMAPS,
    DECODING_LABEL,
    FILES_LABEL,
    MANY_IMAGES_TAB,
    MAP_WORDS_BUTTON,
    NO_FILES,
    NO_IMAGE,
    ONE_IMAGE_TAB,
    PROMPT_INFO,
    PROMPT_LABEL,
    PROMPT_LEFT_OUT,
    PROMPT_PLACEHOLDER,
    WORD_MAPS_TITLE,
)
from ui.shared.widgets import (
    BEAMS,
    CAPTIONER_CHOICES,
    CAPTIONS,
    DECODING_STRATEGIES,
    DEFAULT_DECODING,
    MAX_NEW_TOKENS,
    NO_REPEAT_NGRAM,
    OPACITY,
    REPETITION_PENALTY,
    TEMPERATURE,
    TOP_P,
)
from ui.streamlit_pages.attention import fitted_slider
from ui.streamlit_pages.common import (
    CAPTION_MODEL_KEY,
    Photo,
    csv_download,
    forget_when_changed,
    load_notice,
    model_box,
    photo_input,
    saved_uploads,
    shown_errors,
    slider,
    teacher_note,
    work_folder,
)

CAPTIONED = "caption_result"
WORD_MAPS = "caption_word_maps"
MANY_RESULT = "caption_batch_result"
# Counts the captions made, to give the "Caption to map" box a new key each time: the browser keeps a keyed box's
# old choice otherwise, and the new captions should arrive with the first one chosen.
ROUND = "caption_round"
TILE_WIDTH = 150


@dataclass(frozen=True)
class Captioned:
    photo: Photo  # the photo the captions are of: word maps are drawn over it
    captions: list[str]
    status: str


@dataclass(frozen=True)
class CaptionedFiles:
    results: list[FileCaptions]
    csv_path: Path


def decoding_controls() -> dict[str, Any]:
    """caption()'s keyword arguments from the Decoding controls (ui.shared.caption.decoding_settings decides which
    controls count for the chosen strategy)."""
    with st.expander(DECODING_LABEL):
        strategy_column, beams_column, count_column = st.columns([2, 1, 1])
        strategy = strategy_column.radio(
            DECODING_LABEL,
            DECODING_STRATEGIES,
            index=DECODING_STRATEGIES.index(DEFAULT_DECODING),
            horizontal=True,
            key="caption_strategy",
        )
        num_beams = slider(BEAMS, "caption_beams", beams_column)
        num_captions = slider(CAPTIONS, "caption_count", count_column)
        tokens_column, top_p_column, temperature_column, penalty_column, ngram_column = st.columns(5)
        max_new_tokens = slider(MAX_NEW_TOKENS, "caption_max_tokens", tokens_column)
        top_p = slider(TOP_P, "caption_top_p", top_p_column)
        temperature = slider(TEMPERATURE, "caption_temperature", temperature_column)
        repetition_penalty = slider(REPETITION_PENALTY, "caption_penalty", penalty_column)
        no_repeat = slider(NO_REPEAT_NGRAM, "caption_no_repeat", ngram_column)
    return (
        shown_errors(
            lambda: decoding_settings(
                strategy,
                num_beams=num_beams,
                num_return_sequences=num_captions,
                max_new_tokens=max_new_tokens,
                top_p=top_p,
                temperature=temperature,
                repetition_penalty=repetition_penalty,
                no_repeat_ngram_size=no_repeat,
            )
        )
        or {}
    )


def prompt_to_use(model: str, prompt: str, on_load: OnLoad) -> str | None:
    """The prompt when this captioner continues one; otherwise None, with a notice (the caption still runs)."""
    text, left_out = usable_prompt(model, prompt, on_load=on_load)
    if left_out:
        st.warning(PROMPT_LEFT_OUT)
    return text


def captioned(photo: Photo, model: str, prompt: str, settings: dict[str, Any]) -> Captioned:
    runs: list[RunInfo] = []
    with load_notice() as on_load:
        chosen_prompt = prompt_to_use(model, prompt, on_load)
        with st.spinner("Captioning ..."):
            texts = caption(
                photo.data, model=model, prompt=chosen_prompt, on_load=on_load, on_run=runs.append, **settings
            )
    return Captioned(photo, [texts] if isinstance(texts, str) else list(texts), last_run_line(runs))


def mapped_words(photo: Photo, text: str, model: str, layer: int, cmap: str, alpha: float) -> list:
    with load_notice() as on_load:
        result = caption_attention(photo.data, text or "", model=model, layer=layer or None, on_load=on_load)
    return word_overlays(result, photo.data, alpha=alpha, cmap=cmap)


def show_captions(texts: list[str]) -> None:
    shown = shown_captions(texts)
    if len(shown) == 1:
        st.subheader(shown[0])
    else:
        st.markdown(numbered(shown))


def word_map_controls(model: str, shown: Captioned | None) -> None:
    """Pick a caption (or type one) and see each word's cross-attention over the photo."""
    captions = shown.captions if shown is not None else []
    to_map = st.selectbox(
        CAPTION_TO_MAP,
        captions,
        index=0 if captions else None,
        accept_new_options=True,
        placeholder="one of the captions, or type your own",
        key=f"caption_to_map:{st.session_state.get(ROUND, 0)}",
    )
    layer_column, cmap_column, alpha_column = st.columns(3)
    layer = fitted_slider(decoder_layer_slider(model), "caption_layer", layer_column)  # the decoder's layers
    cmap = cmap_column.selectbox(COLORMAP_LABEL, COLORMAPS, key="caption_cmap")
    alpha = slider(OPACITY, "caption_alpha", alpha_column)
    if st.button(MAP_WORDS_BUTTON, key="caption_map"):
        if shown is None:
            st.error(NO_IMAGE)
        else:
            tiles = shown_errors(lambda: mapped_words(shown.photo, to_map, model, layer, cmap, alpha))
            if tiles is not None:
                st.session_state[WORD_MAPS] = tiles


def one_image(model: str, prompt: str, settings: dict[str, Any]) -> None:
    photo_column, result_column = st.columns(2, gap="large")
    with photo_column:
        photo = photo_input("caption")
        forget_when_changed([CAPTIONED, WORD_MAPS], model, photo, marker="caption_made_from")
        if st.button(CAPTION_BUTTON, type="primary", key="caption_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                result = shown_errors(lambda: captioned(photo, model, prompt, settings))
                if result is not None:
                    st.session_state[CAPTIONED] = result
                    st.session_state[ROUND] = st.session_state.get(ROUND, 0) + 1
                    # Right after captioning, the first caption's words are mapped; an empty caption (a model can
                    # stop at once) has no words, which is no error.
                    first = result.captions[0].strip()
                    st.session_state[WORD_MAPS] = (
                        shown_errors(
                            lambda: mapped_words(
                                photo,
                                first,
                                model,
                                st.session_state.get("caption_layer", 0),
                                st.session_state.get("caption_cmap", COLORMAPS[0]),
                                st.session_state.get("caption_alpha", OPACITY.default),
                            )
                        )
                        if first
                        else []
                    )
    with result_column:
        shown: Captioned | None = st.session_state.get(CAPTIONED)
        if shown is None:
            st.caption("The captions appear here.")
        else:
            show_captions(shown.captions)
            st.caption(shown.status)
        word_map_controls(model, shown)
    tiles = st.session_state.get(WORD_MAPS) or []
    if tiles:
        st.markdown(f"**{WORD_MAPS_TITLE}** (the decoder's cross-attention)")
        st.image([image for image, _ in tiles], caption=[text for _, text in tiles], width=TILE_WIDTH)
        teacher_note("caption-words")


def captioned_uploads(files: list, model: str, prompt: str, settings: dict[str, Any]) -> CaptionedFiles:
    paths = [path for _, path in saved_uploads(files)]
    with load_notice() as on_load:
        chosen_prompt = prompt_to_use(model, prompt, on_load)
        with st.spinner(f"Captioning {len(paths)} file(s) ..."):
            results = caption_files(paths, model=model, prompt=chosen_prompt, on_load=on_load, **settings)
    return CaptionedFiles(results, write_caption_csv(results, work_folder() / CAPTIONS_CSV))


def many_images(model: str, prompt: str, settings: dict[str, Any]) -> None:
    files = st.file_uploader(FILES_LABEL, accept_multiple_files=True, key="caption_files")
    forget_when_changed([MANY_RESULT], model, files, marker="caption_batch_made_from")
    if st.button(CAPTION_ALL_BUTTON, type="primary", key="caption_batch_run"):
        st.session_state.pop(MANY_RESULT, None)  # the last table must not stand under this click's error
        if not files:
            st.error(NO_FILES)
        else:
            result = shown_errors(lambda: captioned_uploads(files, model, prompt, settings))
            if result is not None:
                st.session_state[MANY_RESULT] = result
    shown: CaptionedFiles | None = st.session_state.get(MANY_RESULT)
    if shown is None:
        return
    st.markdown(batch_summary(shown.results, DONE_CAPTIONED))
    st.dataframe(
        pd.DataFrame(caption_table(shown.results), columns=list(CAPTION_CSV_COLUMNS)),
        hide_index=True,
        key="caption_table",
        width="stretch",
    )
    csv_download("Download the CSV", shown.csv_path, key="caption_csv")


def render() -> None:
    st.header(CAPTION_TITLE)
    st.markdown(CAPTION_INTRO)
    model_column, prompt_column = st.columns([3, 2])
    with model_column:
        # The finished captioner runs too: the Train page's "Use this model in the Caption tab" puts one here.
        model = model_box(
            CAPTIONER_LABEL,
            CAPTIONER_CHOICES,
            CAPTION_MODEL_KEY,
            DEFAULT_CAPTIONER,
            help=CAPTION_MODEL_INFO,
            with_runs=True,
            task="caption",
        )
    with prompt_column:
        # Switched off, saying why, when the model is known to take no text (known from its config on disk).
        support = prompt_support(model)
        prompt = st.text_input(
            PROMPT_LABEL,
            placeholder=PROMPT_PLACEHOLDER,
            key="caption_prompt",
            disabled=support is False,
            help=PROMPT_INFO[support],
        )
        if support is False:
            st.caption(PROMPT_INFO[False])
    settings = decoding_controls()
    one_tab, many_tab = st.tabs([ONE_IMAGE_TAB, MANY_IMAGES_TAB])
    with one_tab:
        one_image(model, prompt, settings)
    with many_tab:
        many_images(model, prompt, settings)


if __name__ == "__main__":
    render()
