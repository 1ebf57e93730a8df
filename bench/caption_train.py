"""training.train_captioner vs transformers.Seq2SeqTrainer on ViT-GPT2 (full size, random weights) or
vit-gpt2-scratch: training images/s, frozen encoder vs one feature pass."""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

if TYPE_CHECKING:  # training imports transformers and accelerate: only when a benchmark runs
    from training.caption_data import CaptionData, CaptionPair

from .common import (
    aligned,
    interference_note,
    machine_cpu_seconds,
    machine_description,
    others_share,
    progress,
    spread,
    verdict,
)
from .train import (
    StepGate,
    TrainingRun,
    WorkerFailed,
    cpu_seconds_with_workers,
    gated_steps,
    interleaved_training,
    spread_2,
    timed_events,
)

# The targets: full captioner training at >= 1.5x Seq2SeqTrainer's images/s, and frozen-encoder training
# for FROZEN_EPOCHS epochs in <= 1.5x the time of one plain pass of the encoder over the same images.
TARGET_FULL_RATIO = 1.5
TARGET_FROZEN_RATIO = 1.5
FROZEN_EPOCHS = 10
FEATURE_BATCH = 64  # CaptionTrainConfig's per_device_eval_batch_size, which the frozen encoder's feature pass uses
MAX_TARGET_LENGTH = 32  # CaptionTrainConfig's default: caption tokens trained on, the end token included

# Full training contenders, each a short training run in a process of its own; the last two are for information.
CONTENDERS = ("trainer", "captioner", "captioner_fp32", "trainer_bf16")
# At full size each contender's process holds ~6 GB (weights, gradients, AdamW state, activations at batch 8): four
# would not fit beside the rest in 23 GB, so the bf16 Trainer (information only; captioner_fp32 already shows what
# bf16 brings) is left out there.
VIT_GPT2_CONTENDERS = ("trainer", "captioner", "captioner_fp32")

# The captioners benchmarked: "vit-gpt2" is nlpconnect/vit-gpt2-image-captioning's shapes (ViT-B/16 at 224, GPT-2
# 124M with cross-attention, 50257-token LM head) with random weights, built by bench/caption.py; "scratch" is
# train_captioner's own vit-gpt2-scratch (hidden size 128), where matmuls are only ~23% of a step.
MODELS = ("vit-gpt2", "scratch")


@dataclass(frozen=True)
class Settings:
    """How much each part does: warm-up then timed training steps at one batch size; frozen-encoder runs."""

    batch_size: int
    warmup_steps: int
    steps: int
    images: int  # captioned-shapes pictures generated; load_caption_data holds 10% out for validation
    frozen_rounds: (
        int  # frozen-encoder runs, each followed by a plain feature pass (and one more pass before the first)
    )
    frozen_images: int | None  # the first this many of the pictures for the frozen-encoder part; None: all of them
    contenders: tuple[str, ...] = CONTENDERS  # full training contenders, in the order of CONTENDERS

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.steps

    @property
    def train_images(self) -> int:
        # Every step a full batch, all within the first epoch: the epoch's end would run our evaluation.
        return self.total_steps * self.batch_size

    @property
    def frozen_pictures(self) -> int:
        return self.images if self.frozen_images is None else min(self.frozen_images, self.images)


# vit-gpt2-scratch trains at ~200 images/s on 2 cores: the whole default run takes about 2 minutes on a quiet
# machine (--quick seconds): 4 contenders x 23 steps of 32 images, then a feature pass, a 10-epoch frozen-encoder run
# (~340 decoder steps and 10 evaluations) and another feature pass over the 1,200 example pictures.
SCRATCH_FULL = Settings(batch_size=32, warmup_steps=3, steps=20, images=1200, frozen_rounds=1, frozen_images=None)
SCRATCH_QUICK = Settings(batch_size=4, warmup_steps=1, steps=2, images=24, frozen_rounds=1, frozen_images=None)
# Full-size ViT-GPT2 on 2 cores: a step of 8 pictures takes ~3 s in bf16 and ~5 s in fp32 (the first few longer), so
# 3 contenders x 8 steps take ~2 minutes; the frozen-encoder part on 64 pictures (58 for training: 2 decoder steps
# of 32 an epoch) ~3 minutes, a third of it saving the 1 GB captioner and its checkpoint after each epoch. With
# model building and loading, ~7 minutes on a quiet machine. --quick: a few pictures and one timed step each.
VIT_GPT2_FULL = Settings(
    batch_size=8, warmup_steps=2, steps=6, images=80, frozen_rounds=1, frozen_images=64, contenders=VIT_GPT2_CONTENDERS
)
VIT_GPT2_QUICK = Settings(
    batch_size=2, warmup_steps=1, steps=1, images=12, frozen_rounds=1, frozen_images=12, contenders=VIT_GPT2_CONTENDERS
)
PRESETS = {"vit-gpt2": (VIT_GPT2_FULL, VIT_GPT2_QUICK), "scratch": (SCRATCH_FULL, SCRATCH_QUICK)}
# Inference-mode kernels differ from training's: one small batch through the plain encoder before its timed pass.
WARMUP_IMAGES = 8


