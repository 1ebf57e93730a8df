"""The captioner a training run starts from: a saved VisionEncoderDecoder, one wired from an image encoder and a text
decoder, or the small random vit-gpt2-scratch whose tokenizer is trained on the run's own captions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoTokenizer,
    GPT2Config,
    GPT2Tokenizer,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTImageProcessor,
)

SCRATCH_CAPTIONER = "vit-gpt2-scratch"
END_OF_TEXT = "<|endoftext|>"

# Sized for the generated shapes set (64-px images, a vocabulary of a few dozen words) on a 2-core CPU: patches of
# 8 px (4 px learnt no better per epoch at 5x the time); a wider or deeper encoder learnt slower. Measured with the
# default settings on the 400-image example set: validation ROUGE-L 79-83 after 40 epochs in about a minute; short of
# the 90 aimed at: the remaining errors are shapes and counts of images it has not seen (it fits its training set).
SCRATCH_CAPTIONERS: dict[str, dict[str, dict[str, Any]]] = {
    SCRATCH_CAPTIONER: dict(
        encoder=dict(
            image_size=64,
            patch_size=8,
            hidden_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=512,
            # A few hundred pictures are memorised within 20 epochs without it.
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
        ),
        decoder=dict(n_embd=128, n_layer=4, n_head=4, n_inner=512),
        tokenizer=dict(vocab_size=400),
    ),
}
NOT_SUPPORTED_TYPES = {"blip": "BLIP", "blip-2": "BLIP-2", "instructblip": "InstructBLIP"}


@dataclass(frozen=True)
class Captioner:
    """A model ready to train, with the processor and tokenizer saved beside it."""

    model: Any  # VisionEncoderDecoderModel
    processor: Any  # an image processor
    tokenizer: Any


def build_captioner(
    *,
    model_name_or_path: str | None,
    encoder_model_name_or_path: str | None,
    decoder_model_name_or_path: str | None,
    config_name: str | None,
    captions: Sequence[str],
    max_target_length: int,
    seed: int,
) -> Captioner:
    """The starting captioner: model_name_or_path first, then encoder + decoder, then the scratch config."""
    if model_name_or_path:
        return load_captioner(model_name_or_path)
    if encoder_model_name_or_path and decoder_model_name_or_path:
        return wire_captioner(encoder_model_name_or_path, decoder_model_name_or_path)
    return scratch_captioner(config_name or SCRATCH_CAPTIONER, captions, max_target_length=max_target_length, seed=seed)


def load_captioner(name: str) -> Captioner:
    """A saved VisionEncoderDecoder captioner (a hub id, a folder, or a run folder's checkpoint)."""
    try:
        model_type = AutoConfig.from_pretrained(name).model_type
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not read the captioner '{name}': give a folder with config.json or a hub id that is "
            "downloaded (e.g. nlpconnect/vit-gpt2-image-captioning)."
        ) from error
    if model_type in NOT_SUPPORTED_TYPES:
        raise ValueError(
            f"Training a {NOT_SUPPORTED_TYPES[model_type]} captioner ('{name}') is not supported yet: start from a "
            f"ViT-GPT-2 captioner such as nlpconnect/vit-gpt2-image-captioning, or from {SCRATCH_CAPTIONER}."
        )
    if model_type != "vision-encoder-decoder":
        raise ValueError(
            f"'{name}' is a {model_type} model, not a captioner: give a VisionEncoderDecoder captioner, or an image "
            "encoder and a text decoder (--encoder_model_name_or_path, --decoder_model_name_or_path)."
        )
    try:
        model = VisionEncoderDecoderModel.from_pretrained(name)
        processor = AutoImageProcessor.from_pretrained(name)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"The captioner '{name}' is incomplete ({error}); it needs its weights, image processor and tokenizer."
        ) from error
    return Captioner(model, processor, _with_pad(tokenizer, model))


def wire_captioner(encoder_name: str, decoder_name: str) -> Captioner:
    """A new captioner from a pretrained image encoder and text decoder, wired as the VisionEncoderDecoder docs say:
    the decoder gains cross-attention; decoder start, pad and EOS tokens come from the decoder's tokenizer (GPT-2
    has no pad token, so its EOS pads)."""
    try:
        processor = AutoImageProcessor.from_pretrained(encoder_name)
        tokenizer = AutoTokenizer.from_pretrained(decoder_name)
        # The decoder's config made a decoder with cross-attention here: transformers 5 reads `is_decoder` from a
        # GPT-2 config that has none when it is left to do so.
        decoder_config = AutoConfig.from_pretrained(decoder_name)
        decoder_config.is_decoder = True
        decoder_config.add_cross_attention = True
        model = VisionEncoderDecoderModel.from_encoder_decoder_pretrained(
            encoder_name, decoder_name, decoder_config=decoder_config
        )
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not build a captioner from the encoder '{encoder_name}' and the decoder '{decoder_name}' "
            f"({error}): give folders or downloaded hub ids, e.g. google/vit-base-patch16-224-in21k and gpt2."
        ) from error
    return Captioner(model, processor, _with_pad(tokenizer, model))


