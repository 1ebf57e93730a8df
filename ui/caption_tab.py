"""The Caption tab: captions with decoding controls, each word's cross-attention map, and many files to a CSV."""

from __future__ import annotations

import gradio as gr

from core import (
    DEFAULT_CAPTIONER,
    OnLoad,
    RunInfo,
    caption,
    caption_attention,
    caption_files,
    example_images,
    prompt_support,
)
from ui.components import ImagePath
from ui.gradio_common import load_progress, output_folder, require_image, slider, teacher_note, user_errors
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
    CAPTION_TO_MAP,
    CAPTIONER_LABEL,
    COLORMAP_LABEL,
    COLORMAPS,
    DECODING_LABEL,
    FILES_LABEL,
    MANY_IMAGES_TAB,
    MAP_WORDS_BUTTON,
    NO_FILES,
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
    in_range,
)


def caption_tab(default_model: str = DEFAULT_CAPTIONER, choices: list[tuple[str, str]] | None = None) -> gr.Dropdown:
    """The tab; returns its model box, which the Train tab's "Use this model" fills with a captioner run.
    `choices` ((label, value) pairs, finished captioner runs among them) default to the suggested captioners."""
    gr.Markdown(CAPTION_INTRO)
    with gr.Row():
        model = gr.Dropdown(
            choices if choices is not None else list(dict.fromkeys([default_model, *CAPTIONER_CHOICES])),
            value=default_model,
            allow_custom_value=True,
            label=CAPTIONER_LABEL,
            info=CAPTION_MODEL_INFO,
            scale=3,
            min_width=300,
            elem_id="caption-model",
        )
        prompt = gr.Textbox(
            label=PROMPT_LABEL,
            placeholder=PROMPT_PLACEHOLDER,
            scale=2,
            min_width=240,
            **_prompt_box(default_model),
            elem_id="caption-prompt",
        )
    with gr.Accordion(DECODING_LABEL, open=False):
        with gr.Row():
            strategy = gr.Radio(list(DECODING_STRATEGIES), value=DEFAULT_DECODING, label=DECODING_LABEL, min_width=260)
            num_beams = slider(BEAMS)
            num_captions = slider(CAPTIONS)
        with gr.Row():
            max_new_tokens = slider(MAX_NEW_TOKENS)
            top_p = slider(TOP_P)
            temperature = slider(TEMPERATURE)
            repetition_penalty = slider(REPETITION_PENALTY)
            no_repeat = slider(NO_REPEAT_NGRAM)
    decoding = [strategy, num_beams, num_captions, max_new_tokens, top_p, temperature, repetition_penalty, no_repeat]
    with gr.Tabs():
        with gr.Tab(ONE_IMAGE_TAB):
            with gr.Row(equal_height=False):
                with gr.Column():
                    image = ImagePath(
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard", "webcam"],
                        label="Photo (upload, paste or webcam)",
                        height=320,
                        elem_id="caption-photo",
                    )
                    run = gr.Button(CAPTION_BUTTON, variant="primary")
                    gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
                with gr.Column():
                    captions = gr.Markdown(elem_id="captions", label="captions")
                    status = gr.Markdown(elem_id="caption-status", label="run")
                    with gr.Group():
                        to_map = gr.Dropdown(
                            [],
                            value=None,
                            allow_custom_value=True,
                            label=CAPTION_TO_MAP,
                            info="one of the captions, or type your own and press Map",
                            elem_id="caption-to-map",
                        )
                        with gr.Row():
                            layer = slider(decoder_layer_slider(default_model))
                            cmap = gr.Dropdown(COLORMAPS, value="jet", label=COLORMAP_LABEL)
                            alpha = slider(OPACITY)
                    map_words = gr.Button(MAP_WORDS_BUTTON)
            words = gr.Gallery(
                label=f"{WORD_MAPS_TITLE} (the decoder's cross-attention; click to enlarge)",
                columns=6,
                height=300,
                elem_id="word-maps",
            )
            teacher_note("caption-words")
        with gr.Tab(MANY_IMAGES_TAB):
            files = gr.File(
                file_count="multiple", file_types=["image", ".zip"], label=FILES_LABEL, elem_id="caption-files"
            )
            run_batch = gr.Button(CAPTION_ALL_BUTTON, variant="primary")
            summary = gr.Markdown(label="summary")
            table = gr.Dataframe(
                headers=list(CAPTION_CSV_COLUMNS),
                label="Captions",
                wrap=True,
                interactive=False,
                column_widths=["25%", "35%", "25%", "15%"],
            )
            csv_file = gr.File(label="Download CSV")

    word_inputs = [image, to_map, model, layer, cmap, alpha]
    captioned = run.click(
        caption_one, inputs=[image, model, prompt, *decoding], outputs=[captions, status, to_map], api_name="caption"
    )
    captioned.success(map_after_caption, inputs=word_inputs, outputs=[words], api_visibility="undocumented")
    # A Hub captioner's config is on this machine once it has run: the slider can follow its decoder now.
    captioned.success(fit_decoder_layer, inputs=[model, layer], outputs=[layer], api_visibility="undocumented")
    map_words.click(map_caption_words, inputs=word_inputs, outputs=[words], api_name="caption_words")
    run_batch.click(
        caption_many,
        inputs=[files, model, prompt, *decoding],
        outputs=[table, csv_file, summary],
        api_name="caption_batch",
    )
    model.change(
        lambda name: gr.update(**_prompt_box(name)), inputs=[model], outputs=[prompt], api_visibility="undocumented"
    )
    model.change(fit_decoder_layer, inputs=[model, layer], outputs=[layer], api_name="caption_layer_range")
    # Captions and maps belong to the model and photo that made them: a new one clears them.
    gr.on(
        [model.change, image.change],
        lambda: ("", "", gr.update(choices=[], value=None), []),
        outputs=[captions, status, to_map, words],
        api_visibility="undocumented",
        queue=False,
    )
    gr.on(
        [model.change, files.change],
        lambda: (None, None, ""),
        outputs=[table, csv_file, summary],
        api_visibility="undocumented",
        queue=False,
    )
    return model