@dataclass(frozen=True)
class FrozenRun:
    """Seconds of each phase of one frozen-encoder run, from its Started event on (model loading left out), as the
    events' arrival times separate them."""

    features: float  # Started -> first Step: the encoder over every image (train and validation) and one step
    encoder: float  # of which the encoder's passes over every image, timed around them inside the run
    decoder: float  # first Step -> last Step, less the evaluations and saves between epochs: the decoder's steps
    evaluation: float  # each epoch's last Step -> its CaptionEvaluated: loss and generated captions on validation
    saving: float  # each CaptionEvaluated -> its Saved: the captioner and a checkpoint written to disk
    finish: float  # last Saved -> Finished: results and predictions
    decoder_step: float  # the median Step -> next Step within an epoch: one decoder step (and its batch of features)
    precision: str

    @property
    def training(self) -> float:
        return self.features + self.decoder

    @property
    def first_step(self) -> float:
        # The first step also allocates AdamW's state and runs the first backward: dearer than the later ones.
        return self.features - self.encoder

    @property
    def total(self) -> float:
        return self.training + self.evaluation + self.saving + self.finish


@dataclass(frozen=True)
class Result:
    """Every training step, frozen-encoder run and feature pass timed, plus what is needed to describe them."""

    settings: Settings
    model: str  # the captioner's shapes, in words
    train_images: int
    val_images: int
    frozen_train_images: int  # the frozen-encoder part's pictures (the first frozen_images), split likewise
    frozen_val_images: int
    runs: dict[str, TrainingRun]  # keyed as in CONTENDERS
    frozen_runs: list[FrozenRun]
    feature_pass_seconds: list[float]
    feature_precision: str
    others_cpu_share: float | None

    def timed_seconds(self, contender: str) -> tuple[float, ...]:
        return self.runs[contender].step_seconds[self.settings.warmup_steps :]

    def images_per_s(self, contender: str) -> list[float]:
        """Per timed step."""
        return [self.settings.batch_size / seconds for seconds in self.timed_seconds(contender)]

    def paired_speedups(self, contender: str, baseline: str) -> list[float]:
        """Step by step, baseline seconds over contender seconds: each pair ran back to back, in the same noise."""
        pairs = zip(self.timed_seconds(contender), self.timed_seconds(baseline))
        return [baseline_s / contender_s for contender_s, baseline_s in pairs]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def defaults(name: str) -> str:
        return ", ".join(f"{model} {getattr(PRESETS[model][0], name)}" for model in MODELS)

    parser.add_argument(
        "--model",
        choices=MODELS,
        default=MODELS[0],
        help="vit-gpt2: nlpconnect/vit-gpt2-image-captioning's shapes (ViT-B/16 224 + GPT-2 124M), random weights; "
        "scratch: train_captioner's vit-gpt2-scratch (hidden size 128) (default vit-gpt2)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: "
        + ", ".join(
            f"{model} {PRESETS[model][1].images} pictures, batch {PRESETS[model][1].batch_size}" for model in MODELS
        ),
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"training batch size for train_captioner and the Trainer alike (default {defaults('batch_size')})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help=f"timed optimizer steps per contender, interleaved step by step (default {defaults('steps')})",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help=f"untimed optimizer steps first, at least 1 (default {defaults('warmup_steps')})",
    )
    parser.add_argument(
        "--images",
        type=int,
        metavar="N",
        help=f"captioned-shapes pictures to generate, 10%% held out for validation (default {defaults('images')})",
    )
    parser.add_argument(
        "--frozen-images",
        type=int,
        metavar="N",
        help="the first N of the pictures for the frozen-encoder part, 10%% held out likewise (default vit-gpt2 "
        f"{VIT_GPT2_FULL.frozen_images}, scratch all)",
    )
    parser.add_argument(
        "--frozen-rounds",
        type=int,
        metavar="N",
        help=f"frozen-encoder runs, each between two plain feature passes (default {defaults('frozen_rounds')})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the pictures, the random weights and training")


