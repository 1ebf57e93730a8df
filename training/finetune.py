"""Fine-tune a ViT-family classifier on a folder of images: full or head-only, resumable, reporting events."""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Sequence

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    ViTConfig,
    ViTImageProcessor,
    get_scheduler,
)

from core.models import cpu_has_fast_bf16, fetch_pretrained

from .checkpoints import (
    ACCELERATE_STATE,
    CHECKPOINT,
    RUN_CONFIG,
    SPLIT,
    TRAINER_STATE,
    TrainingState,
    check_checkpoint,
    damaged,
    damaged_states,
    random_state_note,
    read_saved_settings,
    read_split,
    read_trainer_state,
)
from .data import DataError, ImageClassificationData, PreparedData, Sample, image_transforms, prepare_data
from .events import Evaluated, Event, Finished, Saved, Started, Step, Stopped, read_events, to_json
from .runs import EVENTS_LOG, write_figures

if TYPE_CHECKING:
    from .captioning import CaptionTrainConfig

log = logging.getLogger("vit_studio.training")

DEFAULT_BASE = "google/vit-base-patch16-224-in21k"
MODES = ("full", "head")
# What mixed precision a training run may use (core.models.PRECISIONS, for inference, also offers fp16).
TRAINING_PRECISIONS = ("auto", "bf16", "fp32")
RESULTS = "all_results.json"
MAX_GRAD_NORM = 1.0

# Bounds no one meets in real use, so a typo (or a hostile form) gets a sentence instead of a MemoryError. A side
# of 4096 px is 18x ViT-B's 224 (65,536 tokens at patch 16; attention cost grows with their square). A batch of
# 2**28 pixels (16 images at 4096, 1,024 at 512, 5,350 at 224) is 3 GiB of fp32 input alone, and training keeps
# tens of times that in activations: ViT-B at 224 fills a 141 GB H200 near 1,000 images a batch, so a batch
# within the bound is already several times what the largest single GPU trains.
MAX_IMAGE_SIZE = 4096
MAX_BATCH_PIXELS = 2**28
# Loader processes: more than a machine has cores only thrash; 128 covers the largest servers.
MAX_DATALOADER_WORKERS = 128

# A ViT small enough to learn a few hundred photos on a laptop CPU without any download.
SCRATCH_PRESETS: dict[str, dict[str, Any]] = {
    "vit-small-scratch": dict(
        image_size=64, patch_size=8, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768
    ),
}


def base_settings(base: str) -> dict[str, str | None]:
    """FinetuneConfig's model fields for one "start from" choice: a scratch preset or a model/run to load."""
    base = (base or "").strip()
    if base in SCRATCH_PRESETS:
        return dict(model_name_or_path=None, config_name=base)
    return dict(model_name_or_path=base or None, config_name=None)


@dataclass(frozen=True)
class FinetuneConfig:
    """One training run. Field names follow transformers' image-classification example flags."""

    train_dir: Any  # a folder, a .zip, or a list of uploaded files: whatever training.data.prepare_data takes
    output_dir: str | Path
    validation_dir: Any = None  # a separate validation folder; else train_dir's val/ or a stratified split
    model_name_or_path: str | None = DEFAULT_BASE
    config_name: str | None = None  # train from scratch from this config: a SCRATCH_PRESETS name, a folder or an id
    mode: str = "full"  # "full": every weight; "head": a frozen backbone, features computed once
    num_train_epochs: int = 3
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 32
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    image_size: int | None = None  # None: the base model's own size
    augment: bool = True  # RandomResizedCrop + horizontal flip (full mode; head mode sees each image once)
    seed: int = 42
    precision: str = "auto"  # "auto": bf16 autocast where the hardware runs it fast
    val_fraction: float = 0.15
    resume: bool = False  # continue from output_dir/checkpoint when there is one
    dataloader_num_workers: int = 0
    max_data_bytes: int | None = None  # the unpacked data's cap (None: training.data's); a Space's disk budget sets it


