"""Train an image captioner (ViT encoder -> GPT-2 decoder) on image + caption pairs: full or frozen-encoder,
resumable, scored with ROUGE on generated captions, reporting the same events as classification training."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from transformers.models.vision_encoder_decoder.modeling_vision_encoder_decoder import shift_tokens_right

from .caption_data import CaptionData, CaptionPair, CaptionReport
from .caption_model import SCRATCH_CAPTIONER, SCRATCH_CAPTIONERS, Captioner, build_captioner, load_run_captioner
from .checkpoints import (
    CHECKPOINT,
    RUN_CONFIG,
    SPLIT,
    TRAINER_STATE,
    TrainingState,
    check_checkpoint,
    damaged,
    read_saved_settings,
)
from .data import DataError, image_transforms
from .events import CaptionEvaluated, CaptionEvent, Finished, Saved, Started, Stopped, to_json
from .finetune import (
    RESULTS,
    TRAINING_PRECISIONS,
    EpochShuffle,
    _accelerator,
    _check_number,
    _check_whole,
    _load_state,
    _parameter_groups,
    _precision_name,
    _publish_files,
    _ReplacedAtomically,
    _StepTimer,
    _StopRequested,
    epoch_steps,
)
from .rouge import caption_scores
from .runs import EVENTS_LOG, write_figures

CAPTION_MODES = ("full", "frozen_encoder")
PREDICTIONS = "predictions.jsonl"
EXAMPLES_SHOWN = 4  # (reference, generated) pairs in each CaptionEvaluated


@dataclass(frozen=True)
class CaptionTrainConfig:
    """One captioner training run. Field names follow the transformers image-captioning example's flags; the
    defaults teach vit-gpt2-scratch the generated shapes set (ROUGE-L >= 90) in minutes on a laptop CPU."""

    train_file: Any  # a CSV / JSON Lines file, an imagefolder, a zip of either, or a CaptionData already loaded
    output_dir: str | Path
    validation_file: Any = None  # else val_fraction of the images are held out
    image_column: str | None = None
    caption_column: str | None = None
    model_name_or_path: str | None = None  # a VisionEncoderDecoder captioner to continue training
    encoder_model_name_or_path: str | None = None  # with decoder_model_name_or_path: a new captioner from two models
    decoder_model_name_or_path: str | None = None
    config_name: str | None = SCRATCH_CAPTIONER  # used when neither of the above is given
    mode: str = "full"  # "full": every weight; "frozen_encoder": encoder features computed once, the decoder learns
    num_train_epochs: int = 40
    learning_rate: float = 1e-3
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    warmup_ratio: float = 0.05
    weight_decay: float = 0.05
    max_target_length: int = 32  # caption tokens (with the end token) trained on; longer ones are cut
    label_smoothing: float = 0.0
    num_beams: int = 1
    max_new_tokens: int | None = None  # generated caption length; None: max_target_length
    seed: int = 42
    logging_steps: int = 10
    resume_from_checkpoint: bool = False  # continue from output_dir/checkpoint when there is one
    precision: str = "auto"  # "auto": bf16 autocast where the hardware runs it fast
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_caption_config(self)


def check_caption_config(config: CaptionTrainConfig) -> None:
    """Every setting checked before data is read or a model loaded, with a message that says what to do."""
    if config.mode not in CAPTION_MODES:
        raise ValueError(
            f"Unknown mode '{config.mode}': use 'full' (train every weight) or 'frozen_encoder' "
            "(keep the image encoder as it is and train the text decoder)."
        )
    if config.precision not in TRAINING_PRECISIONS:
        raise ValueError(f"Unknown precision '{config.precision}': use one of {', '.join(TRAINING_PRECISIONS)}.")
    if not str(config.output_dir).strip():
        raise ValueError("No output folder given for the trained captioner.")
    if bool(config.encoder_model_name_or_path) != bool(config.decoder_model_name_or_path):
        raise ValueError(
            "A new captioner needs both an image encoder and a text decoder: give --encoder_model_name_or_path "
            "and --decoder_model_name_or_path (e.g. google/vit-base-patch16-224-in21k and gpt2)."
        )
    if not (config.model_name_or_path or config.encoder_model_name_or_path or config.config_name):
        raise ValueError(
            f"No captioner to start from: give a captioner (--model_name_or_path), an encoder and a decoder, or "
            f"--config_name {SCRATCH_CAPTIONER}."
        )
    if config.config_name and not (config.model_name_or_path or config.encoder_model_name_or_path):
        if config.config_name not in SCRATCH_CAPTIONERS:
            raise ValueError(f"Unknown captioner config '{config.config_name}': use {', '.join(SCRATCH_CAPTIONERS)}.")
    _check_number(config.learning_rate, "learning rate", lambda v: v > 0, "greater than 0 (e.g. 5e-5)")
    for value, name in (
        (config.num_train_epochs, "number of epochs"),
        (config.per_device_train_batch_size, "batch size"),
        (config.per_device_eval_batch_size, "evaluation batch size"),
        (config.num_beams, "number of beams"),
        (config.logging_steps, "logging interval"),
    ):
        _check_whole(value, name)
    _check_whole(config.max_target_length, "maximum target length")
    if config.max_target_length < 2:
        raise ValueError("The maximum target length must be at least 2 tokens (a word and the end token).")
    if config.max_new_tokens is not None:
        _check_whole(config.max_new_tokens, "maximum number of new tokens")
    _check_number(config.weight_decay, "weight decay", lambda v: v >= 0, "0 or more")
    _check_number(config.warmup_ratio, "warmup ratio", lambda v: 0 <= v < 1, "from 0 up to (not including) 1")
    _check_number(config.label_smoothing, "label smoothing", lambda v: 0 <= v < 1, "from 0 up to (not including) 1")
    _check_number(config.val_fraction, "validation fraction", lambda v: 0 < v < 1, "between 0 and 1 (e.g. 0.1)")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**32:
        raise ValueError(f"The seed must be a whole number from 0 to {2**32 - 1}, not {config.seed!r}.")


def train_captioner(config: CaptionTrainConfig, stop: threading.Event | None = None) -> Iterator[CaptionEvent]:
    """Train, yielding Started, Step..., CaptionEvaluated (each epoch), Saved, and Finished or Stopped.

    Setting `stop` ends the run after the current step: the model is saved, a checkpoint lets
    resume_from_checkpoint=True continue at the same step on the same split, and Stopped is the last event. Every
    event is also appended to output_dir/events.jsonl."""
    check_caption_config(config)
    output_dir = Path(config.output_dir)
    resuming = config.resume_from_checkpoint and (output_dir / CHECKPOINT / TRAINER_STATE).is_file()
    if resuming:
        check_checkpoint(output_dir)  # before the data, the model and the log are touched
    data = read_caption_split(output_dir) if resuming else _load(config, output_dir)
    if not data.train or not data.val:
        raise DataError(
            f"Captioner training needs training and validation images; this data has {len(data.train)} for training "
            f"and {len(data.val)} for validation: add images or give a validation file."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / EVENTS_LOG if os.environ.get("RANK", "0") == "0" else Path(os.devnull)
    with log_path.open("a" if resuming else "w", encoding="utf-8") as log:
        for event in _CaptionTrainer(config, data, output_dir, resuming, stop or threading.Event()).run():
            log.write(to_json(event) + "\n")
            log.flush()
            if isinstance(event, (Finished, Stopped)) and log_path.name == EVENTS_LOG:
                write_figures(output_dir)
            yield event


# ---- data ----------------------------------------------------------------------------------------------------


def _load(config: CaptionTrainConfig, output_dir: Path) -> CaptionData:
    if isinstance(config.train_file, CaptionData):
        return config.train_file
    from . import caption_data

    loader = getattr(caption_data, "load_caption_data", None)
    if loader is None:
        raise ValueError("Loading caption files is not available in this version: pass a CaptionData.")
    return loader(
        config.train_file,
        validation=config.validation_file,
        image_column=config.image_column,
        caption_column=config.caption_column,
        val_fraction=config.val_fraction,
        seed=config.seed,
        work_dir=output_dir / "data",
    )


def write_caption_run_files(config: CaptionTrainConfig, data: CaptionData, output_dir: Path) -> None:
    """run_config.json (the settings) and split.json (which image went where, with its captions), so a resume
    trains on exactly the same pairs."""
    settings = {name: getattr(config, name) for name in CaptionTrainConfig.__dataclass_fields__}
    settings.update(
        task="caption", train_file=str(data.root), validation_file=None, output_dir=str(output_dir), resume=False
    )
    settings["resume_from_checkpoint"] = False
    (output_dir / RUN_CONFIG).write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    split = {
        "task": "caption",
        "root": str(data.root),
        "train": [[str(pair.image), list(pair.captions)] for pair in data.train],
        "val": [[str(pair.image), list(pair.captions)] for pair in data.val],
    }
    (output_dir / SPLIT).write_text(json.dumps(split), encoding="utf-8")


def read_caption_split(output_dir: str | Path) -> CaptionData:
    """A captioner run's pairs as it split them; a damaged split.json is a ValueError naming it."""
    output_dir = Path(output_dir)
    path = output_dir / SPLIT
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
        root = Path(split["root"])
        train, val = (
            tuple(CaptionPair(Path(image), tuple(str(c) for c in captions)) for image, captions in split[part])
            for part in ("train", "val")
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise damaged(output_dir, path) from error
    if not train or any(not pair.captions for pair in (*train, *val)):
        raise damaged(output_dir, path)
    images = len(train) + len(val)
    report = CaptionReport(
        pairs=sum(len(pair.captions) for pair in (*train, *val)),
        images=images,
        train_images=len(train),
        val_images=len(val),
        split="as the run split it",
        image_column="",
        caption_column="",
        skipped=(),
        caption_words=(),
        warnings=(),
    )
    return CaptionData(train=train, val=val, report=report, root=root)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only errors from one library logger for a while: for warnings that are expected here and say nothing."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def caption_resume_config(output_dir: str | Path) -> CaptionTrainConfig:
    """A stopped captioner run's settings, set to continue from its checkpoint on its own split (checked here, so a
    damaged run is refused before a job starts). resume_config() sends captioner runs here."""
    output_dir = Path(output_dir)
    settings = read_saved_settings(output_dir)
    known = {name: value for name, value in settings.items() if name in CaptionTrainConfig.__dataclass_fields__}
    try:
        config = CaptionTrainConfig(**{**known, "output_dir": output_dir, "resume_from_checkpoint": True})
    except (ValueError, TypeError) as error:
        raise damaged(output_dir, output_dir / RUN_CONFIG) from error
    read_caption_split(output_dir)
    return config


class _Images(torch.utils.data.Dataset):
    """Each (image, caption tokens) example as model inputs; decoded images are kept (small sets fit in memory,
    and a decoded 64-px image is 48 KB) up to a budget."""

    CACHE_BYTES = 512 * 2**20

    def __init__(self, images: Sequence[Path], examples: Sequence[tuple[int, list[int]]], transform):
        self.images, self.examples, self.transform = list(images), list(examples), transform
        self.cache: dict[int, torch.Tensor] = {}
        self.cached_bytes = 0

    def __len__(self) -> int:
        return len(self.examples)

    def pixels(self, index: int) -> torch.Tensor:
        if index in self.cache:
            return self.cache[index]
        from PIL import Image

        with Image.open(self.images[index]) as image:
            pixels = self.transform(image.convert("RGB"))
        size = pixels.numel() * pixels.element_size()
        if self.cached_bytes + size <= self.CACHE_BYTES:
            self.cache[index] = pixels
            self.cached_bytes += size
        return pixels

    def __getitem__(self, position: int) -> dict:
        image_index, labels = self.examples[position]
        return {"pixel_values": self.pixels(image_index), "labels": labels, "image": image_index}


def _collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    longest = max(len(example["labels"]) for example in examples)
    labels = torch.full((len(examples), longest), -100, dtype=torch.long)  # -100: not scored
    for row, example in enumerate(examples):
        labels[row, : len(example["labels"])] = torch.tensor(example["labels"])
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": labels,
        "image": torch.tensor([example["image"] for example in examples]),
    }