def settings_from(args: argparse.Namespace) -> Settings:
    """The model's preset (--quick or not) with any flag given on top."""
    full, quick = PRESETS[args.model]
    preset = quick if args.quick else full
    given = dict(
        batch_size=args.batch_size,
        warmup_steps=args.warmup_steps,
        steps=args.steps,
        images=args.images,
        frozen_rounds=args.frozen_rounds,
        frozen_images=args.frozen_images,
    )
    return replace(preset, **{name: value for name, value in given.items() if value is not None})


def settings_problem(settings: Settings) -> str | None:
    for name in ("batch_size", "warmup_steps", "steps", "frozen_rounds"):
        if getattr(settings, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if settings.frozen_images is not None and settings.frozen_images < 2:
        return "--frozen-images must be at least 2 (one for training, one held out)"
    # About 10% are held out: the rest must fill every step's batch within one epoch.
    needed = settings.train_images + max(1, round(settings.train_images / 9))
    if settings.images < needed:
        return (
            f"--images {settings.images} is too few for {settings.total_steps} steps of {settings.batch_size} within "
            f"one epoch (plus 10% held out): give --images {needed} or more, or lower --batch-size or --steps"
        )
    return None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problem = settings_problem(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from transformers.utils import logging as transformers_logging

    from training.caption_data import load_caption_data
    from training.caption_examples import write_captioned_shapes

    transformers_logging.disable_progress_bar()  # save/load progress bars would bury the report
    # accelerate warns on every save that the tied lm_head is not written twice: ten times per frozen-encoder run.
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="vit-bench-caption-train-") as folder:
        progress(f"generating {settings.images} captioned-shapes pictures ...")
        shapes = write_captioned_shapes(Path(folder) / "shapes", count=settings.images, seed=args.seed)
        data = load_caption_data(shapes, seed=args.seed)
        if len(data.train) < settings.train_images:
            print(
                f"error: {len(data.train)} training pictures, but {settings.train_images} are needed: raise --images",
                file=sys.stderr,
            )
            return 2
        frozen_data = data
        if settings.frozen_pictures < settings.images:
            # The same seed draws the same pictures in the same order: these are the first frozen_images of them.
            frozen_shapes = write_captioned_shapes(
                Path(folder) / "frozen-shapes", count=settings.frozen_pictures, seed=args.seed
            )
            frozen_data = load_caption_data(frozen_shapes, seed=args.seed)
        model_dir = Path(folder) / "model"
        progress(f"building {args.model} with random weights ...")
        if args.model == "vit-gpt2":
            model = save_random_vit_gpt2(model_dir, args.seed)
        else:
            model = save_scratch_captioner(model_dir, data, args.seed)
        result = benchmark(str(model_dir), model, data, frozen_data, settings, args.seed, Path(folder))
    print(format_report(result))
    return 0


def save_random_vit_gpt2(folder: Path, seed: int) -> str:
    """ViT-GPT2 at nlpconnect/vit-gpt2-image-captioning's shapes, as bench/caption.py builds it (random weights, an
    offline-trained GPT-2 style tokenizer), saved once so every contender starts from the same weights. Returns its
    shapes."""
    from transformers import AutoTokenizer, VisionEncoderDecoderModel

    from .caption import build_random_vit_gpt2

    build_random_vit_gpt2(folder, seed)
    model = VisionEncoderDecoderModel.from_pretrained(folder)
    tokens = len(AutoTokenizer.from_pretrained(folder))
    return (
        f"vit-gpt2 at nlpconnect/vit-gpt2-image-captioning's shapes ({shapes_of(model)}; random weights, an "
        f"offline byte-level BPE tokenizer of {tokens} tokens)"
    )


def shapes_of(model) -> str:
    encoder, decoder = model.config.encoder, model.config.decoder
    parameters = sum(p.numel() for p in model.parameters())
    return (
        f"{parameters / 1e6:.1f}M parameters: ViT {encoder.num_hidden_layers} layers x {encoder.hidden_size} at "
        f"{encoder.image_size} px, patches of {encoder.patch_size}; GPT-2 {decoder.n_layer} layers x {decoder.n_embd}, "
        f"vocabulary {decoder.vocab_size}"
    )


def save_scratch_captioner(folder: Path, data: CaptionData, seed: int) -> str:
    """vit-gpt2-scratch built exactly as train_captioner builds it for this data and seed (its tokenizer trained on
    the training captions), saved once so every contender starts from the same weights. Returns its shapes."""
    from training.caption_model import SCRATCH_CAPTIONER, build_captioner

    captioner = build_captioner(
        model_name_or_path=None,
        encoder_model_name_or_path=None,
        decoder_model_name_or_path=None,
        config_name=SCRATCH_CAPTIONER,
        captions=[caption for pair in data.train for caption in pair.captions],
        max_target_length=MAX_TARGET_LENGTH,
        seed=seed,
    )
    captioner.model.save_pretrained(folder)
    captioner.processor.save_pretrained(folder)
    captioner.tokenizer.save_pretrained(folder)
    return f"scratch: {SCRATCH_CAPTIONER} ({shapes_of(captioner.model)}; random weights)"


# ---- the benchmark -----------------------------------------------------------------------------------------


def benchmark(
    model_dir: str,
    model: str,
    data: CaptionData,
    frozen_data: CaptionData,
    settings: Settings,
    seed: int,
    work_dir: Path,
) -> Result:
    """Full training step by step in turn on `data`, then frozen-encoder runs on `frozen_data` between plain feature
    passes over its pictures."""
    machine_before, own_before = machine_cpu_seconds(), cpu_seconds_with_workers()
    progress(
        f"full training: {len(settings.contenders)} contenders in turn, each {settings.warmup_steps} warm-up + "
        f"{settings.steps} timed steps of {settings.batch_size} pictures ..."
    )
    runs = interleaved_training(
        training_worker, settings.contenders, settings.total_steps, (model_dir, data, settings, seed), work_dir
    )

    progress(
        f"frozen encoder: {settings.frozen_rounds} run(s) of {FROZEN_EPOCHS} epochs on {len(frozen_data.train)} + "
        f"{len(frozen_data.val)} pictures, each between two plain feature passes ..."
    )
    feature_pass = FeaturePass(model_dir)
    images = [pair.image for pair in (*frozen_data.train, *frozen_data.val)]
    feature_pass(images[:WARMUP_IMAGES])
    feature_seconds = [seconds_of(feature_pass, images)]
    frozen_runs: list[FrozenRun] = []
    for _ in range(settings.frozen_rounds):
        output_dir = Path(tempfile.mkdtemp(prefix="frozen-", dir=work_dir))
        try:
            frozen_runs.append(frozen_run(model_dir, frozen_data, seed, output_dir))
        finally:
            shutil.rmtree(output_dir, ignore_errors=True)
        feature_seconds.append(seconds_of(feature_pass, images))
    return Result(
        settings=settings,
        model=model,
        train_images=len(data.train),
        val_images=len(data.val),
        frozen_train_images=len(frozen_data.train),
        frozen_val_images=len(frozen_data.val),
        runs=runs,
        frozen_runs=frozen_runs,
        feature_pass_seconds=feature_seconds,
        feature_precision=feature_pass.precision,
        others_cpu_share=others_share(machine_before, machine_cpu_seconds(), cpu_seconds_with_workers() - own_before),
    )


def seconds_of(feature_pass: FeaturePass, images: Sequence[Path]) -> float:
    start = time.perf_counter()
    feature_pass(images)
    return time.perf_counter() - start


# ---- full training, one step at a time per contender -------------------------------------------------------
#
# As in bench/train.py: each contender trains in a process of its own (accelerate keeps one mixed-precision setting
# per process) and takes one optimizer step whenever the parent says go, so the contenders' steps alternate and the
# other engineers' load hits them alike.


def training_worker(
    contender: str,
    model_dir: str,
    data: CaptionData,
    settings: Settings,
    seed: int,
    output_dir: Path,
    connection: Connection,
) -> None:
    """The body of a worker process: one contender's training, gated step by step."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    gate = StepGate(connection)
    try:
        if contender.startswith("trainer"):
            trainer_steps(model_dir, data.train, settings, seed, contender == "trainer_bf16", output_dir, gate)
        else:
            precision = "fp32" if contender == "captioner_fp32" else "auto"
            captioner_steps(model_dir, data, settings, seed, precision, output_dir, gate)
    except Exception:  # noqa: BLE001 - whatever it was, the parent reports it
        connection.send(WorkerFailed(contender, traceback.format_exc()))
    finally:
        connection.close()


def captioner_steps(
    model_dir: str, data: CaptionData, settings: Settings, seed: int, precision: str, output_dir: Path, gate: StepGate
) -> None:
    """train_captioner in full mode with its defaults but the batch size, closed after the last timed step, which
    comes before the first epoch ends: its evaluation (generation + ROUGE) and saving never run."""
    from training.captioning import CaptionTrainConfig, train_captioner
    from training.events import Started, Step

    config = CaptionTrainConfig(
        train_file=data,
        output_dir=output_dir,
        model_name_or_path=model_dir,
        config_name=None,
        mode="full",
        precision=precision,
        per_device_train_batch_size=settings.batch_size,
        max_target_length=MAX_TARGET_LENGTH,
        seed=seed,
    )
    events = train_captioner(config)
    try:
        for event in events:
            if isinstance(event, Started):
                gate.ready(event.precision)
                gate.wait()
            elif isinstance(event, Step):
                gate.done(event.loss)
                if event.step == settings.total_steps:
                    break
                gate.wait()
    finally:
        events.close()


def trainer_steps(
    model_dir: str,
    pairs: Sequence[CaptionPair],
    settings: Settings,
    seed: int,
    bf16: bool,
    output_dir: Path,
    gate: StepGate,
) -> None:
    """transformers.Seq2SeqTrainer with Seq2SeqTrainingArguments' defaults (fp32, fused AdamW, linear schedule,
    grad-norm clipping, RandomSampler, no dataloader workers) but the same batch size, pictures, tokens and seed,
    and no saving, reporting or evaluation; bf16=True for the information row."""
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        PrinterCallback,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        VisionEncoderDecoderModel,
    )

    arguments = Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.batch_size,
        max_steps=settings.total_steps,
        seed=seed,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,  # a progress bar among the report; it costs nothing measurable either way
        bf16=bf16,
        use_cpu=bf16,  # transformers refuses bf16 on a machine without a GPU unless told it is a CPU run
    )
    dataset = CaptionPairs(
        pairs, AutoTokenizer.from_pretrained(model_dir), AutoImageProcessor.from_pretrained(model_dir)
    )
    trainer = Seq2SeqTrainer(
        model=VisionEncoderDecoderModel.from_pretrained(model_dir),
        args=arguments,
        train_dataset=dataset,
        data_collator=padded_batch,
    )
    mixed = trainer.accelerator.mixed_precision
    trainer.add_callback(gated_steps(gate, "fp32" if mixed == "no" else f"{mixed} autocast"))
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints the final metrics among the report
    with warnings.catch_warnings():
        # The default dataloader_pin_memory=True warns on every CPU-only run; it changes nothing here.
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
        trainer.train()


class CaptionPairs(torch.utils.data.Dataset):
    """Image + caption examples for the Trainer, made as train_captioner makes its own: each caption of each image,
    tokens cut to MAX_TARGET_LENGTH - 1 plus the end token, the images resized and normalised without augmentation
    and kept once decoded (train_captioner keeps them too)."""

    def __init__(self, pairs: Sequence[CaptionPair], tokenizer, processor) -> None:
        from training.data import image_transforms

        self.images = [pair.image for pair in pairs]
        self.transform = image_transforms(processor, None, augment=False)[1]
        captions = [(index, caption) for index, pair in enumerate(pairs) for caption in pair.captions]
        tokens = tokenizer([caption for _, caption in captions], add_special_tokens=False)["input_ids"]
        end = tokenizer.eos_token_id
        self.examples = [(index, ids[: MAX_TARGET_LENGTH - 1] + [end]) for (index, _), ids in zip(captions, tokens)]
        self.decoded: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, position: int) -> dict:
        index, labels = self.examples[position]
        if index not in self.decoded:
            self.decoded[index] = decoded_pixels(self.images[index], self.transform)
        return {"pixel_values": self.decoded[index], "labels": labels}


def decoded_pixels(path: Path, transform) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        return transform(image.convert("RGB"))


def padded_batch(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Pixels stacked; labels padded with -100 (not scored) to the longest caption in the batch."""
    longest = max(len(example["labels"]) for example in examples)
    labels = torch.full((len(examples), longest), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        labels[row, : len(example["labels"])] = torch.tensor(example["labels"])
    return {"pixel_values": torch.stack([example["pixel_values"] for example in examples]), "labels": labels}


# ---- frozen encoder ----------------------------------------------------------------------------------------


def frozen_run(model_dir: str, data: CaptionData, seed: int, output_dir: Path) -> FrozenRun:
    """train_captioner in frozen-encoder mode for FROZEN_EPOCHS epochs with its defaults, timed by its events."""
    from training.captioning import CaptionTrainConfig, train_captioner
    from training.events import CaptionEvaluated, Finished, Saved, Started, Step

    config = CaptionTrainConfig(
        train_file=data,
        output_dir=output_dir,
        model_name_or_path=model_dir,
        config_name=None,
        mode="frozen_encoder",
        num_train_epochs=FROZEN_EPOCHS,
        max_target_length=MAX_TARGET_LENGTH,
        seed=seed,
    )
    started = first_step = last_step = finished = 0.0
    encoder_seconds: list[float] = []
    step_intervals: list[float] = []
    last_epoch = 0
    evaluations: list[float] = []
    saves: list[float] = []
    evaluated = saved = 0.0
    precision = "?"
    with timed_encoder_passes(encoder_seconds):
        events = list(timed_events(train_captioner(config)))
    for arrived, event in events:
        if isinstance(event, Started):
            started, precision = arrived, event.precision
        elif isinstance(event, Step):
            if event.epoch == last_epoch:
                step_intervals.append(arrived - last_step)
            first_step = first_step or arrived
            last_step, last_epoch = arrived, event.epoch
        elif isinstance(event, CaptionEvaluated):
            evaluated = arrived
            evaluations.append(evaluated - last_step)  # the epoch's last Step came just before
        elif isinstance(event, Saved):
            saved = arrived
            saves.append(saved - evaluated)
        elif isinstance(event, Finished):
            finished = arrived
    evaluation, saving = sum(evaluations), sum(saves)
    finish = finished - saved
    return FrozenRun(
        features=first_step - started,
        encoder=sum(encoder_seconds),
        # Started -> Finished, less everything that is not training: what is left after the features is the
        # decoder's steps (and the building of each epoch's batches of features).
        decoder=finished - started - evaluation - saving - finish - (first_step - started),
        evaluation=evaluation,
        saving=saving,
        finish=finish,
        # 0 when every epoch had one step only (too few pictures): there is no later step to take the median of.
        decoder_step=statistics.median(step_intervals) if step_intervals else 0.0,
        precision=precision,
    )


@contextmanager
def timed_encoder_passes(seconds: list[float]) -> Iterator[None]:
    """Each call of frozen-encoder mode's own feature pass timed into `seconds`. No event separates it from the first
    decoder step (which also pays for AdamW's state and the first backward), so the benchmark times the private
    method itself; it runs unchanged."""
    from training.captioning import _CaptionTrainer

    original = _CaptionTrainer.encoder_features

    def timed(trainer: _CaptionTrainer, dataset):
        start = time.perf_counter()
        try:
            return original(trainer, dataset)
        finally:
            seconds.append(time.perf_counter() - start)

    _CaptionTrainer.encoder_features = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        _CaptionTrainer.encoder_features = original  # type: ignore[method-assign]


class FeaturePass:
    """One plain forward of the encoder over the images, as frozen-encoder mode's feature pass does it: the same
    transform, batch FEATURE_BATCH, inference mode, the autocast train_captioner picks here ("auto"), fp32 out."""

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoImageProcessor, VisionEncoderDecoderModel

        from core.models import cpu_has_fast_bf16
        from training.data import image_transforms

        self.encoder = VisionEncoderDecoderModel.from_pretrained(model_dir).encoder.eval()
        self.transform = image_transforms(AutoImageProcessor.from_pretrained(model_dir), None, augment=False)[1]
        # train_captioner's precision="auto" rule on a CPU: bf16 autocast where the CPU has bf16 units.
        self.autocast = cpu_has_fast_bf16()
        self.precision = "bf16 autocast" if self.autocast else "fp32"

    def __call__(self, images: Sequence[Path]) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            for start in range(0, len(images), FEATURE_BATCH):
                pixels = torch.stack(
                    [decoded_pixels(path, self.transform) for path in images[start : start + FEATURE_BATCH]]
                )
                self.encoder(pixel_values=pixels).last_hidden_state.float()


# ---- the report --------------------------------------------------------------------------------------------


def format_report(result: Result) -> str:
    settings = result.settings
    full_ratio = median_images_per_s(result, "captioner") / median_images_per_s(result, "trainer")
    frozen_ratio = frozen_over_feature_pass(result)
    features_ratio = features_over_feature_pass(result)
    frozen_vs_full = frozen_over_full_mode(result)
    ratios = [
        ("ratio", "value", "target"),
        (
            "train_captioner / Seq2SeqTrainer training images/s",
            f"{full_ratio:.3g}x",
            verdict(full_ratio >= TARGET_FULL_RATIO, f">= {TARGET_FULL_RATIO:g}x"),
        ),
        (
            f"frozen encoder {FROZEN_EPOCHS} epochs (training part) / one feature pass",
            f"{frozen_ratio:.3g}x",
            verdict(frozen_ratio <= TARGET_FROZEN_RATIO, f"<= {TARGET_FROZEN_RATIO:g}x"),
        ),
        (
            "restated (information): frozen encoder's own feature pass (timed inside) / one plain feature pass",
            f"{features_ratio:.3g}x",
            verdict(features_ratio <= TARGET_FROZEN_RATIO, f"<= {TARGET_FROZEN_RATIO:g}x (encoder once per image)"),
        ),
        (
            f"restated (information): frozen encoder {FROZEN_EPOCHS} epochs (training part) / full mode "
            f"{FROZEN_EPOCHS} epochs (estimated)",
            f"{frozen_vs_full:.3g}x",
            verdict(frozen_vs_full < 1, "< 1x (frozen is faster)"),
        ),
    ]
    left_out = [name for name in CONTENDERS if name not in settings.contenders]
    frozen_pictures = result.frozen_train_images + result.frozen_val_images
    frozen_part = (
        "the same"
        if frozen_pictures == result.train_images + result.val_images
        else f"the first {result.frozen_train_images} + {result.frozen_val_images} of them"
    )
    return "\n".join(
        [
            "",
            f"{result.model}; {result.train_images} + {result.val_images} generated captioned-shapes pictures "
            f"(training + validation) for full training, {frozen_part} for the frozen encoder",
            f"full training: batch {settings.batch_size} for all, {settings.warmup_steps} warm-up + {settings.steps} "
            f"timed optimizer steps each within the first epoch (same pictures, captions, tokens and starting "
            "weights), the contenders taking steps in turn, each in its own process; a step is timed from the go to "
            "its end (loading its batch included); medians of the timed steps; model building, data loading, "
            "evaluation (train_captioner's generation + ROUGE runs at an epoch's end, which no timed step reaches) and "
            "saving excluded",
            f"frozen encoder: train_captioner's defaults, timed by its events' arrival from Started on (model loading "
            f"excluded); training part = features + decoder steps, i.e. Started -> Finished less each epoch's "
            "evaluation (last Step -> CaptionEvaluated), saving (-> Saved) and the closing results (-> Finished); each "
            f"run between two plain feature passes over the same {frozen_pictures} pictures; medians",
            f"full mode {FROZEN_EPOCHS} epochs (estimated) = {FROZEN_EPOCHS} x {result.frozen_train_images} pictures / "
            "train_captioner's median full-training images/s (b) on the same model",
            *(
                [f"left out at this model size (memory: ~6 GB per contender's process): {', '.join(left_out)}"]
                if left_out
                else []
            ),
            "share of the bf16 matmul ceiling: not reported (bench/train.py reports none)",
            f"machine: {machine_description()}",
            interference_note(result.others_cpu_share),
            "",
            *aligned(training_rows(result)),
            "",
            *aligned(frozen_rows(result)),
            "",
            *aligned(ratios),
            *why_frozen_misses(result),
            "",
            *fidelity_lines(result),
        ]
    )


def why_frozen_misses(result: Result) -> list[str]:
    """The original frozen-encoder target in the phase breakdown's terms: what one picture costs the decoder's
    training step against what it costs the encoder's forward."""
    runs = result.frozen_runs
    pictures = result.frozen_train_images + result.frozen_val_images
    encoder_ms = 1000 * statistics.median(result.feature_pass_seconds) / pictures
    decoder_ms = 1000 * statistics.median(run.decoder for run in runs) / (FROZEN_EPOCHS * result.frozen_train_images)
    floor = FROZEN_EPOCHS * decoder_ms * result.frozen_train_images / (encoder_ms * pictures)
    return [
        f"why the frozen-encoder target is missed: one picture costs the encoder's forward {encoder_ms:.3g} ms and the "
        f"decoder's training step {decoder_ms:.3g} ms an epoch ({decoder_ms / encoder_ms:.2g}x), so {FROZEN_EPOCHS} "
        f"epochs of decoder steps alone take {floor:.3g}x one feature pass however the features are computed;",
        f"  <= {TARGET_FROZEN_RATIO:g}x holds only where the decoder's step costs under "
        f"{(TARGET_FROZEN_RATIO - 1) / FROZEN_EPOCHS:.2g}x the encoder's forward. The restated rows say what the mode "
        "promises: the encoder once per picture, and epochs cheaper than full training's.",
    ]


def median_images_per_s(result: Result, contender: str) -> float:
    return statistics.median(result.images_per_s(contender))


def training_rows(result: Result) -> list[tuple[str, ...]]:
    labels = {
        "trainer": "(a) transformers.Seq2SeqTrainer, Seq2SeqTrainingArguments defaults",
        "captioner": '(b) training.train_captioner, mode="full", precision="auto"',
        "captioner_fp32": '    training.train_captioner, precision="fp32" (information)',
        "trainer_bf16": "    transformers.Seq2SeqTrainer, bf16=True (information)",
    }
    ours_per_s = median_images_per_s(result, "captioner")
    rows = [("full training", "precision", "images/s", "min-max", "ours/this", "step by step min-max")]
    for name in result.runs:
        per_s = median_images_per_s(result, name)
        rows.append(
            (
                labels[name],
                result.runs[name].precision,
                f"{per_s:.1f}",
                spread(result.images_per_s(name)),
                f"{ours_per_s / per_s:.3g}x",
                spread_2(result.paired_speedups("captioner", name)),
            )
        )
    return rows


def frozen_over_feature_pass(result: Result) -> float:
    training = statistics.median(run.training for run in result.frozen_runs)
    return training / statistics.median(result.feature_pass_seconds)


def features_over_feature_pass(result: Result) -> float:
    """Frozen-encoder mode's own encoder passes over every image (timed inside the run) over a plain one."""
    encoder = statistics.median(run.encoder for run in result.frozen_runs)
    return encoder / statistics.median(result.feature_pass_seconds)


def full_mode_seconds(result: Result) -> float:
    """FROZEN_EPOCHS epochs of full training over the frozen part's training pictures, at train_captioner's median
    full-training images/s on the same model (its evaluations and saves left out, as in the frozen run's training
    part)."""
    return FROZEN_EPOCHS * result.frozen_train_images / median_images_per_s(result, "captioner")


def frozen_over_full_mode(result: Result) -> float:
    return statistics.median(run.training for run in result.frozen_runs) / full_mode_seconds(result)


def frozen_rows(result: Result) -> list[tuple[str, ...]]:
    runs = result.frozen_runs
    feature_s = statistics.median(result.feature_pass_seconds)
    return [
        ("frozen encoder vs one feature pass", "precision", "seconds", "min-max", "this/feature pass"),
        (
            f"(c) one feature pass of the encoder, batch {FEATURE_BATCH}",
            result.feature_precision,
            f"{feature_s:.2f}",
            spread_2(result.feature_pass_seconds),
            "1x",
        ),
        (
            f'(d) training.train_captioner, mode="frozen_encoder", {FROZEN_EPOCHS} epochs: training part',
            runs[0].precision,
            f"{statistics.median(run.training for run in runs):.2f}",
            spread_2([run.training for run in runs]),
            f"{frozen_over_feature_pass(result):.3g}x",
        ),
        phase_row("    features (Started -> first Step)", runs, "features", feature_s),
        phase_row("      of which the encoder over every image (timed inside)", runs, "encoder", feature_s),
        phase_row("      of which the first decoder step (the rest)", runs, "first_step", feature_s),
        phase_row("    one later decoder step (median, Step -> Step in an epoch)", runs, "decoder_step", feature_s),
        phase_row(f"    decoder steps, {FROZEN_EPOCHS} epochs", runs, "decoder", feature_s),
        phase_row("    not counted: evaluations (-> CaptionEvaluated)", runs, "evaluation", feature_s),
        phase_row("    not counted: saving (-> Saved)", runs, "saving", feature_s),
        phase_row("    not counted: results (-> Finished)", runs, "finish", feature_s),
        phase_row("    the whole run, Started -> Finished", runs, "total", feature_s),
        (
            f"    full mode, {FROZEN_EPOCHS} epochs on the same pictures (estimated from (b))",
            "",
            f"{full_mode_seconds(result):.2f}",
            "",
            f"{full_mode_seconds(result) / feature_s:.3g}x",
        ),
    ]


def phase_row(label: str, runs: Sequence[FrozenRun], phase: str, feature_s: float) -> tuple[str, ...]:
    seconds = statistics.median(getattr(run, phase) for run in runs)
    return label, "", f"{seconds:.2f}", "", f"{seconds / feature_s:.3g}x"


def fidelity_lines(result: Result) -> list[str]:
    """Both train_captioner runs share weights, seed and batches, so only the precision differs between their losses."""
    if "captioner_fp32" not in result.runs:
        return ["loss curve, train_captioner vs fp32: not measured (no fp32 run)"]
    reduced, reference = result.runs["captioner"], result.runs["captioner_fp32"]
    differences = [abs(a - b) for a, b in zip(reduced.losses, reference.losses)]
    return [
        f"loss curve, train_captioner {reduced.precision} vs fp32 over the first {len(differences)} steps (same "
        f"weights, seed and batches): max |difference| {max(differences):.2g}; final-step loss "
        f"{reduced.losses[-1]:.4f} vs {reference.losses[-1]:.4f}",
    ]
