"""The Train tab's captioner mode as both front ends show it: texts, the settings form, the data check, the results."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from training import (
    SCRATCH_CAPTIONER,
    CaptionData,
    CaptionEvaluated,
    CaptionPrediction,
    CaptionTrainConfig,
    RunSummary,
    WordMapsBeforeAfter,
    caption_token_lengths,
    caption_tokenizer,
    load_caption_data,
    sample_pairs,
)
from ui.shared.caption import word_overlays
from ui.shared.train_widgets import NumberBox
from ui.shared.training import whole_number

# ---- what to train ------------------------------------------------------------------------------------------

TASK_LABEL = "What to train"
CLASSIFIER_TASK = "Classifier: photos into classes"
CAPTIONER_TASK = "Captioner: photos into sentences"
TASK_CHOICES = (CLASSIFIER_TASK, CAPTIONER_TASK)

CAPTION_TRAIN_INTRO = (
    "Teach a ViT encoder and a GPT-2 decoder to write captions from image + caption pairs. Each epoch the model "
    "captions the validation images and ROUGE (word overlap with the reference captions, in percent) says how "
    "close it came."
)

# ---- 1. data ------------------------------------------------------------------------------------------------

CAPTION_ZIP_LABEL = "A zip of images with a captions file (metadata.jsonl, captions.csv, or any CSV / JSON Lines)"
CAPTION_FILE_LABEL = "Or a CSV / JSON Lines file next to its images (path on this machine)"
CAPTION_EXAMPLE_BUTTON = "Use the example: 1,200 captioned shapes"
CAPTION_DATA_HELP = (
    "Columns are found by name (image / image_path / file_name / filename, and caption / text / captions), or name "
    "them below. Several captions per image may come as a list or as repeated rows. 10% of the images are held out "
    "for validation, never the same image on both sides."
)
IMAGE_COLUMN_LABEL = "Image column (empty: found by name)"
CAPTION_COLUMN_LABEL = "Caption column (empty: found by name)"
CAPTION_REPORT_HEADERS = ("", "count")
TOKEN_HISTOGRAM_LABEL = "Caption length in tokens"
CAPTION_THUMBNAILS_LABEL = "A few pairs"

# ---- 2. settings --------------------------------------------------------------------------------------------

CAPTIONER_BASE_CHOICES: tuple[str, ...] = (SCRATCH_CAPTIONER, "nlpconnect/vit-gpt2-image-captioning")
CAPTIONER_BASE_LABEL = "Start from"
CAPTIONER_BASE_INFO = (
    f"{SCRATCH_CAPTIONER} (small, random, offline: its tokenizer is learnt from your captions), a ViT-GPT-2 "
    "captioner id or folder, or an earlier captioner run"
)
ENCODER_LABEL = "Or a new captioner: image encoder"
ENCODER_PLACEHOLDER = "google/vit-base-patch16-224-in21k"
DECODER_LABEL = "… and text decoder"
DECODER_PLACEHOLDER = "gpt2"
CAPTION_MODE_LABEL = "What learns"
CAPTION_MODE_CHOICES: tuple[tuple[str, str], ...] = (
    ("Everything: encoder and decoder", "full"),
    ("Decoder only: image features computed once (fast)", "frozen_encoder"),
)
# CaptionTrainConfig's defaults: what reaches ROUGE-L 90 on the example set in a few minutes on a laptop CPU.
_DEFAULTS = CaptionTrainConfig.__dataclass_fields__
CAPTION_EPOCHS = NumberBox(minimum=1, maximum=None, default=_DEFAULTS["num_train_epochs"].default, step=1)
CAPTION_LEARNING_RATE = NumberBox(minimum=None, maximum=None, default=_DEFAULTS["learning_rate"].default, step=1e-4)
CAPTION_BATCH_SIZE = NumberBox(
    minimum=1, maximum=None, default=_DEFAULTS["per_device_train_batch_size"].default, step=1
)
CAPTION_WARMUP = NumberBox(minimum=0.0, maximum=0.5, default=_DEFAULTS["warmup_ratio"].default, step=0.05)
CAPTION_WEIGHT_DECAY = NumberBox(minimum=0.0, maximum=None, default=_DEFAULTS["weight_decay"].default, step=0.01)
MAX_TARGET_LENGTH_LABEL = "Longest caption trained on (tokens)"
MAX_TARGET_LENGTH = NumberBox(minimum=2, maximum=512, default=_DEFAULTS["max_target_length"].default, step=1)
LABEL_SMOOTHING_LABEL = "Label smoothing"
LABEL_SMOOTHING = NumberBox(minimum=0.0, maximum=0.9, default=_DEFAULTS["label_smoothing"].default, step=0.05)
EVAL_BEAMS_LABEL = "Beams when captioning the validation images"
EVAL_BEAMS = NumberBox(minimum=1, maximum=10, default=_DEFAULTS["num_beams"].default, step=1)
EVAL_MAX_NEW_TOKENS_LABEL = "Longest generated caption (tokens; 0 = the longest trained on)"
EVAL_MAX_NEW_TOKENS = NumberBox(minimum=0, maximum=512, default=0, step=1)

# ---- 4. what it learnt --------------------------------------------------------------------------------------

PREDICTIONS_LABEL = "Validation images: reference and generated captions (click a header to sort)"
PREDICTION_HEADERS = ("image", "reference", "generated", "ROUGE-L")
WORD_MAPS_LABEL = "Where each word looked, before and after training"
WORD_MAPS_BUTTON = "Show the word maps"
WORD_MAPS_IMAGE_LABEL = "Validation image"
BEFORE_LABEL = "Before training"
AFTER_LABEL = "After training"
USE_CAPTIONER_BUTTON = "Use this model in the Caption tab"
NO_CAPTION_RUN = "Train a captioner or pick a captioner run under Earlier runs first."


# ---- the settings form --------------------------------------------------------------------------------------


def caption_form_config(
    source: Any,
    base: str,
    *,
    encoder: str | None,
    decoder: str | None,
    mode: str,
    epochs: float | None,
    learning_rate: float | None,
    batch_size: float | None,
    warmup_ratio: float | None,
    weight_decay: float | None,
    max_target_length: float | None,
    label_smoothing: float | None,
    num_beams: float | None,
    max_new_tokens: float | None,
    image_column: str | None,
    caption_column: str | None,
    seed: float | None,
    precision: str,
) -> CaptionTrainConfig:
    """A CaptionTrainConfig from a front end's form (numbers may arrive as floats or None). An encoder and a decoder
    together build a new captioner and win over `base`; `base` is the scratch preset, or a captioner to continue (an
    id, a folder, an earlier run). output_dir is a placeholder: training.start_new_run makes the run folder."""
    encoder, decoder, base = (encoder or "").strip(), (decoder or "").strip(), (base or "").strip()
    if encoder or decoder:
        start: dict[str, Any] = dict(encoder_model_name_or_path=encoder, decoder_model_name_or_path=decoder)
    elif base == SCRATCH_CAPTIONER or not base:
        start = dict(config_name=SCRATCH_CAPTIONER)
    else:
        start = dict(model_name_or_path=base)
    return CaptionTrainConfig(
        train_file=source,
        output_dir=Path("."),
        mode=mode,
        num_train_epochs=whole_number(epochs, "epochs"),
        learning_rate=float(learning_rate or 0),
        per_device_train_batch_size=whole_number(batch_size, "batch size"),
        warmup_ratio=float(warmup_ratio or 0),
        weight_decay=float(weight_decay or 0),
        max_target_length=whole_number(max_target_length, "longest caption"),
        label_smoothing=float(label_smoothing or 0),
        num_beams=whole_number(num_beams, "number of beams"),
        max_new_tokens=whole_number(max_new_tokens or 0, "longest generated caption") or None,
        image_column=(image_column or "").strip() or None,
        caption_column=(caption_column or "").strip() or None,
        seed=whole_number(seed or 0, "seed"),
        precision=precision,
        **start,
    )


# ---- 1. the data check --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CaptionDataView:
    """A checked captioned set as "Check data" shows it."""

    summary: str  # one line: pairs, images, the split
    rows: list[list]  # CAPTION_REPORT_HEADERS rows
    skipped: list[list]  # [file, why] per skipped row or file
    token_lengths: tuple[int, ...]  # per caption, with the end token; empty when no tokenizer could be read
    length_note: str  # how the lengths were counted, or why they are in words
    histogram: object  # a matplotlib Figure
    thumbnails: list[tuple[Image.Image, str]]  # a few images, each with its first caption


def caption_data_view(
    data: CaptionData, *, base: str, encoder: str | None, decoder: str | None, max_target_length: int
) -> CaptionDataView:
    """What the check shows: counts, skipped rows, a histogram of caption lengths in the tokens the chosen model
    would train on (in words when its tokenizer cannot be read, e.g. offline) and a few thumbnails."""
    report = data.report
    captions = [caption for pair in data.train for caption in pair.captions]
    encoder, decoder, base = (encoder or "").strip(), (decoder or "").strip(), (base or "").strip()
    try:
        tokenizer = caption_tokenizer(
            captions,
            model_name_or_path=None if (encoder or decoder or base in ("", SCRATCH_CAPTIONER)) else base,
            decoder_model_name_or_path=decoder or None,
            config_name=SCRATCH_CAPTIONER,
        )
        lengths = caption_token_lengths(captions, tokenizer)
        unit, note = "tokens", f"{len(lengths)} training captions, in the tokens the model will read"
    except ValueError as error:
        lengths, unit, note = tuple(report.caption_words), "words", f"In words: {error}"
    too_long = sum(length > max_target_length for length in lengths) if unit == "tokens" else 0
    if too_long:
        note += f"; {too_long} are longer than {max_target_length} tokens and will be cut"
    rows = [
        ["image-caption pairs", report.pairs],
        ["images", report.images],
        ["training images", report.train_images],
        ["validation images", report.val_images],
        ["skipped", len(report.skipped)],
    ]
    summary = (
        f"{report.pairs} pairs on {report.images} images: {report.train_images} to train on, {report.val_images} to "
        f"validate ({report.split})."
    ) + "".join(f" ⚠ {warning}" for warning in report.warnings)
    return CaptionDataView(
        summary=summary,
        rows=rows,
        skipped=[[skipped.name, skipped.reason] for skipped in report.skipped],
        token_lengths=lengths if unit == "tokens" else (),
        length_note=note + ".",
        histogram=length_histogram(lengths, unit=unit, limit=max_target_length if unit == "tokens" else None),
        thumbnails=[(_thumbnail(pair.image), pair.captions[0]) for pair in sample_pairs(data, 6)],
    )


def check_captioned_data(
    source: Any,
    *,
    work_dir: Path,
    image_column: str | None,
    caption_column: str | None,
    base: str,
    encoder: str | None,
    decoder: str | None,
    max_target_length: float | None,
) -> CaptionDataView:
    """ "Check data" for either front end: the pairs read (a zip unpacked under work_dir) and shown, and the unpacked
    copy removed again, so a check keeps nothing; the caller removes work_dir's upload."""
    data = load_caption_data(
        source,
        image_column=(image_column or "").strip() or None,
        caption_column=(caption_column or "").strip() or None,
        work_dir=work_dir,
    )
    try:
        return caption_data_view(
            data,
            base=base,
            encoder=encoder,
            decoder=decoder,
            max_target_length=whole_number(max_target_length, "longest caption"),
        )
    finally:
        for folder in data.unpacked:
            shutil.rmtree(folder, ignore_errors=True)


