"""The Caption page: captions with decoding controls, where each word came from, and many files to a CSV."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.batch import CAPTION_CSV_COLUMNS, batch_summary, caption_files, caption_table, write_caption_csv
from core.caption import (
    CAPTIONER_CHOICES, DECODING_STRATEGIES, DEFAULT_CAPTIONER, caption, caption_attention, decoding_settings,
    load_captioner, prompt_support, usable_prompt, word_overlays,
)
from core.models import describe_run
from core.types import FileCaptions
from ui.streamlit_pages.common import (
    NO_FILES, NO_IMAGE, Photo, csv_download, load_announced, model_box, photo_input, saved_uploads, shown_errors,
    work_folder,
)
from ui.texts import CAPTION_INTRO, CAPTION_MODEL_INFO, COLORMAPS, EMPTY_CAPTION, PROMPT_INFO

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
    """caption()'s keyword arguments from the Decoding controls (core.caption.decoding_settings decides which
    controls count for the chosen strategy)."""
    with st.expander("Decoding"):
        strategy_column, beams_column, count_column = st.columns([2, 1, 1])
        strategy = strategy_column.radio("Decoding", DECODING_STRATEGIES, index=1, horizontal=True,
                                         key="caption_strategy")
        num_beams = beams_column.slider("Beams (beam search)", 1, 8, 3, key="caption_beams")
        num_captions = count_column.slider("Captions to return", 1, 5, 1, key="caption_count",
                                           help="up to the number of beams, unless sampling")
        tokens_column, top_p_column, temperature_column, penalty_column, ngram_column = st.columns(5)
        max_new_tokens = tokens_column.slider("Max new tokens", 1, 64, 20, key="caption_max_tokens")
        top_p = top_p_column.slider("top-p (sampling)", 0.05, 1.0, 0.9, 0.05, key="caption_top_p")
        temperature = temperature_column.slider("Temperature (sampling)", 0.1, 2.0, 1.0, 0.05,
                                                key="caption_temperature")
        repetition_penalty = penalty_column.slider("Repetition penalty (1 = off)", 1.0, 2.0, 1.0, 0.05,
                                                   key="caption_penalty")
        no_repeat = ngram_column.slider("No repeated n-grams of size (0 = off)", 0, 5, 0, key="caption_no_repeat")
    return shown_errors(lambda: decoding_settings(
        strategy, num_beams=num_beams, num_return_sequences=num_captions, max_new_tokens=max_new_tokens,
        top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat,
    )) or {}


def prompt_to_use(model: str, prompt: str) -> str | None:
    """The prompt when this captioner continues one; otherwise None, with a notice (the caption still runs)."""
    text, left_out = usable_prompt(model, prompt)
    if left_out:
        st.warning(f"{PROMPT_INFO[False]} The prompt was left out.")
    return text


def captioned(photo: Photo, model: str, prompt: str, settings: dict[str, Any]) -> Captioned:
    load_announced(model, loader=load_captioner)
    chosen_prompt = prompt_to_use(model, prompt)
    started = time.perf_counter()
    with st.spinner("Captioning ..."):
        texts = caption(photo.data, model=model, prompt=chosen_prompt, **settings)
    elapsed_ms = (time.perf_counter() - started) * 1000
    loaded = load_captioner(model)
    return Captioned(photo, [texts] if isinstance(texts, str) else list(texts),
                     describe_run(loaded.name, loaded.device, loaded.dtype, elapsed_ms))


def mapped_words(photo: Photo, text: str, model: str, layer: int, cmap: str, alpha: float) -> list:
    load_announced(model, loader=lambda name: load_captioner(name, attn_implementation="eager"))
    result = caption_attention(photo.data, text or "", model=model, layer=layer or None)
    return word_overlays(result, photo.data, alpha=alpha, cmap=cmap)


def show_captions(texts: list[str]) -> None:
    shown = [text or EMPTY_CAPTION for text in texts]
    if len(shown) == 1:
        st.subheader(shown[0])
    else:
        st.markdown("\n".join(f"{index}. {text}" for index, text in enumerate(shown, start=1)))


def word_map_controls(model: str, shown: Captioned | None) -> None:
    """Pick a caption (or type one) and see each word's cross-attention over the photo."""
    captions = shown.captions if shown is not None else []
    to_map = st.selectbox("Caption to map", captions, index=0 if captions else None, accept_new_options=True,
                          placeholder="one of the captions, or type your own",
                          key=f"caption_to_map:{st.session_state.get(ROUND, 0)}")
    layer_column, cmap_column, alpha_column = st.columns(3)
    layer = layer_column.slider("Decoder layer (0 = mean of all)", 0, 12, 0, key="caption_layer")
    cmap = cmap_column.selectbox("Colormap", COLORMAPS, key="caption_cmap")
    alpha = alpha_column.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="caption_alpha")
    if st.button("Map the words", key="caption_map"):
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
        if st.button("Caption", type="primary", key="caption_run"):
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
                    st.session_state[WORD_MAPS] = shown_errors(lambda: mapped_words(
                        photo, first, model, st.session_state.get("caption_layer", 0),
                        st.session_state.get("caption_cmap", COLORMAPS[0]),
                        st.session_state.get("caption_alpha", 0.5))) if first else []
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
        st.markdown("**Where each word came from** (the decoder's cross-attention)")
        st.image([image for image, _ in tiles], caption=[text for _, text in tiles], width=TILE_WIDTH)


def captioned_uploads(files: list, model: str, prompt: str, settings: dict[str, Any]) -> CaptionedFiles:
    paths = [path for _, path in saved_uploads(files)]
    load_announced(model, loader=load_captioner)
    chosen_prompt = prompt_to_use(model, prompt)
    with st.spinner(f"Captioning {len(paths)} file(s) ..."):
        results = caption_files(paths, model=model, prompt=chosen_prompt, **settings)
    return CaptionedFiles(results, write_caption_csv(results, work_folder() / "captions.csv"))


def many_images(model: str, prompt: str, settings: dict[str, Any]) -> None:
    files = st.file_uploader("Images or zips of images", accept_multiple_files=True, key="caption_files")
    if st.button("Caption all", type="primary", key="caption_batch_run"):
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
    st.markdown(batch_summary(shown.results, "captioned"))
    st.dataframe(pd.DataFrame(caption_table(shown.results), columns=list(CAPTION_CSV_COLUMNS)), hide_index=True,
                 key="caption_table", width="stretch")
    csv_download("Download the CSV", shown.csv_path, key="caption_csv")


def render() -> None:
    st.header("Caption")
    st.markdown(CAPTION_INTRO)
    model_column, prompt_column = st.columns([3, 2])
    with model_column:
        model = model_box("Captioner", CAPTIONER_CHOICES, "caption_model", DEFAULT_CAPTIONER, help=CAPTION_MODEL_INFO)
    with prompt_column:
        # Switched off, saying why, when the model is known to take no text (known from its config on disk).
        support = prompt_support(model)
        prompt = st.text_input("Prompt (BLIP only)", placeholder="a photograph of", key="caption_prompt",
                               disabled=support is False, help=PROMPT_INFO[support])
        if support is False:
            st.caption(PROMPT_INFO[False])
    settings = decoding_controls()
    one_tab, many_tab = st.tabs(["One image", "Many images"])
    with one_tab:
        one_image(model, prompt, settings)
    with many_tab:
        many_images(model, prompt, settings)


if __name__ == "__main__":
    render()