def finetune(config: FinetuneConfig, stop: threading.Event | None = None) -> Iterator[Event]:
    """Train, yielding Started, Step..., Evaluated (each epoch), Saved, and Finished or Stopped.

    Setting `stop` ends the run after the current step: the model is saved where Finished would have
    saved it, a checkpoint lets `resume=True` continue, and Stopped is the last event. Every event is
    also appended to output_dir/events.jsonl.
    """
    check_config(config)
    output_dir = Path(config.output_dir)
    if config.resume and (output_dir / CHECKPOINT / TRAINER_STATE).is_file():
        check_checkpoint(output_dir)  # before the data, the model and the log are touched
    data = _prepare(config, output_dir)
    _check_batch_size(config, data)
    output_dir.mkdir(parents=True, exist_ok=True)
    resuming = config.resume and (output_dir / CHECKPOINT / TRAINER_STATE).is_file()
    # Under `accelerate launch` every process runs this; one of them keeps the log.
    log_path = output_dir / EVENTS_LOG if os.environ.get("RANK", "0") == "0" else Path(os.devnull)
    with log_path.open("a" if resuming else "w", encoding="utf-8") as log:
        for event in _run(config, data, output_dir, resuming, stop or threading.Event()):
            log.write(to_json(event) + "\n")
            log.flush()
            if isinstance(event, (Finished, Stopped)) and log_path.name == EVENTS_LOG:
                write_figures(output_dir)
            yield event


def check_config(config: FinetuneConfig) -> None:
    """Every setting checked before any data is read or model loaded, with a message that says what to do."""
    if config.mode not in MODES:
        raise ValueError(
            f"Unknown mode '{config.mode}': use 'full' (fine-tune every weight) or 'head' "
            "(train only the classifier on a frozen backbone)."
        )
    if config.precision not in TRAINING_PRECISIONS:
        raise ValueError(f"Unknown precision '{config.precision}': use one of {', '.join(TRAINING_PRECISIONS)}.")
    _check_number(config.learning_rate, "learning rate", lambda v: v > 0, "greater than 0 (e.g. 5e-5)")
    _check_whole(config.num_train_epochs, "epochs")
    _check_whole(config.per_device_train_batch_size, "batch size")
    _check_whole(config.per_device_eval_batch_size, "evaluation batch size")
    _check_number(config.weight_decay, "weight decay", lambda v: v >= 0, "0 or more")
    _check_number(config.warmup_ratio, "warmup ratio", lambda v: 0 <= v < 1, "from 0 up to (not including) 1")
    if config.image_size is not None:
        _check_whole(config.image_size, "image size")
        check_image_size(config.image_size)
        check_batch_pixels(config, config.image_size)
    if (
        isinstance(config.dataloader_num_workers, bool)
        or not isinstance(config.dataloader_num_workers, int)
        or not 0 <= config.dataloader_num_workers <= MAX_DATALOADER_WORKERS
    ):
        raise ValueError(
            f"The number of data loader workers must be a whole number from 0 to "
            f"{MAX_DATALOADER_WORKERS}, not {config.dataloader_num_workers!r}."
        )
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**32:
        raise ValueError(f"The seed must be a whole number from 0 to {2**32 - 1}, not {config.seed!r}.")
    if not config.model_name_or_path and not config.config_name:
        raise ValueError(
            "No model to start from: give a base model (hub id or folder), or a config to train "
            f"from scratch (e.g. {next(iter(SCRATCH_PRESETS))})."
        )
    if not str(config.output_dir).strip():
        raise ValueError("No output folder given for the trained model.")


def check_image_size(
    side: int,
    what: str = "The image size",
    fix: str = "leave it unset to use the model's own, or pick one such as 224 or 384",
) -> None:
    """`what` (the image size, a model's or a config's) at most MAX_IMAGE_SIZE pixels a side."""
    if side > MAX_IMAGE_SIZE:
        raise ValueError(f"{what} is {side} pixels a side; at most {MAX_IMAGE_SIZE} can be trained: {fix}.")


def check_batch_pixels(config: FinetuneConfig, side: int) -> None:
    """The pixels of one training batch of `side`-pixel images within MAX_BATCH_PIXELS. (A head-only run's
    training batches hold one feature vector per image, not pixels; evaluation batches are fitted by
    _fitted_eval_batch instead, since their size changes no result.)"""
    size = config.per_device_train_batch_size
    if config.mode != "head" and size * side * side > MAX_BATCH_PIXELS:
        raise ValueError(
            f"A batch of {size} images of {side}x{side} pixels is {size * side * side / 1e6:,.0f} "
            f"million pixels, more than one device can train on (at most "
            f"{MAX_BATCH_PIXELS / 1e6:,.0f} million): lower the batch size to "
            f"{_most_images(side)} or less, or the image size."
        )