def length_histogram(lengths: Sequence[int], *, unit: str, limit: int | None):
    """A histogram of caption lengths, with the longest trained on marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 2.6), layout="constrained")
    axis = figure.add_subplot()
    if lengths:
        top = max(lengths)
        axis.hist(lengths, bins=range(1, top + 2), color="tab:blue", edgecolor="white", align="left")
    if limit is not None:
        axis.axvline(limit + 0.5, color="tab:red", linestyle="--", label=f"longest trained on ({limit})")
        axis.legend(fontsize="small")
    axis.set_xlabel(f"caption length ({unit})")
    axis.set_ylabel("captions")
    return figure


def _thumbnail(path: Path, side: int = 160) -> Image.Image:
    with Image.open(path) as image:
        picture = image.convert("RGB")
    picture.thumbnail((side, side))
    return picture


# ---- 4. what it learnt --------------------------------------------------------------------------------------


def prediction_rows(predictions: Sequence[CaptionPrediction]) -> list[list]:
    """[image name, reference(s), generated, ROUGE-L rounded] per validation image, worst first: the mistakes are
    what a person wants to read."""
    ordered = sorted(predictions, key=lambda prediction: prediction.rougeL)
    return [
        [prediction.image.name, " / ".join(prediction.references), prediction.generated, round(prediction.rougeL, 1)]
        for prediction in ordered
    ]


def prediction_choices(predictions: Sequence[CaptionPrediction]) -> list[tuple[str, str]]:
    """(label, image path) per validation image for the word-map picker, worst first like the table."""
    ordered = sorted(predictions, key=lambda prediction: prediction.rougeL)
    return [
        (f"{prediction.image.name}: {prediction.generated} (ROUGE-L {prediction.rougeL:.0f})", str(prediction.image))
        for prediction in ordered
    ]


def word_map_pairs(
    compared: WordMapsBeforeAfter,
) -> tuple[list[tuple[Image.Image, str]], list[tuple[Image.Image, str]]]:
    """The before and after word tiles, each over the model's input picture, captioned alike so they pair up."""
    return word_overlays(compared.before), word_overlays(compared.after)


