"""core.caption vs the ViT-GPT2 model-card recipe: captioning speed at equal generation length and bf16 fidelity."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image

from . import common
from .common import (
    aligned,
    interference_note,
    machine_cpu_seconds,
    machine_description,
    others_share,
    own_cpu_seconds,
    progress,
    ran_on,
    spread,
    time_rotating,
    verdict,
)

# The target: core at >= 2x the baseline's throughput on the same list of photos.
TARGET_THROUGHPUT_RATIO = 2.0
BATCH_SIZE = 8  # core.caption's default batch
# The nlpconnect/vit-gpt2-image-captioning model card: generate(pixel_values, max_length=16, num_beams=4).
# max_length counts the decoder start token, so that is 15 new tokens. Random weights emit EOS anywhere (or
# never), so both sides are pinned to exactly NEW_TOKENS with min_new_tokens: equal work per caption.
NUM_BEAMS = 4
NEW_TOKENS = 15
GPT2_VOCAB_SIZE = 50257  # the real GPT-2's: the LM head over it is a large share of every decoding step
DEFAULT_IMAGES = 8  # one core batch; the fp32 recipe costs ~2 s a photo, and every round runs it twice
# The real model's shapes (ViTConfig's defaults are ViT-B/16 at 224, GPT2Config's are GPT-2 124M); the smoke test
# shrinks them to run the whole benchmark in seconds.
ENCODER_SHAPE: dict[str, int] = {}
DECODER_SHAPE: dict[str, int] = {"vocab_size": GPT2_VOCAB_SIZE}

# Contenders, each one call over the whole list of photos; the last two are for information, with no target.
CONTENDERS = ("recipe", "core", "recipe_batch", "core_fp32")

# Sentences to train the offline stand-in for the GPT-2 tokenizer on (the real vocabulary needs the Hub).
CORPUS = (
    "a cat sitting on a couch next to a remote control",
    "an astronaut in a white space suit holding a helmet",
    "a cup of coffee on a wooden table with a spoon",
    "a rocket standing on the launch pad before take off",
    "a man holding a camera on a tripod in a grassy field",
    "a close up of a coin collection on a dark background",
    "the moon in a black sky over the city at night",
    "a red brick wall with a window and a door",
    "a group of people riding bikes down a busy street",
    "two dogs playing with a frisbee in the park",
)
TOKENIZER_VOCAB_SIZE = 1000


@dataclass(frozen=True)
class Fidelity:
    """How far core.caption's bf16 captions stray from its fp32 ones, and whether fp32 core is the recipe."""

    identical_captions: int  # bf16 caption == fp32 caption
    token_agreement: float  # share of generated positions with the same token id, bf16 vs fp32
    first_divergence: float  # mean position of the first differing token (NEW_TOKENS when none differs)
    logits_cosine_mean: float  # teacher-forced on the fp32 captions: per-position logits, bf16 vs fp32
    logits_cosine_min: float
    argmax_agreement: float  # teacher-forced: share of positions where bf16 and fp32 pick the same next token
    ended_early: int  # captions, either precision, with an EOS (= pad) among their new tokens: 0 when pinning holds
    recipe_identical: int  # the engine's fp32 caption == the recipe's fp32 caption
    count: int


@dataclass(frozen=True)
class Result:
    """Images/s over the whole list for each contender (keyed as in CONTENDERS), every round a sample."""

    core_dtype: str
    throughput: dict[str, list[float]]
    fidelity: Fidelity
    others_cpu_share: float | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_arguments(parser, default_images=DEFAULT_IMAGES)


def run(args: argparse.Namespace) -> int:
    repeats = 1 if args.quick else 3
    return common.run_on_random_model(args, build_random_vit_gpt2, benchmark, format_report, repeats)


def build_random_vit_gpt2(folder: Path, seed: int) -> None:
    """nlpconnect/vit-gpt2-image-captioning's shapes (ViT-B/16 224 encoder, GPT-2 124M decoder with cross-attention,
    50257-token LM head), random weights, an image processor and an offline GPT-2 style tokenizer."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = offline_gpt2_tokenizer()
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    encoder = ViTConfig(**ENCODER_SHAPE)
    decoder = GPT2Config(add_cross_attention=True, is_decoder=True, **DECODER_SHAPE, **special)
    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tokenizer.bos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": encoder.image_size, "width": encoder.image_size}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def offline_gpt2_tokenizer():
    """A byte-level BPE like GPT-2's, trained on CORPUS. Ids past its vocabulary decode to nothing, which costs
    both sides the same; the model keeps GPT-2's full vocab_size so its LM head costs what the real one does."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS, vocab_size=TOKENIZER_VOCAB_SIZE, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False
    )
    return GPT2TokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