def fit_decoder_layer(model, layer):
    """The decoder-layer slider fitted to this captioner's decoder, its value kept in range."""
    spec = decoder_layer_slider(model or "")
    return gr.update(maximum=spec.maximum, value=in_range(layer, spec))


def _prompt_box(model: str) -> dict:
    """The prompt box for this captioner: switched off, saying why, when the model is known to take no text."""
    support = prompt_support(model)
    return dict(interactive=support is not False, info=PROMPT_INFO[support])


def caption_one(
    image_path,
    model,
    prompt,
    strategy,
    num_beams,
    num_captions,
    max_new_tokens,
    top_p,
    temperature,
    repetition_penalty,
    no_repeat,
    progress=gr.Progress(track_tqdm=True),
):
    """The captions (a numbered list when several), a status line, and the captions offered for mapping."""
    require_image(image_path)
    runs: list[RunInfo] = []
    with user_errors():
        settings = _settings(
            strategy, num_beams, num_captions, max_new_tokens, top_p, temperature, repetition_penalty, no_repeat
        )
        on_load = load_progress(progress)
        texts = caption(
            image_path,
            model=model,
            prompt=_usable_prompt(model, prompt, on_load),
            on_load=on_load,
            on_run=runs.append,
            **settings,
        )
    texts = [texts] if isinstance(texts, str) else texts
    return _show_captions(texts), last_run_line(runs), gr.update(choices=texts, value=texts[0])


def map_caption_words(image_path, text, model, layer, cmap, alpha, progress=gr.Progress(track_tqdm=True)):
    """Each word of the caption over the photo, in caption order."""
    require_image(image_path)
    with user_errors():
        result = caption_attention(
            image_path, text or "", model=model, layer=int(layer) or None, on_load=load_progress(progress)
        )
        return word_overlays(result, image_path, alpha=float(alpha), cmap=cmap)


def map_after_caption(image_path, text, model, layer, cmap, alpha, progress=gr.Progress(track_tqdm=True)):
    # Right after captioning: an empty caption (a model can stop at once) has no words to map, which is no error.
    if not image_path or not (text or "").strip():
        return []
    return map_caption_words(image_path, text, model, layer, cmap, alpha, progress)


def caption_many(
    paths,
    model,
    prompt,
    strategy,
    num_beams,
    num_captions,
    max_new_tokens,
    top_p,
    temperature,
    repetition_penalty,
    no_repeat,
    progress=gr.Progress(track_tqdm=True),
):
    """A table of captions, its CSV, and a one-line summary."""
    if not paths:
        raise gr.Error(NO_FILES)
    with user_errors():
        settings = _settings(
            strategy, num_beams, num_captions, max_new_tokens, top_p, temperature, repetition_penalty, no_repeat
        )
        on_load = load_progress(progress)
        results = caption_files(
            paths, model=model, prompt=_usable_prompt(model, prompt, on_load), on_load=on_load, **settings
        )
    csv_path = write_caption_csv(results, output_folder() / CAPTIONS_CSV)
    return caption_table(results), str(csv_path), batch_summary(results, DONE_CAPTIONED)


def _settings(strategy, num_beams, num_captions, max_new_tokens, top_p, temperature, repetition_penalty, no_repeat):
    return decoding_settings(
        strategy,
        num_beams=int(num_beams),
        num_return_sequences=int(num_captions),
        max_new_tokens=int(max_new_tokens),
        top_p=float(top_p),
        temperature=float(temperature),
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=int(no_repeat),
    )


def _usable_prompt(model: str, prompt: str | None, on_load: OnLoad) -> str | None:
    """The prompt, or None with a notice when this captioner cannot continue one (the caption still runs)."""
    text, left_out = usable_prompt(model, prompt, on_load=on_load)
    if left_out:
        gr.Warning(PROMPT_LEFT_OUT)
    return text


def _show_captions(texts: list[str]) -> str:
    shown = shown_captions(texts)
    if len(shown) == 1:
        return f"### {shown[0]}"
    return numbered(shown)
