"""Image captioning with ViT-GPT2 (VisionEncoderDecoder) or BLIP: batched generate, and each word's image map."""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, cast

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import (  # imported up front: lazy resolution is not thread-safe (see core/models.py)
    AutoConfig,
    AutoImageProcessor,
    AutoTokenizer,
    BlipForConditionalGeneration,
    BlipProcessor,
    VisionEncoderDecoderModel,
)

from .attention import _is_count, _local_config, cls_map, model_input_image
from .classify import check_batch_size
from .gpu import gpu_work
from .images import ImageInput, load_image, load_images
from .models import LoadedModel, _load
from .types import CaptionAttention, OnLoad, OnRun, run_since

DEFAULT_CAPTIONER = "nlpconnect/vit-gpt2-image-captioning"

Caption = str | list[str]


def preload_captioner_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """The captioner a call of caption (or caption_files) will use, loaded into the cache (see core.gpu)."""
    load_captioner(call["model"], device=call["device"], precision=call["precision"], on_load=on_load)


def _preload_word_maps_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """caption_attention's models: the eager-attention captioner, and the captioner itself when it writes the text."""
    if call["text"] is None:
        preload_captioner_for(call, on_load)
    load_captioner(
        call["model"], device=call["device"], precision=call["precision"], attn_implementation="eager", on_load=on_load
    )


@gpu_work(preload=preload_captioner_for)
def caption(
    images: ImageInput | list[ImageInput],
    model: str = DEFAULT_CAPTIONER,
    max_new_tokens: int = 20,
    num_beams: int = 3,
    do_sample: bool = False,
    *,
    top_p: float | None = None,
    temperature: float | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    num_return_sequences: int = 1,
    prompt: str | None = None,
    batch_size: int = 8,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
    on_run: OnRun = None,
    **generate_kwargs: Any,
) -> Caption | list[Caption]:
    """A caption per image (a list of captions when num_return_sequences > 1); a list in gives a list out.
    `on_load` hears the model's name before a load that may download; `on_run` hears what the call ran on."""
    single = not isinstance(images, (list, tuple))
    check_generation(max_new_tokens, num_beams, do_sample, num_return_sequences, top_p, temperature)
    check_batch_size(batch_size)
    pil_images = load_images(images)
    loaded = load_captioner(model, device=device, precision=precision, on_load=on_load)
    check_prompt(loaded, prompt)
    started = time.perf_counter()
    settings = generation_settings(
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=do_sample,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        num_return_sequences=num_return_sequences,
        **generate_kwargs,
    )
    texts = generate_captions(loaded, pil_images, settings, prompt=prompt, batch_size=batch_size)
    results: list[Caption] = [
        group if num_return_sequences > 1 else group[0] for group in _chunks(texts, num_return_sequences)
    ]
    if on_run is not None:
        on_run(run_since(loaded, started))
    return results[0] if single else results


def prompt_support(model: str) -> bool | None:
    """Whether a captioner continues a text prompt (BLIP) or not (ViT-GPT2), from its config alone when that
    is already on this machine; None when it is not (a front end then waits for the first run to know)."""
    try:
        return _model_type(model, local_files_only=True) == "blip"
    except Exception:  # not downloaded yet, not a folder, no config: unknown, not an error
        return None


def decoder_layer_count(model: str) -> int | None:
    """How many decoder layers a captioner has (caption_attention's `layer` runs 1 to this), from its config alone
    when that is already on this machine; None when it is not, or the config names no count."""
    config = _local_config(model)
    model_type = getattr(config, "model_type", None)
    decoder = config.text_config if model_type == "blip" else getattr(config, "decoder", None)
    count = getattr(decoder, "num_hidden_layers", None)
    return count if _is_count(count) else None