class ModelCardRecipe:
    """What the model card does: ViTImageProcessor, an fp32 VisionEncoderDecoderModel, generate, batch_decode.

    transformers 5 removed the image-to-text pipeline; its successor image-text-to-text refuses a GPT-2 tokenizer
    (it wants a ProcessorMixin) and, given one, requires a text prompt, so no pipeline runs ViT-GPT2 as it was meant.
    """

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

        self.model = VisionEncoderDecoderModel.from_pretrained(model_dir).eval()
        self.processor = ViTImageProcessor.from_pretrained(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.last_captions: list[str] = []

    def __call__(self, images: Sequence[Image.Image]) -> list[str]:
        """The model card's predict_step on a list of images (one generate call for all of them)."""
        pixel_values = self.processor(images=list(images), return_tensors="pt").pixel_values
        with torch.no_grad():
            token_ids = self.model.generate(pixel_values, **generation_settings())
        return [text.strip() for text in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

    def one_at_a_time(self, images: Sequence[Image.Image]) -> list[str]:
        # Kept, so the fidelity check compares core with the captions already timed instead of paying for them again.
        self.last_captions = [text for image in images for text in self([image])]
        return self.last_captions

    def in_batches(self, images: Sequence[Image.Image]) -> list[str]:
        return [
            text for start in range(0, len(images), BATCH_SIZE) for text in self(images[start : start + BATCH_SIZE])
        ]


def generation_settings() -> dict[str, int]:
    """The model card's beams and length, with the length pinned (see NEW_TOKENS)."""
    return dict(num_beams=NUM_BEAMS, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)


def benchmark(model_dir: str, images: list[Image.Image], repeats: int) -> Result:
    """Every contender in one process, interleaved round by round so machine noise hits them alike."""
    import core
    from core.models import clear_cache

    recipe = ModelCardRecipe(model_dir)
    core_caption = partial(core.caption, model=model_dir, batch_size=BATCH_SIZE, **generation_settings())
    contenders: dict[str, Callable[[list[Image.Image]], list[str]]] = {
        "recipe": recipe.one_at_a_time,
        "core": core_caption,
        "recipe_batch": recipe.in_batches,
        "core_fp32": partial(core_caption, precision="fp32"),
    }
    machine_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    try:
        # Warm-up on one photo: the first calls pay for model loading, thread pools and oneDNN kernel selection.
        for name in CONTENDERS:
            contenders[name](images[:1])
        progress(f"{repeats} round(s) of {len(images)} photos x {len(CONTENDERS)} contenders ...")
        seconds = time_rotating([[partial(contenders[name], images) for name in CONTENDERS]], repeats)
        core_dtype = ran_on(partial(core_caption, images[:1]))
        progress("fidelity: bf16 vs fp32 captions ...")
        fidelity = measure_fidelity(model_dir, images, recipe)
        others = others_share(machine_before, machine_cpu_seconds(), own_cpu_seconds() - own_before)
    finally:
        clear_cache()  # the temporary model folder is about to go
    return Result(
        core_dtype=core_dtype,
        throughput={name: [len(images) / s for s in samples] for name, samples in zip(CONTENDERS, seconds)},
        fidelity=fidelity,
        others_cpu_share=others,
    )


def measure_fidelity(model_dir: str, images: Sequence[Image.Image], recipe: ModelCardRecipe) -> Fidelity:
    """Generated token ids and teacher-forced logits from the engine's loader and preprocessing, bf16 vs fp32."""
    reference_ids = generated_ids(model_dir, images, "fp32")
    reduced_ids = generated_ids(model_dir, images, "bf16")
    # Both precisions score the fp32 captions: a like-for-like look at the logits, free of beam-search drift.
    reference_logits = teacher_forced_logits(model_dir, images, "fp32", reference_ids)
    reduced_logits = teacher_forced_logits(model_dir, images, "bf16", reference_ids)
    same = reference_ids == reduced_ids
    first_differences = [int(row.nonzero()[0]) if row.any() else NEW_TOKENS for row in ~same]
    cosines = torch.nn.functional.cosine_similarity(reference_logits, reduced_logits, dim=-1)
    argmax_same = reference_logits.argmax(dim=-1) == reduced_logits.argmax(dim=-1)
    core_texts = [text.strip() for text in recipe.tokenizer.batch_decode(reference_ids, skip_special_tokens=True)]
    return Fidelity(
        identical_captions=int(same.all(dim=-1).sum()),
        token_agreement=same.float().mean().item(),
        first_divergence=statistics.fmean(first_differences),
        logits_cosine_mean=cosines.mean().item(),
        logits_cosine_min=cosines.min().item(),
        argmax_agreement=argmax_same.float().mean().item(),
        ended_early=sum(
            int((ids == recipe.tokenizer.eos_token_id).any(dim=-1).sum()) for ids in (reference_ids, reduced_ids)
        ),
        recipe_identical=sum(a == b for a, b in zip(core_texts, recipe.last_captions)),
        count=len(images),
    )


def generated_ids(model_dir: str, images: Sequence[Image.Image], precision: str) -> torch.Tensor:
    """(images, new tokens) ids from generate on the engine's loader and preprocessing, start token dropped."""
    from core.caption import caption_inputs, load_captioner

    loaded = load_captioner(model_dir, precision=precision)
    rows = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH_SIZE):
            pixel_values = caption_inputs(loaded, images[start : start + BATCH_SIZE], prompt=None)["pixel_values"]
            rows.append(loaded.model.generate(pixel_values=pixel_values, **generation_settings())[:, 1:])
    return torch.cat(rows)


def teacher_forced_logits(
    model_dir: str,
    images: Sequence[Image.Image],
    precision: str,
    token_ids: torch.Tensor,
) -> torch.Tensor:
    """(images, tokens, vocab) fp32 logits for predicting each of `token_ids` from the ones before it."""
    from core.caption import caption_inputs, load_captioner

    loaded = load_captioner(model_dir, precision=precision)
    start_token = loaded.model.config.decoder_start_token_id
    rows = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH_SIZE):
            pixel_values = caption_inputs(loaded, images[start : start + BATCH_SIZE], prompt=None)["pixel_values"]
            targets = token_ids[start : start + BATCH_SIZE]
            # Input = start token + every target but the last, so position i predicts target i.
            inputs = torch.cat([torch.full((len(targets), 1), start_token), targets[:, :-1]], dim=-1)
            logits = loaded.model(pixel_values=pixel_values, decoder_input_ids=inputs.to(loaded.device)).logits
            rows.append(logits.float().cpu())
    return torch.cat(rows)