def _most_images(side: int) -> int:
    return max(MAX_BATCH_PIXELS // (side * side), 1)


def _fitted_eval_batch(config: FinetuneConfig, side: int | None) -> FinetuneConfig:
    """The config with its evaluation batch (which is only a speed setting) cut to MAX_BATCH_PIXELS."""
    if not side or config.per_device_eval_batch_size <= _most_images(side):
        return config
    return replace(config, per_device_eval_batch_size=_most_images(side))


def _check_whole(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"The {name} must be a whole number of at least 1, not {value!r}.")


def _check_number(value: Any, name: str, ok, wanted: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"The {name} must be {wanted}, not {value!r}.")


def _check_batch_size(config: FinetuneConfig, data: PreparedData) -> None:
    if config.per_device_train_batch_size > len(data.train):
        raise DataError(
            f"The batch size ({config.per_device_train_batch_size}) is larger than the training set "
            f"({len(data.train)} images): lower it to {len(data.train)} or less."
        )


# ---- data and model ----------------------------------------------------------------------------------------


def _prepare(config: FinetuneConfig, output_dir: Path) -> PreparedData:
    """The checked data; zips are extracted into the run folder so a resumed run finds the same files."""
    if isinstance(config.train_dir, PreparedData):
        return config.train_dir
    if config.resume and (output_dir / SPLIT).is_file():
        # The checkpoint's batch positions only mean something on the split it was trained on; and a zip
        # need not be unpacked again.
        return read_split(output_dir)
    work_dir = output_dir / "data"
    data = prepare_data(
        config.train_dir,
        work_dir / "train",
        val_fraction=config.val_fraction,
        seed=config.seed,
        max_bytes=config.max_data_bytes,
    )
    if config.validation_dir is None:
        return data
    validation = prepare_data(
        config.validation_dir,
        work_dir / "validation",
        val_fraction=config.val_fraction,
        seed=config.seed,
        max_bytes=config.max_data_bytes,
    )
    return with_validation(data, validation)


def with_validation(data: PreparedData, validation: PreparedData) -> PreparedData:
    """All of `data` for training and all of `validation` for evaluation, labels matched by class name."""
    unknown = sorted(set(validation.classes) - set(data.classes))
    if unknown:
        raise DataError(f"The validation folder has classes the training folder lacks: {', '.join(unknown)}.")
    index = {name: data.classes.index(name) for name in validation.classes}
    relabelled = tuple(
        Sample(sample.path, index[validation.classes[sample.label]]) for sample in (*validation.train, *validation.val)
    )
    return replace(data, train=(*data.train, *data.val), val=relabelled)


def _build_model(config: FinetuneConfig, classes: Sequence[str], checkpoint: Path | None):
    """(model, image processor): from the checkpoint when resuming, else from the base or from scratch,
    with a classifier sized for these classes (a new one, unless the base already has that many outputs:
    then its head is kept and renamed, so a run can continue from an earlier run)."""
    labels = dict(
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={name: index for index, name in enumerate(classes)},
    )
    if checkpoint is not None:
        try:
            loaded = fetch_pretrained(str(checkpoint), AutoModelForImageClassification, AutoImageProcessor)
        except ValueError as error:  # its files passed check_checkpoint, yet they do not make a model together
            raise damaged(checkpoint.parent, checkpoint) from error
        return loaded.model, loaded.processor
    if config.config_name:
        return _from_scratch(config, labels)

    class Relabelled:  # the loader's from_pretrained, with a new head sized for these classes
        @staticmethod
        def from_pretrained(name: str, **kwargs: Any):
            return AutoModelForImageClassification.from_pretrained(
                name, ignore_mismatched_sizes=True, **labels, **kwargs
            )

    loaded = fetch_pretrained(config.model_name_or_path or "", Relabelled, AutoImageProcessor)  # checked: set
    return loaded.model, loaded.processor


def _from_scratch(config: FinetuneConfig, labels: dict):
    torch.manual_seed(config.seed)
    if config.config_name in SCRATCH_PRESETS:
        preset = dict(SCRATCH_PRESETS[config.config_name])
        if config.image_size:
            preset["image_size"] = config.image_size
        model_config = ViTConfig(**preset, **labels)
    else:
        try:
            model_config = AutoConfig.from_pretrained(str(config.config_name), **labels)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Could not read the config '{config.config_name}': use one of "
                f"{', '.join(SCRATCH_PRESETS)}, a folder with config.json, or a hub id."
            ) from error
    size = getattr(model_config, "image_size", 224)
    size = size if isinstance(size, int) else size[0]
    if not config.image_size and isinstance(size, int):  # it sizes the position embeddings: bounded before them
        check_image_size(
            size, f"The image size in the config '{config.config_name}'", "set an image size such as 224 to train at"
        )
    model = AutoModelForImageClassification.from_config(model_config)
    # Images from 0-255 to -1..1, as google/vit-* do; a scratch model has no processor of its own.
    processor = ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return model, processor