def _with_pad(tokenizer, model):
    """The tokenizer with a pad token (its EOS when it has none), and the model's start/pad/EOS ids set from it."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if start is None or end is None:
        raise ValueError("The decoder's tokenizer has no start or end token: use a GPT-2-like decoder.")
    for settings in (model.config, model.generation_config):
        if getattr(settings, "decoder_start_token_id", None) is None:
            settings.decoder_start_token_id = start
        settings.pad_token_id = tokenizer.pad_token_id
        settings.eos_token_id = end
    return tokenizer


def train_tokenizer(captions: Sequence[str], vocab_size: int) -> GPT2Tokenizer:
    """A GPT-2 style byte-level BPE trained on the captions (so a scratch run needs no download)."""
    from tokenizers import ByteLevelBPETokenizer

    if not captions:
        raise ValueError("No captions to train the tokenizer on: the training set is empty.")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(captions), vocab_size=vocab_size, min_frequency=1, special_tokens=[END_OF_TEXT])
    return GPT2Tokenizer(tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT)


def scratch_captioner(config_name: str, captions: Sequence[str], *, max_target_length: int, seed: int) -> Captioner:
    """A small random ViT encoder + GPT-2 decoder; the tokenizer is trained on the captions."""
    if config_name not in SCRATCH_CAPTIONERS:
        raise ValueError(f"Unknown captioner config '{config_name}': use {', '.join(SCRATCH_CAPTIONERS)}.")
    preset = SCRATCH_CAPTIONERS[config_name]
    tokenizer = train_tokenizer(captions, preset["tokenizer"]["vocab_size"])
    encoder = ViTConfig(**preset["encoder"])
    decoder = GPT2Config(
        **preset["decoder"],
        n_positions=max(64, max_target_length + 2),
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    # from_encoder_decoder_configs makes the GPT-2 a decoder with cross-attention to the image features.
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))
    _sincos_positions(model.encoder)
    side = preset["encoder"]["image_size"]
    # Images from 0-255 to -1..1, as google/vit-* do.
    processor = ViTImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Captioner(model, processor, _with_pad(tokenizer, model))


def _sincos_positions(encoder) -> None:
    """Start a random ViT's position embeddings as 2-D sine-cosine waves (as MAE does): "above" and "left of" are
    then in the patch features from the first step, where learnt-from-noise positions take a small set many epochs
    to find."""
    table = encoder.embeddings.position_embeddings  # (1, 1 + grid * grid, hidden); the first is the CLS token's
    hidden, grid = table.shape[-1], math.isqrt(table.shape[1] - 1)
    quarter = hidden // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, columns = torch.meshgrid(
        torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij"
    )
    waves = []
    for axis in (rows.flatten(), columns.flatten()):
        angles = axis[:, None] * frequencies[None, :]
        waves += [angles.sin(), angles.cos()]
    codes = torch.cat(waves, dim=1)
    with torch.no_grad():
        table.zero_()
        table[0, 1:, : codes.shape[1]] = codes


def load_run_captioner(folder: Path) -> Captioner:
    """A run's own saved captioner (its checkpoint when resuming)."""
    model = VisionEncoderDecoderModel.from_pretrained(folder)
    return Captioner(model, AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder))


def caption_tokenizer(
    captions: Sequence[str],
    *,
    model_name_or_path: str | None,
    decoder_model_name_or_path: str | None,
    config_name: str | None,
):
    """The tokenizer a run would train with: the captioner's, the decoder's, or (from scratch) one trained on these
    captions; a ValueError when it cannot be read (offline with a model that was never downloaded)."""
    name = model_name_or_path or decoder_model_name_or_path
    if not name:
        preset = SCRATCH_CAPTIONERS.get(config_name or SCRATCH_CAPTIONER)
        if preset is None:
            raise ValueError(f"Unknown captioner config '{config_name}': use {', '.join(SCRATCH_CAPTIONERS)}.")
        return train_tokenizer(captions, preset["tokenizer"]["vocab_size"])
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not read the tokenizer of '{name}' ({type(error).__name__}): connect to the Hub once, or give a "
            "folder that holds it."
        ) from error


def caption_token_lengths(captions: Sequence[str], tokenizer) -> tuple[int, ...]:
    """Each caption's length in tokens, with the end token training adds (what max_target_length cuts)."""
    if not captions:
        return ()
    return tuple(len(ids) + 1 for ids in tokenizer(list(captions), add_special_tokens=False)["input_ids"])