def format_report(result: Result, count: int, repeats: int) -> str:
    per_s = {name: statistics.median(samples) for name, samples in result.throughput.items()}
    ratio = per_s["core"] / per_s["recipe"]
    core = result.core_dtype
    timings = [
        ("", "images/s", "min-max", "ms/image", "core/this"),
        ("(a) model-card recipe, fp32, one photo per generate", *figures(per_s, result, "recipe")),
        (f"(b) core.caption, {core}, batch {BATCH_SIZE}", *figures(per_s, result, "core")),
        (f"    recipe, fp32, {BATCH_SIZE} photos per generate (information)", *figures(per_s, result, "recipe_batch")),
        (f"    core.caption, fp32, batch {BATCH_SIZE} (information)", *figures(per_s, result, "core_fp32")),
    ]
    ratios = [
        ("ratio", "value", "target"),
        (
            "core / recipe throughput",
            f"{ratio:.3g}x",
            verdict(ratio >= TARGET_THROUGHPUT_RATIO, f">= {TARGET_THROUGHPUT_RATIO:g}x"),
        ),
    ]
    fid = result.fidelity
    lengths = (
        "every caption ran" if fid.ended_early == 0 else f"{fid.ended_early} captions did NOT run"
    ) + f" the full {NEW_TOKENS} new tokens"
    return "\n".join(
        [
            "",
            f"ViT-GPT2 (ViT-B/16 + GPT-2 124M, vocab {GPT2_VOCAB_SIZE}, random weights), {count} photos, "
            f"beams {NUM_BEAMS}, exactly {NEW_TOKENS} new tokens, medians of {repeats} interleaved rounds",
            f"machine: {machine_description()}",
            interference_note(result.others_cpu_share),
            "",
            *aligned(
                [
                    timings[0],
                    *[(*row[:4], f"{per_s['core'] / per_s[name]:.3g}x") for row, name in zip(timings[1:], CONTENDERS)],
                ]
            ),
            "",
            *aligned(ratios),
            "",
            f"generation length: {lengths} (min_new_tokens = max_new_tokens = {NEW_TOKENS} on both sides)",
            f"fidelity over {fid.count} photos, core {core} vs core fp32: "
            f"{fid.identical_captions}/{fid.count} captions identical, {fid.token_agreement:.0%} of tokens agree, "
            f"first difference at token {fid.first_divergence:.1f} on average",
            f"  teacher-forced on the fp32 captions: logits cosine mean {fid.logits_cosine_mean:.5f}, "
            f"min {fid.logits_cosine_min:.5f}; next-token argmax agrees {fid.argmax_agreement:.0%}",
            f"  the engine's fp32 model vs the recipe: {fid.recipe_identical}/{fid.count} captions identical",
            "  (random weights give near-flat logits over 50257 tokens, so bf16 rounding flips near-ties and beam "
            "search",
            "  then follows another path; a trained model's peaked logits leave far fewer ties)",
        ]
    )


def figures(per_s: dict[str, float], result: Result, name: str) -> tuple[str, str, str]:
    return f"{per_s[name]:.2f}", spread(result.throughput[name]), f"{1000 / per_s[name]:.0f}"