@gpu_work(preload=_preload_word_maps_for)
def caption_attention(
    image: ImageInput,
    text: str | None = None,
    model: str = DEFAULT_CAPTIONER,
    *,
    layer: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
    **caption_settings: Any,
) -> CaptionAttention:
    """Where each word of a caption came from: the cross-attention from the decoder position that produced the
    word to the image patches, averaged over heads (and over layers, or one 1-based `layer`), max 1 per word.

    `text` is any caption, the model's own or one the user typed; None captions the image first with
    `caption_settings`. The caption is fed back through the decoder in one pass (teacher forcing), which gives
    the same attention that generate() saw step by step for its own words. The result's `run` times the mapping
    pass (not the captioning before it); `on_load` hears each model's name before a load that may download.
    """
    picture = load_image(image)
    if text is None:
        captions = caption(picture, model, device=device, precision=precision, on_load=on_load, **caption_settings)
        text = captions if isinstance(captions, str) else cast(str, captions[0])  # the first of several asked for
    if not isinstance(text, str) or not text.strip():
        raise ValueError("No caption to map: caption the image first, or type a caption.")
    loaded = load_captioner(model, device=device, precision=precision, attn_implementation="eager", on_load=on_load)
    started = time.perf_counter()
    processor: CaptionProcessor = loaded.processor
    token_ids = processor.tokenizer(text.strip(), add_special_tokens=False)["input_ids"]
    if not token_ids:
        raise ValueError(f"The caption '{text}' has no tokens this model knows.")
    pixel_values = caption_inputs(loaded, [picture], prompt=None)["pixel_values"]
    decoder_ids = torch.tensor([[_decoder_start(loaded), *token_ids]], device=loaded.device)
    with torch.inference_mode():
        layers = _cross_attentions(loaded, pixel_values, decoder_ids)
    layer_index = _check_layer(layer, len(layers))
    chosen = layers if layer_index is None else layers[layer_index : layer_index + 1]
    # (layers, heads, positions, patches) -> (positions, patches); position i is the query that produced word i.
    fused = torch.stack([attention[0].float() for attention in chosen]).mean(dim=(0, 1))[: len(token_ids)].cpu()
    grid_size = _encoder_grid(loaded, pixel_values)
    num_prefix_tokens = fused.shape[-1] - grid_size[0] * grid_size[1]
    maps = np.stack([cls_map(row.numpy()[None], num_prefix_tokens, grid_size) for row in fused])
    return CaptionAttention(
        caption=text.strip(),
        tokens=tuple(processor.tokenizer.decode([token]).strip() for token in token_ids),
        maps=maps,
        grid_size=grid_size,
        model_input=model_input_image(pixel_values, processor.image_processor),
        model=loaded.name,
        run=run_since(loaded, started),
    )


def load_captioner(
    name: str,
    device: str | None = None,
    precision: str | None = None,
    attn_implementation: str = "sdpa",
    *,
    on_load: OnLoad = None,
) -> LoadedModel:
    """A ViT-GPT2 or BLIP captioner with its CaptionProcessor, from the engine's cache after the first call.
    Word maps need attn_implementation="eager" (SDPA returns no attention weights): a second cache entry."""
    return _load(name, CaptionModel, CaptionProcessor, device, precision, attn_implementation, on_load=on_load)


def _decoder_start(loaded: LoadedModel) -> int:
    """The token generate() starts from: BLIP's [DEC] (text bos), ViT-GPT2's decoder_start_token_id."""
    config = loaded.model.config
    start = config.text_config.bos_token_id if loaded.processor.conditional else config.decoder_start_token_id
    if start is None:
        start = loaded.model.generation_config.decoder_start_token_id
    if start is None:
        raise ValueError(f"'{loaded.name}' has no decoder start token in its config, so its words cannot be mapped.")
    return int(start)