def word_maps_line(compared: WordMapsBeforeAfter) -> str:
    """The sentence under the maps."""
    before = "the freshly built model it started from" if compared.built_fresh else compared.before_model
    return (
        f"“{compared.caption}”, fed through the model before training ({before}) and after: the same words, so each "
        "pair of tiles shows what training changed in where that word looks."
    )


# ---- 3. live training ---------------------------------------------------------------------------------------

EXAMPLES_LABEL = "How it captions a few validation images now"
EXAMPLE_HEADERS = ("reference", "generated")


def latest_examples(events: Sequence[object]) -> list[list]:
    """[reference, generated] for the few validation images the last evaluation showed; empty before the first."""
    evaluation = next((event for event in reversed(events) if isinstance(event, CaptionEvaluated)), None)
    return [[reference, generated] for reference, generated in evaluation.examples] if evaluation else []


def scores_line(events: Sequence[object]) -> str:
    """'epoch 3: ROUGE-1 80.1 · ROUGE-2 70.2 · ROUGE-L 79.9 · BLEU 60.3 · validation loss 0.412', or ''."""
    evaluation = next((event for event in reversed(events) if isinstance(event, CaptionEvaluated)), None)
    if evaluation is None:
        return ""
    return (
        f"epoch {evaluation.epoch}: ROUGE-1 {evaluation.rouge1:.1f} · ROUGE-2 {evaluation.rouge2:.1f} · ROUGE-L "
        f"{evaluation.rougeL:.1f} · BLEU {evaluation.bleu:.1f} · validation loss {evaluation.eval_loss:.3f} "
        f"({evaluation.images} validation images)"
    )


def caption_runs(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """The captioner runs of a list of runs (the classifier runs belong to the classifier's lists)."""
    return [summary for summary in runs if summary.task == "caption"]


def captioner_start_choices(runs: Sequence[RunSummary]) -> list[str]:
    """The "Start from" box: the scratch preset and the Hub captioner, then finished captioner runs."""
    finished = [str(summary.path) for summary in caption_runs(runs) if summary.status == "finished"]
    return list(dict.fromkeys([*CAPTIONER_BASE_CHOICES, *finished]))


# ---- messages -----------------------------------------------------------------------------------------------

NO_CAPTION_DATA = "Upload a zip of images with a captions file, or press the example button, first."
NOT_A_VALIDATION_IMAGE = "Pick one of the run's validation images from the list."
CAPTION_COUNTS_LABEL = "What the check found"


def caption_run_in_use(run_name: str) -> str:
    """What "Use this model in the Caption tab" says once the Caption tab's box holds the run."""
    return f"The Caption tab now uses {run_name}."