def _native_size(model) -> int | None:
    """The side of the images a model was built for (its config's image_size), if it says."""
    native = getattr(model.config, "image_size", None)
    if isinstance(native, (list, tuple)) and native:
        native = native[0]
    return native if isinstance(native, int) and not isinstance(native, bool) and native > 0 else None


def _size_kwargs(model, image_size: int | None) -> dict:
    """Training at another size than the model's own needs interpolated position embeddings (ViT, DeiT)."""
    native = _native_size(model)
    if (
        image_size
        and native
        and image_size != native
        and "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
    ):
        return {"interpolate_pos_encoding": True}
    return {}


def _processor_for(processor, image_size: int | None):
    """The processor saved with the run resizes to the size the model was trained at."""
    if image_size:
        processor.size = {"height": image_size, "width": image_size}
        for attribute in ("crop_size",):
            if getattr(processor, attribute, None):
                setattr(processor, attribute, {"height": image_size, "width": image_size})
    return processor


# ---- the run folder ----------------------------------------------------------------------------------------


def write_run_files(config: FinetuneConfig, data: PreparedData, output_dir: Path) -> None:
    """run_config.json (the settings) and split.json (which image went where), so the run can be resumed
    with exactly the same split and its validation images looked at after training."""
    settings = {name: getattr(config, name) for name in FinetuneConfig.__dataclass_fields__}
    settings.update(train_dir=str(data.root), validation_dir=None, output_dir=str(output_dir), resume=False)
    (output_dir / RUN_CONFIG).write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    split = {
        "root": str(data.root),
        "classes": list(data.classes),
        "train": [[str(sample.path), sample.label] for sample in data.train],
        "val": [[str(sample.path), sample.label] for sample in data.val],
    }
    (output_dir / SPLIT).write_text(json.dumps(split), encoding="utf-8")


def resume_config(output_dir: str | Path) -> "FinetuneConfig | CaptionTrainConfig":
    """The settings of a stopped or interrupted run, set to continue from its checkpoint on the same split.
    Its settings, split and training state are checked here, so a damaged run is refused before a job starts;
    the checkpoint's weights are checked by finetune() before it trains."""
    output_dir = Path(output_dir)
    if not (output_dir / RUN_CONFIG).is_file():
        raise ValueError(
            f"'{output_dir.name or output_dir}' is not a training run (no {RUN_CONFIG}): pick a run from the list."
        )
    try:
        events = read_events(output_dir / EVENTS_LOG) if (output_dir / EVENTS_LOG).is_file() else []
    except (OSError, ValueError) as error:  # not UTF-8 (read_events skips lines that are not events)
        raise damaged(output_dir, output_dir / EVENTS_LOG) from error
    if events and isinstance(events[-1], Finished):
        raise ValueError(
            f"The run '{output_dir.name}' has finished; to train more, start a new run from it "
            "(pick it under 'Start from')."
        )
    if not (output_dir / CHECKPOINT / TRAINER_STATE).is_file():
        raise ValueError(
            f"The run '{output_dir.name}' has no checkpoint to resume from (it stopped before its "
            "first save); start it again instead."
        )
    if read_saved_settings(output_dir).get("task") == "caption":
        from .captioning import caption_resume_config  # captioning builds on this module

        read_trainer_state(output_dir)
        return caption_resume_config(output_dir)
    config = _saved_config(output_dir)
    read_trainer_state(output_dir)
    return replace(config, train_dir=read_split(output_dir), output_dir=output_dir, resume=True)


def _saved_config(output_dir: Path) -> FinetuneConfig:
    """run_config.json as a checked FinetuneConfig. Settings this version does not know are left out (a run
    written by another version still resumes); missing or unusable ones mean the file is damaged."""
    settings = read_saved_settings(output_dir)
    known = {name: value for name, value in settings.items() if name in FinetuneConfig.__dataclass_fields__}
    config = FinetuneConfig(**{**known, "output_dir": output_dir, "resume": True})
    try:
        check_config(config)
    except ValueError as error:
        raise damaged(output_dir, output_dir / RUN_CONFIG) from error
    return config


# ---- the run -----------------------------------------------------------------------------------------------


