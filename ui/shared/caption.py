"""The Caption tab's glue, for both front ends: decoding controls to caption() options, the prompt, word pictures."""

from __future__ import annotations

from typing import Any

from PIL import Image

from core import CaptionAttention, OnLoad, accepts_prompt, load_image, overlay
from ui.shared.texts import EMPTY_CAPTION
from ui.shared.widgets import DECODING_STRATEGIES, DEFAULT_DECODING


def decoding_settings(
    strategy: str = DEFAULT_DECODING,
    *,
    num_beams: int = 3,
    top_p: float = 0.9,
    temperature: float = 1.0,
    max_new_tokens: int = 20,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    num_return_sequences: int = 1,
) -> dict[str, Any]:
    """caption() keyword arguments for a front end's controls: the strategy decides which controls count
    (beams only for beam search, top_p and temperature only for sampling); 1.0 and 0 mean "off"."""
    if strategy not in DECODING_STRATEGIES:
        raise ValueError(f"Unknown decoding '{strategy}'; choose one of {', '.join(DECODING_STRATEGIES)}.")
    settings: dict[str, Any] = dict(
        max_new_tokens=int(max_new_tokens),
        num_return_sequences=int(num_return_sequences),
        num_beams=int(num_beams) if strategy == "beam search" else 1,
        do_sample=strategy == "sampling",
    )
    if strategy == "sampling":
        settings.update(top_p=float(top_p), temperature=float(temperature))
    if repetition_penalty != 1.0:
        settings["repetition_penalty"] = float(repetition_penalty)
    if no_repeat_ngram_size:
        settings["no_repeat_ngram_size"] = int(no_repeat_ngram_size)
    return settings


def usable_prompt(model: str, prompt: str | None, *, on_load: OnLoad = None) -> tuple[str | None, bool]:
    """The prompt to pass to caption() for this captioner, and whether a typed prompt was left out because the
    model cannot continue one (ViT-GPT2): a front end says so, and the caption still runs without it. Asking
    loads the captioner when there is a prompt, so `on_load` is the engine's."""
    text = (prompt or "").strip()
    if not text:
        return None, False
    if not accepts_prompt(model, on_load=on_load):
        return None, True
    return text, False


def shown_captions(texts: str | list[str]) -> list[str]:
    """caption()'s answer as a list of captions to show, an empty one said in words."""
    return [text or EMPTY_CAPTION for text in ([texts] if isinstance(texts, str) else texts)]


def numbered(texts: list[str]) -> str:
    """Several captions as a Markdown numbered list."""
    return "\n".join(f"{index}. {text}" for index, text in enumerate(texts, start=1))


def word_overlays(
    result: CaptionAttention,
    image: Any = None,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    max_side: int = 512,
) -> list[tuple[Image.Image, str]]:
    """Each word's map over the image (the model's input when none is given), captioned with the word and its
    place; the image is shrunk to max_side first so a caption of 20 words over a large photo stays quick."""
    picture = load_image(image) if image is not None else result.model_input
    picture = picture.copy()
    picture.thumbnail((max_side, max_side))
    return [
        (overlay(picture, heatmap, alpha, cmap), f"{index}. {token}")
        for index, (token, heatmap) in enumerate(zip(result.tokens, result.maps), start=1)
    ]