# ---- the run -------------------------------------------------------------------------------------------------


class _CaptionTrainer:
    def __init__(self, config: CaptionTrainConfig, data: CaptionData, output_dir: Path, resuming: bool, stop):
        from accelerate.utils import set_seed

        set_seed(config.seed)
        self.config, self.data, self.output_dir, self.stop = config, data, output_dir, stop
        self.accelerator = _accelerator(config.precision)
        if config.mode == "frozen_encoder" and self.accelerator.num_processes > 1:
            raise ValueError(
                "Frozen-encoder training runs in one process: start it without accelerate launch, or use "
                "--mode full across several devices."
            )
        self.checkpoint = output_dir / CHECKPOINT if resuming else None
        if self.accelerator.is_main_process and not resuming:
            write_caption_run_files(config, data, output_dir)
        self.captioner = self._captioner()
        self.model = self.captioner.model
        tokenizer = self.captioner.tokenizer
        self.end_token = tokenizer.eos_token_id
        # No augmentation: a flip changes "left of", a crop or shift can change what is where or how many.
        transform = image_transforms(self.captioner.processor, None, augment=False)[1]
        self.train_set = _Images([pair.image for pair in data.train], self._examples(data.train, tokenizer), transform)
        self.eval_set = _Images([pair.image for pair in data.val], self._examples(data.val, tokenizer), transform)
        processes = self.accelerator.num_processes
        self.steps_per_epoch = math.ceil(len(self.train_set) / (config.per_device_train_batch_size * processes))
        self.total_steps = self.steps_per_epoch * config.num_train_epochs
        self.max_new_tokens = config.max_new_tokens or config.max_target_length
        self.frozen = config.mode == "frozen_encoder"

    def _captioner(self) -> Captioner:
        config = self.config
        if self.checkpoint is not None:
            try:
                return load_run_captioner(self.checkpoint)
            except (OSError, ValueError) as error:
                raise damaged(self.output_dir, self.checkpoint) from error
        captions = [caption for pair in self.data.train for caption in pair.captions]
        return build_captioner(
            model_name_or_path=config.model_name_or_path,
            encoder_model_name_or_path=config.encoder_model_name_or_path,
            decoder_model_name_or_path=config.decoder_model_name_or_path,
            config_name=config.config_name,
            captions=captions,
            max_target_length=config.max_target_length,
            seed=config.seed,
        )

    def _examples(self, pairs: Sequence[CaptionPair], tokenizer) -> list[tuple[int, list[int]]]:
        """(image index, caption tokens ending in the end token) for every caption of every image."""
        captions = [(index, caption) for index, pair in enumerate(pairs) for caption in pair.captions]
        tokens = tokenizer([caption for _, caption in captions], add_special_tokens=False)["input_ids"]
        limit = self.config.max_target_length - 1
        return [(index, ids[:limit] + [self.end_token]) for (index, _), ids in zip(captions, tokens)]

    # -- batches
    def train_batches(self, epoch: int):
        if self.frozen:
            generator = torch.Generator().manual_seed(self.config.seed + epoch)
            order = torch.randperm(len(self.train_set), generator=generator).tolist()
            size = self.config.per_device_train_batch_size
            return [self._feature_batch(self.train_set, order[i : i + size]) for i in range(0, len(order), size)]
        if getattr(self, "_train_loader", None) is None:
            self._train_shuffle = EpochShuffle(len(self.train_set), self.config.seed)
            self._train_loader = self.accelerator.prepare_data_loader(
                torch.utils.data.DataLoader(
                    self.train_set,
                    batch_size=self.config.per_device_train_batch_size,
                    sampler=self._train_shuffle,
                    collate_fn=_collate,
                )
            )
        self._train_shuffle.use_epoch(epoch)
        return self._train_loader

    def eval_batches(self):
        size = self.config.per_device_eval_batch_size
        if self.frozen:
            return [
                self._feature_batch(self.eval_set, list(range(i, min(i + size, len(self.eval_set)))))
                for i in range(0, len(self.eval_set), size)
            ]
        return torch.utils.data.DataLoader(self.eval_set, batch_size=size, collate_fn=_collate)

    def _feature_batch(self, dataset: _Images, positions: list[int]) -> dict[str, torch.Tensor]:
        batch = _collate(
            [
                {"pixel_values": torch.empty(0), "labels": dataset.examples[p][1], "image": dataset.examples[p][0]}
                for p in positions
            ]
        )
        features = self.train_features if dataset is self.train_set else self.eval_features
        device = self.accelerator.device
        return {
            "features": features[batch["image"]].to(device),
            "labels": batch["labels"].to(device),
            "image": batch["image"],
        }

    def skip(self, batches, count: int):
        return batches[count:] if self.frozen else self.accelerator.skip_first_batches(batches, count)

    def encoder_features(self, dataset: _Images) -> torch.Tensor:
        """The encoder's output for each image once, in fp32 on the CPU (what a frozen encoder always gives)."""
        encoder = self.accelerator.unwrap_model(self.trained).encoder
        size = self.config.per_device_eval_batch_size
        parts = []
        with torch.inference_mode(), self.accelerator.autocast():
            for start in range(0, len(dataset.images), size):
                if self.stop.is_set():
                    raise _StopRequested
                pixels = torch.stack([dataset.pixels(i) for i in range(start, min(start + size, len(dataset.images)))])
                parts.append(encoder(pixel_values=pixels.to(self.accelerator.device)).last_hidden_state.float().cpu())
        return torch.cat(parts)

    # -- the model
    def logits(self, batch) -> torch.Tensor:
        """Teacher-forced logits for each caption position. The decoder's inputs are the labels shifted right (what the
        model does itself when given labels=), passed in so that the model does not also compute a loss over the
        whole vocabulary that the trainer's own (label-smoothed) loss would replace."""
        labels = batch["labels"]
        config = self.accelerator.unwrap_model(self.trained).config
        inputs = dict(
            decoder_input_ids=shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id),
            # All ones: the start token doubles as GPT-2's pad token, and padded positions are not scored anyway.
            decoder_attention_mask=torch.ones_like(labels),
        )
        if self.frozen:
            from transformers.modeling_outputs import BaseModelOutput

            return self.trained(encoder_outputs=BaseModelOutput(last_hidden_state=batch["features"]), **inputs).logits
        return self.trained(pixel_values=batch["pixel_values"], **inputs).logits

    def generate(self, batch) -> list[str]:
        model = self.accelerator.unwrap_model(self.trained)
        settings: dict[str, Any] = dict(num_beams=self.config.num_beams, max_new_tokens=self.max_new_tokens)
        if self.frozen:
            from transformers.modeling_outputs import BaseModelOutput

            settings["encoder_outputs"] = BaseModelOutput(last_hidden_state=batch["features"])
        else:
            settings["pixel_values"] = batch["pixel_values"]
        # Each caption starts from the start token, which is also GPT-2's pad token: this mask says it is not
        # padding (transformers warns on every evaluation otherwise); generate() extends it as words are added.
        rows = len(batch["labels"])
        settings["decoder_attention_mask"] = torch.ones(rows, 1, dtype=torch.long, device=self.accelerator.device)
        # generate() also warns once that the ViT encoder had no attention mask, which a ViT takes none of.
        with self.accelerator.autocast(), _quiet("transformers.generation.utils"):
            generated = model.generate(**settings)
        return [text.strip() for text in self.captioner.tokenizer.batch_decode(generated, skip_special_tokens=True)]

    # -- the loop
    def run(self) -> Iterator[CaptionEvent]:
        config, accelerator = self.config, self.accelerator
        model = self.model
        if self.frozen:
            model.encoder.requires_grad_(False)
        parameters = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            _parameter_groups(parameters, config.weight_decay), lr=config.learning_rate, fused=True
        )
        processes = accelerator.num_processes
        from transformers import get_scheduler

        scheduler = get_scheduler(
            "linear",
            optimizer,
            num_warmup_steps=math.ceil(config.warmup_ratio * self.total_steps) * processes,
            num_training_steps=self.total_steps * processes,
        )
        self.trained, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        state, notes = _load_state(accelerator, self.checkpoint) if self.checkpoint else (TrainingState(), ())
        yield Started(
            total_steps=self.total_steps,
            classes=(),
            train_size=len(self.data.train),
            val_size=len(self.data.val),
            epochs=config.num_train_epochs,
            mode=config.mode,
            device=str(accelerator.device),
            precision=_precision_name(accelerator.mixed_precision),
            start_step=state.step,
            notes=notes,
        )
        if self.frozen:
            try:
                self.train_mode(False)
                self.train_features = self.encoder_features(self.train_set)
                self.eval_features = self.encoder_features(self.eval_set)
            except _StopRequested:
                yield from self.save(optimizer, scheduler, state)
                yield Stopped(output_dir=str(self.output_dir), step=state.step)
                return
        loss_function = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=config.label_smoothing)
        started, first_step = time.perf_counter(), state.step
        timer = _StepTimer(self.total_steps - state.step)
        generated: list[str] = []
        for epoch in range(state.epoch, config.num_train_epochs):
            self.train_mode(True)
            after_epoch = yield from epoch_steps(
                self,
                epoch,
                state,
                optimizer,
                scheduler,
                timer,
                lambda batch: loss_function(self.logits(batch).float().flatten(0, 1), batch["labels"].flatten()),
            )
            if after_epoch is None:
                return
            state = replace(after_epoch, epoch=epoch + 1)
            evaluated, generated = self.evaluate(epoch + 1, state.step)
            state = replace(state, eval_loss=evaluated.eval_loss)
            self.scores = evaluated
            yield evaluated
            yield from self.save(optimizer, scheduler, state)
        runtime = time.perf_counter() - started
        images_seen = (state.step - first_step) * config.per_device_train_batch_size * processes
        metrics = state.metrics(runtime, config.num_train_epochs, images_seen)
        metrics.pop("eval_accuracy", None)
        last = getattr(self, "scores", None)
        if last is not None:
            metrics.update(
                eval_rouge1=round(last.rouge1, 4),
                eval_rouge2=round(last.rouge2, 4),
                eval_rougeL=round(last.rougeL, 4),
                eval_bleu=round(last.bleu, 4),
                eval_samples=float(last.images),
            )
        if accelerator.is_main_process:
            (self.output_dir / RESULTS).write_text(json.dumps(metrics, indent=2))
            if generated:
                self.write_predictions(generated)
        yield Finished(output_dir=str(self.output_dir), metrics=metrics)

    def train_mode(self, training: bool) -> None:
        self.trained.train(training)
        if self.frozen:
            self.accelerator.unwrap_model(self.trained).encoder.eval()

    def evaluate(self, epoch: int, step: int) -> tuple[CaptionEvaluated, list[str]]:
        """The loss on every reference caption, and one generated caption per validation image scored against all
        of that image's references."""
        self.train_mode(False)
        loss_sum, tokens = 0.0, 0
        generated: dict[int, str] = {}
        with torch.inference_mode():
            for batch in self.eval_batches():
                batch = {name: value.to(self.accelerator.device) for name, value in batch.items()}
                with self.accelerator.autocast():
                    logits = self.logits(batch)
                labels = batch["labels"]
                loss_sum += float(
                    torch.nn.functional.cross_entropy(
                        logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
                    )
                )
                tokens += int((labels != -100).sum())
                # An image with several captions appears in several rows: caption it once.
                images = batch["image"].tolist()
                first_rows = [row for row, image in enumerate(images) if image not in generated]
                first_rows = [row for row in first_rows if images.index(images[row]) == row]
                if first_rows:
                    picked = {name: value[first_rows] for name, value in batch.items()}
                    for row, text in zip(first_rows, self.generate(picked)):
                        generated[images[row]] = text
        self.train_mode(True)
        texts = [generated.get(index, "") for index in range(len(self.data.val))]
        references = [pair.captions for pair in self.data.val]
        scores = caption_scores(texts, references)
        self.per_image_rougeL = scores.per_image_rougeL
        evaluated = CaptionEvaluated(
            epoch=epoch,
            step=step,
            eval_loss=loss_sum / max(tokens, 1),
            rouge1=scores.rouge1,
            rouge2=scores.rouge2,
            rougeL=scores.rougeL,
            bleu=scores.bleu,
            images=len(texts),
            examples=tuple((refs[0], text) for refs, text in list(zip(references, texts))[:EXAMPLES_SHOWN]),
        )
        return evaluated, texts

    def write_predictions(self, generated: list[str]) -> None:
        with (self.output_dir / PREDICTIONS).open("w", encoding="utf-8") as out:
            for pair, text, rouge in zip(self.data.val, generated, self.per_image_rougeL):
                row = {
                    "image": str(pair.image),
                    "reference": pair.captions[0],
                    "references": list(pair.captions),
                    "generated": text,
                    "rougeL": round(rouge, 4),
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")

    def save(self, optimizer, scheduler, state: TrainingState) -> Iterator[CaptionEvent]:
        """The captioner where Finished puts it, and a checkpoint to resume from, each swapped in whole."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        checkpoint = self.output_dir / CHECKPOINT
        from .checkpoints import ACCELERATE_STATE

        with _ReplacedAtomically(checkpoint, accelerator.is_main_process) as folder:
            accelerator.wait_for_everyone()
            # GPT-2 ties lm_head to the word embeddings; accelerate warns on every save that it stored the tie once.
            with _quiet("accelerate.utils.other"):
                accelerator.save_state(str(folder / ACCELERATE_STATE))
            if accelerator.is_main_process:
                accelerator.unwrap_model(self.trained).save_pretrained(folder)
                self.captioner.processor.save_pretrained(folder)
                self.captioner.tokenizer.save_pretrained(folder)
                (folder / TRAINER_STATE).write_text(json.dumps(state.to_json()))
            accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _publish_files(checkpoint, self.output_dir, skip={ACCELERATE_STATE, TRAINER_STATE})
        accelerator.wait_for_everyone()
        yield Saved(path=str(self.output_dir), step=state.step)
