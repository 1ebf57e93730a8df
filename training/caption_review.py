"""After a captioner run: its validation captions with their ROUGE-L, and each word's map before and after training."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from core import CaptionAttention, caption_attention
from core.images import ImageInput

from .caption_model import build_captioner
from .captioning import PREDICTIONS, caption_resume_config, read_caption_split

# The model a run started from, rebuilt and kept in the run folder (never shared: see runs._NOT_SHARED).
INITIAL = "initial"


@dataclass(frozen=True)
class CaptionPrediction:
    """One validation image: its reference captions, the caption the trained model wrote, and how close it came."""

    image: Path
    references: tuple[str, ...]
    generated: str
    rougeL: float  # against the best-matching reference, in percent


@dataclass(frozen=True)
class WordMapsBeforeAfter:
    """The same caption's word maps from the model the run started from and from the trained one."""

    caption: str
    before: CaptionAttention
    after: CaptionAttention
    before_model: str  # a hub id or folder; for a model built fresh, the run's initial/ folder
    built_fresh: (
        bool  # the run built its captioner (scratch, or an encoder wired to a decoder) rather than continued one
    )


def caption_predictions(run_dir: str | Path) -> tuple[CaptionPrediction, ...]:
    """The finished run's validation captions (predictions.jsonl), in the order of its split."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        raise ValueError(
            f"The run '{Path(run_dir).name}' has no {PREDICTIONS}: it is not a captioner run, or it has not finished "
            "(resume it to the end)."
        )
    predictions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        references = tuple(row.get("references") or [row["reference"]])
        predictions.append(CaptionPrediction(Path(row["image"]), references, row["generated"], float(row["rougeL"])))
    return tuple(predictions)


def initial_captioner(run_dir: str | Path) -> str:
    """The captioner as it was before the run's first step: the captioner it continued (an id or folder), or the
    freshly built one (vit-gpt2-scratch, or an encoder wired to a decoder), rebuilt here from the run's settings,
    split and seed exactly as training built it, and kept in the run's initial/ folder."""
    run_dir = Path(run_dir)
    config = caption_resume_config(run_dir)
    if config.model_name_or_path:
        return str(config.model_name_or_path)
    folder = run_dir / INITIAL
    if (folder / "config.json").is_file():
        return str(folder)
    import torch
    from accelerate.utils import set_seed

    data = read_caption_split(run_dir)
    with torch.random.fork_rng(devices=[]):  # the app's own random state is left as it was
        set_seed(config.seed)  # as _CaptionTrainer does before building: a wired decoder's cross-attention is random
        captioner = build_captioner(
            model_name_or_path=None,
            encoder_model_name_or_path=config.encoder_model_name_or_path,
            decoder_model_name_or_path=config.decoder_model_name_or_path,
            config_name=config.config_name,
            captions=[caption for pair in data.train for caption in pair.captions],
            max_target_length=config.max_target_length,
            seed=config.seed,
        )
    staging = run_dir / f"{INITIAL}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    captioner.model.save_pretrained(staging)
    captioner.processor.save_pretrained(staging)
    captioner.tokenizer.save_pretrained(staging)
    staging.rename(folder)  # whole or not at all: a half-written folder is never taken for the model
    return str(folder)


def word_maps_before_after(run_dir: str | Path, image: ImageInput, *, text: str | None = None) -> WordMapsBeforeAfter:
    """Where each word looked in `image`, before training and after: one caption (the trained model's own, or
    `text`) fed through both models, so the two rows of maps are word for word comparable."""
    trained = str(Path(run_dir).resolve())
    after = caption_attention(image, text, model=trained)
    before_model = initial_captioner(run_dir)
    before = caption_attention(image, after.caption, model=before_model)
    built_fresh = Path(before_model) == Path(run_dir) / INITIAL
    return WordMapsBeforeAfter(after.caption, before, after, before_model=before_model, built_fresh=built_fresh)