def _accelerator(precision: str):
    """An Accelerator with this run's mixed precision. Under `accelerate launch` its flags win; in one process
    (the app trains several runs in a row) the previous run's setting is cleared first."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    mixed = "no"
    if precision == "bf16" or (precision == "auto" and _fast_bf16()):
        mixed = "bf16"
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "ACCELERATE_MIXED_PRECISION" in os.environ
    if launched:
        return Accelerator()
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed)


def _precision_name(mixed_precision: str) -> str:
    return "fp32" if mixed_precision == "no" else f"{mixed_precision} autocast"


def _fast_bf16() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def _run(
    config: FinetuneConfig, data: PreparedData, output_dir: Path, resuming: bool, stop: threading.Event
) -> Iterator[Event]:
    from accelerate.utils import set_seed

    set_seed(config.seed)
    accelerator = _accelerator(config.precision)
    checkpoint = output_dir / CHECKPOINT if resuming else None
    if accelerator.is_main_process and not resuming:
        write_run_files(config, data, output_dir)
    model, processor = _build_model(config, data.classes, checkpoint)
    side = config.image_size or _native_size(model)
    if not config.image_size and side:  # the model's own size, known now: bounded as a given size is
        check_image_size(side, "The model's own image size", "set an image size such as 224 to train at")
        check_batch_pixels(config, side)
    config = _fitted_eval_batch(config, side)
    model.train().requires_grad_(True)
    processor = _processor_for(processor, config.image_size)
    train_transform, eval_transform = image_transforms(processor, config.image_size, config.augment)
    if config.mode == "head" and accelerator.num_processes > 1:
        # The cached features and their batches live in one process; a linear head needs no more than that.
        raise ValueError(
            "Head-only training runs in one process: start it without accelerate launch, or use "
            "--mode full across several devices."
        )
    trainer = _HeadTrainer if config.mode == "head" else _FullTrainer
    yield from trainer(
        config, data, output_dir, accelerator, model, processor, train_transform, eval_transform, checkpoint, stop
    ).run()


class _FullTrainer:
    """The no_trainer loop of transformers' image-classification example, with events, stop and resume."""

    save_each_epoch = True  # an epoch takes minutes; a checkpoint after each one bounds what a crash loses

    def __init__(
        self, config, data, output_dir, accelerator, model, processor, train_transform, eval_transform, checkpoint, stop
    ):
        self.config, self.data, self.output_dir, self.accelerator = config, data, output_dir, accelerator
        self.model, self.processor, self.stop = model, processor, stop
        self.train_set = ImageClassificationData(data.train, train_transform)
        self.eval_set = ImageClassificationData(data.val, eval_transform)
        self.checkpoint = checkpoint
        self.forward_kwargs = _size_kwargs(model, config.image_size)
        self._train_loader = self._eval_loader = None
        processes = accelerator.num_processes
        self.steps_per_epoch = math.ceil(len(self.train_set) / (config.per_device_train_batch_size * processes))
        self.total_steps = self.steps_per_epoch * config.num_train_epochs

    # -- the parts a head-only run replaces
    def parameters(self):
        return self.model.named_parameters()

    def train_batches(self, epoch: int):
        # Prepared once: accelerate keeps every loader it prepares (and checkpoints each one's sampler), so a
        # loader per epoch would pile up. The shuffle is set per epoch instead.
        if self._train_loader is None:
            self._train_shuffle = EpochShuffle(len(self.train_set), self.config.seed)
            self._train_loader = self.accelerator.prepare_data_loader(
                torch.utils.data.DataLoader(
                    self.train_set,
                    batch_size=self.config.per_device_train_batch_size,
                    sampler=self._train_shuffle,
                    num_workers=self.config.dataloader_num_workers,
                    collate_fn=collate,
                )
            )
        self._train_shuffle.use_epoch(epoch)
        return self._train_loader

    def eval_batches(self):
        if self._eval_loader is None:
            self._eval_loader = self.accelerator.prepare_data_loader(
                torch.utils.data.DataLoader(
                    self.eval_set,
                    batch_size=self.config.per_device_eval_batch_size,
                    num_workers=self.config.dataloader_num_workers,
                    collate_fn=collate,
                )
            )
        return self._eval_loader

    def logits(self, batch) -> torch.Tensor:
        return self.trained(pixel_values=batch["pixel_values"], **self.forward_kwargs).logits

    def train_mode(self, training: bool) -> None:
        self.trained.train(training)

    # -- the loop
    def run(self) -> Iterator[Event]:
        config, accelerator = self.config, self.accelerator
        # fused: one kernel for all parameters (as the Trainer uses); the default loops parameter by parameter,
        # a third of a ViT-B step on a CPU.
        optimizer = torch.optim.AdamW(
            _parameter_groups(self.parameters(), config.weight_decay), lr=config.learning_rate, fused=True
        )
        # accelerate steps a prepared scheduler once per process on every optimizer step, so the schedule is
        # sized for that (as transformers' no_trainer example does); with one process it is the plain schedule.
        processes = accelerator.num_processes
        scheduler = get_scheduler(
            "linear",
            optimizer,
            num_warmup_steps=math.ceil(config.warmup_ratio * self.total_steps) * processes,
            num_training_steps=self.total_steps * processes,
        )
        self.trained, optimizer, scheduler = accelerator.prepare(self.trainable(), optimizer, scheduler)
        state, notes = _load_state(accelerator, self.checkpoint) if self.checkpoint else (TrainingState(), ())
        yield Started(
            total_steps=self.total_steps,
            classes=self.data.classes,
            train_size=len(self.data.train),
            val_size=len(self.data.val),
            epochs=config.num_train_epochs,
            mode=config.mode,
            device=str(accelerator.device),
            precision=_precision_name(accelerator.mixed_precision),
            start_step=state.step,
            notes=notes,
        )
        try:
            yield from self.before_training()
        except _StopRequested:  # during a head-only run's feature pass, which can take minutes
            yield from self.save(optimizer, scheduler, state)
            yield Stopped(output_dir=str(self.output_dir), step=state.step)
            return
        started, first_step = time.perf_counter(), state.step
        timer = _StepTimer(self.total_steps - state.step)
        loss_function = torch.nn.CrossEntropyLoss()
        for epoch in range(state.epoch, config.num_train_epochs):
            self.train_mode(True)
            after_epoch = yield from epoch_steps(
                self,
                epoch,
                state,
                optimizer,
                scheduler,
                timer,
                lambda batch: loss_function(self.logits(batch).float(), batch["labels"]),
            )
            if after_epoch is None:
                return
            state = replace(after_epoch, epoch=epoch + 1)
            evaluated = self.evaluate(epoch + 1, state.step)
            state = replace(state, eval_loss=evaluated.eval_loss, eval_accuracy=evaluated.eval_accuracy)
            yield evaluated
            if self.save_each_epoch or epoch + 1 == config.num_train_epochs:
                yield from self.save(optimizer, scheduler, state)
        images_this_session = (state.step - first_step) * config.per_device_train_batch_size * accelerator.num_processes
        metrics = state.metrics(time.perf_counter() - started, config.num_train_epochs, images_this_session)
        if accelerator.is_main_process:
            (self.output_dir / RESULTS).write_text(json.dumps(metrics, indent=2))
        yield Finished(output_dir=str(self.output_dir), metrics=metrics)

    def trainable(self):
        return self.model

    def before_training(self) -> Iterator[Event]:
        return iter(())

    def evaluate(self, epoch: int, step: int) -> Evaluated:
        accelerator = self.accelerator
        self.train_mode(False)
        num_classes = len(self.data.classes)
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        loss_sum, count = 0.0, 0
        with torch.inference_mode():
            for batch in self.eval_batches():
                with accelerator.autocast():
                    logits = self.logits(batch).float()
                logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
                loss_sum += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
                count += len(labels)
                for true, predicted in zip(labels.tolist(), logits.argmax(dim=-1).tolist()):
                    confusion[true, predicted] += 1
        self.train_mode(True)
        totals = confusion.sum(dim=1).clamp(min=1)
        per_class = tuple((confusion.diag() / totals).tolist())
        return Evaluated(
            epoch=epoch,
            step=step,
            eval_loss=loss_sum / max(count, 1),
            eval_accuracy=float(confusion.diag().sum() / max(count, 1)),
            per_class=per_class,
            confusion=tuple(tuple(row) for row in confusion.tolist()),
        )

    def save(self, optimizer, scheduler, state: "TrainingState") -> Iterator[Event]:
        """The model where Finished puts it, and a checkpoint to resume from, each written under a temporary
        name first so a crash mid-write leaves the previous one whole."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        checkpoint = self.output_dir / CHECKPOINT
        with _ReplacedAtomically(checkpoint, accelerator.is_main_process) as folder:
            # Every process writes its own random state into the folder: it must exist first, and all of them
            # must be done before the main process swaps it in.
            accelerator.wait_for_everyone()
            accelerator.save_state(str(folder / ACCELERATE_STATE))
            if accelerator.is_main_process:
                self.save_model(folder)
                (folder / TRAINER_STATE).write_text(json.dumps(state.to_json()))
            accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _publish_files(checkpoint, self.output_dir, skip={ACCELERATE_STATE, TRAINER_STATE})
        accelerator.wait_for_everyone()
        yield Saved(path=str(self.output_dir), step=state.step)

    def save_model(self, folder: Path) -> None:
        self.accelerator.unwrap_model(self.trained).save_pretrained(folder)
        self.processor.save_pretrained(folder)

    def skip(self, batches, count: int):
        return self.accelerator.skip_first_batches(batches, count)


class _StopRequested(Exception):
    """Stop was pressed before the first training step (during a feature pass)."""


def epoch_steps(
    trainer: Any,
    epoch: int,
    state: "TrainingState",
    optimizer,
    scheduler,
    timer: "_StepTimer",
    loss_of: Callable[[dict], torch.Tensor],
) -> Generator[Any, None, "TrainingState | None"]:
    """One epoch's optimizer steps for any of the trainers (classifier, head only, captioner): a Step event each,
    picking up mid-epoch after a resume. Returns the state after the epoch, or None when Stop ended the run (the
    trainer's `save` and a Stopped event already yielded). `loss_of(batch)` runs under autocast."""
    accelerator = trainer.accelerator
    batches = trainer.train_batches(epoch)
    done_in_epoch = state.step - epoch * trainer.steps_per_epoch
    if done_in_epoch > 0:
        batches = trainer.skip(batches, done_in_epoch)
    for batch in batches:
        with accelerator.autocast():
            loss = loss_of(batch)
        accelerator.backward(loss)
        # Clipped at 1.0, the Trainer's default: a random or far-off head can otherwise kick the pretrained
        # weights with one huge step.
        accelerator.clip_grad_norm_(trainer.trained.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        state = state.after_step(float(loss.detach()))
        yield Step(
            epoch=epoch + 1,
            step=state.step,
            loss=float(loss.detach()),
            lr=scheduler.get_last_lr()[0],
            images_per_s=timer.tick(len(batch["labels"]) * accelerator.num_processes),
            seconds_left=timer.seconds_left(),
        )
        if trainer.stop.is_set():
            yield from trainer.save(optimizer, scheduler, replace(state, epoch=epoch))
            yield Stopped(output_dir=str(trainer.output_dir), step=state.step)
            return None
    return state


class _HeadTrainer(_FullTrainer):
    """Only the classifier learns, on backbone features computed once (so an epoch takes a moment, the way
    Teachable Machine feels instant). Images are seen once, without augmentation."""

    save_each_epoch = False  # epochs take moments; writing the whole model after each would dominate the run

    def trainable(self):
        self.head = _classifier(self.model)
        return self.head

    def parameters(self):
        return _classifier(self.model).named_parameters()

    def before_training(self) -> Iterator[Event]:
        self.model.requires_grad_(False)
        self.head.requires_grad_(True)
        self.train_features, self.train_labels = self._features(self.data.train)
        self.eval_features, self.eval_labels = self._features(self.data.val)
        return iter(())

    def _features(self, samples) -> tuple[torch.Tensor, torch.Tensor]:
        """What the classifier sees for each image: its input, caught on the way in, in fp32 on the CPU."""
        dataset = ImageClassificationData(samples, self._eval_transform())
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=self.config.per_device_eval_batch_size,
            num_workers=self.config.dataloader_num_workers,
            collate_fn=collate,
        )
        caught: list[torch.Tensor] = []
        hook = _classifier(self.model).register_forward_pre_hook(lambda _, inputs: caught.append(inputs[0].float()))
        self.model.eval().to(self.accelerator.device)
        labels = []
        try:
            with torch.inference_mode(), self.accelerator.autocast():
                for batch in loader:
                    if self.stop.is_set():
                        raise _StopRequested
                    self.model(pixel_values=batch["pixel_values"].to(self.accelerator.device), **self.forward_kwargs)
                    labels.append(batch["labels"])
        finally:
            hook.remove()
        return torch.cat(caught).cpu(), torch.cat(labels)

    def _eval_transform(self):
        return self.eval_set.transform

    def train_batches(self, epoch: int):
        generator = torch.Generator().manual_seed(self.config.seed + epoch)
        order = torch.randperm(len(self.train_labels), generator=generator)
        size = self.config.per_device_train_batch_size
        device = self.accelerator.device
        return [
            {
                "features": self.train_features[order[i : i + size]].to(device),
                "labels": self.train_labels[order[i : i + size]].to(device),
            }
            for i in range(0, len(order), size)
        ]

    def eval_batches(self):
        size = self.config.per_device_eval_batch_size
        device = self.accelerator.device
        return [
            {
                "features": self.eval_features[i : i + size].to(device),
                "labels": self.eval_labels[i : i + size].to(device),
            }
            for i in range(0, len(self.eval_labels), size)
        ]

    def logits(self, batch) -> torch.Tensor:
        return self.trained(batch["features"])

    def skip(self, batches, count: int):
        return batches[count:]

    def train_mode(self, training: bool) -> None:
        self.trained.train(training)

    def save_model(self, folder: Path) -> None:
        self.model.save_pretrained(folder)  # the head is the model's own classifier module, trained in place
        self.processor.save_pretrained(folder)


def _classifier(model) -> torch.nn.Module:
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(
            f"Head-only training needs a model with one linear classifier layer; "
            f"{type(model).__name__} has none. Use full fine-tuning."
        )
    return head


class EpochShuffle(torch.utils.data.Sampler):
    """A shuffle that depends only on (seed, epoch), so a resumed run replays an epoch's order exactly.
    (Not named set_epoch: accelerate calls that with its own count of passes, which restarts at 0 on resume.)"""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": torch.tensor([example["labels"] for example in examples]),
    }