def _cross_attentions(loaded: LoadedModel, pixel_values: torch.Tensor, decoder_ids: torch.Tensor):
    """Per decoder layer, (1, heads, positions, encoder tokens) attention weights of the text onto the image."""
    model = loaded.model
    if loaded.processor.conditional:  # BLIP: the text decoder reads the vision tower's tokens
        image_tokens = model.vision_model(pixel_values=pixel_values)[0]
        outputs = model.text_decoder(input_ids=decoder_ids, encoder_hidden_states=image_tokens, output_attentions=True)
    else:
        # The start token is GPT-2's pad token too: the all-ones mask says none of these is padding.
        outputs = model(
            pixel_values=pixel_values,
            decoder_input_ids=decoder_ids,
            decoder_attention_mask=torch.ones_like(decoder_ids),
            output_attentions=True,
        )
    layers = outputs.cross_attentions
    if not layers or any(attention is None for attention in layers):
        raise ValueError(f"'{loaded.name}' returned no cross-attention weights, so its words cannot be mapped.")
    return layers


def _encoder_grid(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[int, int]:
    config = loaded.model.config
    encoder = config.vision_config if loaded.processor.conditional else config.encoder
    patch = getattr(encoder, "patch_size", None)
    if patch is None:
        raise ValueError(f"'{loaded.name}' has an image encoder without patches, so its words cannot be mapped.")
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return pixel_values.shape[-2] // patch_h, pixel_values.shape[-1] // patch_w


def _check_layer(layer: int | None, num_layers: int) -> int | None:
    if layer is None or layer == 0:
        return None
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 1 <= layer <= num_layers:
        raise ValueError(
            f"The decoder has {num_layers} layers: pick a layer from 1 to {num_layers} (0 averages them all), "
            f"not {layer!r}."
        )
    return int(layer) - 1


def _model_type(name: str, **kwargs: Any) -> str:
    config = AutoConfig.from_pretrained(
        name,
        local_files_only=kwargs.get("local_files_only", False),
        trust_remote_code=kwargs.get("trust_remote_code", False),
    )
    return config.model_type


class CaptionModel:
    """A from_pretrained that picks the model class from the checkpoint's config (one loader call for both kinds)."""

    @staticmethod
    def from_pretrained(name: str, **kwargs: Any):
        model_type = _model_type(name, **kwargs)
        if model_type == "blip":
            return BlipForConditionalGeneration.from_pretrained(name, **kwargs)
        if model_type == "vision-encoder-decoder":
            return VisionEncoderDecoderModel.from_pretrained(name, **kwargs)
        # No "attn" in this message: the loader retries with eager attention on errors that mention it.
        raise ValueError(
            f"it is a '{model_type}' model, not a captioner; pick a ViT-GPT2 "
            "(vision-encoder-decoder) or BLIP captioning model."
        )


@dataclass(frozen=True)
class CaptionProcessor:
    """What a captioner needs besides its weights: pixels in, token ids out, and whether it takes a prompt."""

    image_processor: Any
    tokenizer: Any
    conditional: bool  # BLIP continues a text prompt; ViT-GPT2 has no text input

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> "CaptionProcessor":
        if _model_type(name, **kwargs) == "blip":
            processor = BlipProcessor.from_pretrained(name, **kwargs)
            return cls(processor.image_processor, processor.tokenizer, conditional=True)
        image_processor = AutoImageProcessor.from_pretrained(name, **kwargs)
        return cls(image_processor, AutoTokenizer.from_pretrained(name, **kwargs), conditional=False)


def generation_settings(
    *,
    top_p: float | None = None,
    temperature: float | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    **always: Any,
) -> dict[str, Any]:
    """generate() keyword arguments; options left at None are not passed, so the model's generation_config decides."""
    optional = dict(
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
    )
    return {**always, **{key: value for key, value in optional.items() if value is not None}}


def generate_captions(
    loaded: LoadedModel,
    images: Sequence[Image.Image],
    settings: dict[str, Any],
    prompt: str | None = None,
    batch_size: int = 8,
) -> list[str]:
    """Decoded, stripped captions: num_return_sequences consecutive ones per image, in image order."""
    starts = range(0, len(images), batch_size)
    texts: list[str] = []
    for start in tqdm(starts, desc="Captioning", unit="batch", disable=len(starts) < 2, leave=False):
        inputs = caption_inputs(loaded, images[start : start + batch_size], prompt)
        if not loaded.processor.conditional:
            # The start token is GPT-2's pad token too: the mask says it is not padding (else a warning per call).
            rows = len(inputs["pixel_values"])
            inputs["decoder_attention_mask"] = torch.ones(rows, 1, dtype=torch.long, device=loaded.device)
        with torch.inference_mode():
            token_ids = loaded.model.generate(**inputs, **_pad_setting(loaded, settings))
        decoded = loaded.processor.tokenizer.batch_decode(token_ids, skip_special_tokens=True)
        texts.extend(text.strip() for text in decoded)
    return texts


def caption_inputs(loaded: LoadedModel, images: Sequence[Image.Image], prompt: str | None) -> dict[str, torch.Tensor]:
    """pixel_values in the model's device and dtype, plus the tokenized prompt for conditional captioning."""
    processor: CaptionProcessor = loaded.processor
    pixel_values = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    inputs = {"pixel_values": pixel_values.to(loaded.device, loaded.dtype)}
    if prompt:
        tokens = processor.tokenizer([prompt] * len(images), return_tensors="pt")
        inputs["input_ids"] = tokens["input_ids"].to(loaded.device)
        inputs["attention_mask"] = tokens["attention_mask"].to(loaded.device)
    return inputs


def _pad_setting(loaded: LoadedModel, settings: dict[str, Any]) -> dict[str, Any]:
    # GPT-2 has no pad token; without one generate warns on every call and pads finished beams with eos anyway.
    # BLIP passes its own pad_token_id to generate, so a second one would be a duplicate keyword.
    if loaded.processor.conditional or "pad_token_id" in settings:
        return settings
    if getattr(loaded.model.generation_config, "pad_token_id", None) is not None:
        return settings
    eos = getattr(loaded.model.generation_config, "eos_token_id", None) or loaded.processor.tokenizer.eos_token_id
    return {**settings, "pad_token_id": eos} if eos is not None else settings


def check_prompt(loaded: LoadedModel, prompt: str | None) -> None:
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError(f"prompt must be text, not {type(prompt).__name__}.")
    if prompt and not loaded.processor.conditional:
        raise ValueError(
            f"'{loaded.name}' cannot continue a prompt: conditional captioning needs a BLIP model "
            "(e.g. Salesforce/blip-image-captioning-base). Clear the prompt or pick a BLIP model."
        )


def check_generation(
    max_new_tokens: int,
    num_beams: int,
    do_sample: bool,
    num_return_sequences: int,
    top_p: float | None,
    temperature: float | None,
) -> None:
    """Reject settings generate() would refuse or silently ignore, with a message a UI can show as is."""
    _check_whole(max_new_tokens, "max_new_tokens")
    _check_whole(num_beams, "num_beams")
    _check_whole(num_return_sequences, "num_return_sequences")
    if not do_sample and num_return_sequences > num_beams:
        raise ValueError(
            f"num_return_sequences ({num_return_sequences}) cannot exceed num_beams ({num_beams}) "
            "without sampling: raise num_beams or turn on do_sample."
        )
    if temperature is not None and not temperature > 0:
        raise ValueError(
            f"temperature must be greater than 0, not {temperature!r}; use do_sample=False for deterministic captions."
        )
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p!r}.")


def _check_whole(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.")


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def accepts_prompt(
    model: str,
    device: str | None = None,
    precision: str | None = None,
    *,
    on_load: OnLoad = None,
) -> bool:
    """Whether the captioner continues a text prompt (loads it, from the cache after the first call)."""
    return load_captioner(model, device=device, precision=precision, on_load=on_load).processor.conditional