def _parameter_groups(named_parameters, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: biases and normalisation scales are left alone (as in the examples)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "norm" in name.lower() else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _load_state(accelerator, checkpoint: Path) -> tuple[TrainingState, tuple[str, ...]]:
    """The training state, and accelerate's weights, optimizer, schedule and random state loaded into place; with
    notes for the user on what could not be (a random state not restored)."""
    run_dir, states = checkpoint.parent, checkpoint / ACCELERATE_STATE
    state = read_trainer_state(run_dir)
    try:
        accelerator.load_state(str(states))
    except (MemoryError, torch.cuda.OutOfMemoryError):
        raise  # the machine, not the file
    except Exception as error:  # noqa: BLE001 - an unpickling, shape or key error: the files do not fit together
        raise damaged_states(run_dir, states) from error
    note = random_state_note(run_dir, states, accelerator.process_index)
    if note is None:
        return state, ()
    log.warning("%s", note)  # the CLI prints the engine's warnings; the front ends show Started.notes
    return state, (note,)


class _StepTimer:
    """Images per second and time left, over the last few steps (the first steps are slow to warm up)."""

    def __init__(self, steps_left: int, window: int = 20):
        self.steps_left = steps_left
        self.durations: deque[tuple[float, int]] = deque(maxlen=window)
        self.last = time.perf_counter()

    def tick(self, images: int) -> float:
        now = time.perf_counter()
        self.durations.append((now - self.last, images))
        self.last = now
        self.steps_left -= 1
        seconds = sum(duration for duration, _ in self.durations)
        return sum(count for _, count in self.durations) / seconds if seconds > 0 else 0.0

    def seconds_left(self) -> float:
        if not self.durations:
            return 0.0
        return max(self.steps_left, 0) * sum(duration for duration, _ in self.durations) / len(self.durations)


class _ReplacedAtomically:
    """Write a folder under a temporary name, then swap it in: a crash leaves the old one or the new one."""

    def __init__(self, target: Path, main_process: bool = True):
        self.target = target
        self.temporary = target.with_name(target.name + ".tmp")
        self.main_process = main_process

    def __enter__(self) -> Path:
        if self.main_process:
            shutil.rmtree(self.temporary, ignore_errors=True)
            self.temporary.mkdir(parents=True)
        return self.temporary

    def __exit__(self, error_type, *_) -> None:
        if error_type is not None or not self.main_process:
            return
        previous = self.target.with_name(self.target.name + ".old")
        shutil.rmtree(previous, ignore_errors=True)
        if self.target.exists():
            self.target.rename(previous)
        self.temporary.rename(self.target)
        shutil.rmtree(previous, ignore_errors=True)


def _publish_files(source: Path, destination: Path, skip: set[str]) -> None:
    """Copy the checkpoint's model files into the run folder one by one, each through a temporary name,
    so classify() on the run folder sees a whole model file or the previous one."""
    for path in source.iterdir():
        if path.name in skip or not path.is_file():
            continue
        temporary = destination / (path.name + ".tmp")
        shutil.copy2(path, temporary)
        os.replace(temporary, destination / path.name)
