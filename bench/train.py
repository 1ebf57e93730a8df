"""training.finetune vs transformers.Trainer, ViT-B/16: training images/s, head-only vs one feature pass, bf16 loss."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch

if TYPE_CHECKING:  # training imports transformers and accelerate: only when a benchmark runs
    from training.data import PreparedData, Sample

from .common import (
    aligned,
    interference_note,
    machine_cpu_seconds,
    machine_description,
    others_share,
    own_cpu_seconds,
    progress,
    spread,
    verdict,
)

# The targets: full fine-tuning at >= 1.5x the Trainer's images/s, and head-only training for
# HEAD_EPOCHS epochs in <= 1.5x the time of one plain feature-extraction pass over the same photos.
TARGET_FULL_RATIO = 1.5
TARGET_HEAD_RATIO = 1.5
HEAD_EPOCHS = 10
FEATURE_BATCH = 32  # FinetuneConfig's per_device_eval_batch_size, which head mode's feature pass uses
HEAD_BATCH = 16  # FinetuneConfig's per_device_train_batch_size (lowered only for a smaller training set)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "hymenoptera" / "train"

# ViTConfig's defaults are google/vit-base-patch16-224's shapes (ViT-B/16 at 224); the smoke test shrinks them.
MODEL_SHAPE: dict[str, int] = {}

# Full fine-tuning contenders, each a short training run of its own; the last is for information (and bf16 fidelity).
CONTENDERS = ("trainer", "finetune", "finetune_fp32")


@dataclass(frozen=True)
class Settings:
    """How much each part does: warm-up then timed training steps at one batch size; head-only runs on N photos."""

    batch_size: int
    warmup_steps: int
    steps: int
    head_images: int | None  # photos for the head-only part; None: every photo
    head_rounds: int  # head-only runs, each followed by a plain feature pass (and one more pass before the first)

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.steps

    @property
    def train_images(self) -> int:
        # One epoch over exactly this many photos is total_steps full batches: finetune has no max_steps.
        return self.total_steps * self.batch_size


# ViT-B/16 trains at 1-2 images/s on 2 cores and infers at ~7: a full run takes ~8 minutes on a quiet machine
# (--quick ~1): 3 contenders x 9 steps of 16 photos, then three passes over all 245 photos (plain pass, head-only
# run, plain pass). Other engineers' load can double that.
FULL = Settings(batch_size=16, warmup_steps=1, steps=8, head_images=None, head_rounds=1)
QUICK = Settings(batch_size=4, warmup_steps=1, steps=1, head_images=32, head_rounds=1)
# Inference-mode kernels differ from training's: one small batch through the plain model before its timed pass.
WARMUP_PHOTOS = 8


@dataclass(frozen=True)
class TrainingRun:
    """One short full fine-tuning run: the seconds and loss of each optimizer step, warm-up included."""

    step_seconds: tuple[float, ...]  # from the go to the step's end: the next batch's loading and the step
    losses: tuple[float, ...]  # empty for the Trainer, which logs none with logging off
    precision: str


@dataclass(frozen=True)
class HeadRun:
    """Seconds of each phase of one head-only run, from its Started event on (so model loading is left out)."""

    features: float  # Started -> first Step: the backbone over every photo (and one step of the head)
    epochs: float  # first Step -> last Evaluated: the head's training and per-epoch evaluation
    save: float  # last Evaluated -> Saved: the model and a checkpoint written to disk
    finish: float  # Saved -> Finished: results and figures
    precision: str

    @property
    def total(self) -> float:
        return self.features + self.epochs + self.save + self.finish


@dataclass(frozen=True)
class Result:
    """Every training step, head-only run and feature pass timed, plus what is needed to describe them."""

    settings: Settings
    classes: tuple[str, ...]
    photos: int  # usable photos in the data folder
    runs: dict[str, TrainingRun]  # keyed as in CONTENDERS
    head_runs: list[HeadRun]
    feature_pass_seconds: list[float]
    head_photos: int
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: batch {QUICK.batch_size}, {QUICK.steps} timed step, "
        f"{QUICK.head_images} photos for head-only",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"training batch size for finetune and the Trainer alike (default {FULL.batch_size})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help=f"timed optimizer steps per contender, interleaved step by step (default {FULL.steps})",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help=f"untimed optimizer steps first, at least 1 (default {FULL.warmup_steps})",
    )
    parser.add_argument("--images", type=int, metavar="N", help="photos for the head-only part (default: all)")
    parser.add_argument(
        "--head-rounds",
        type=int,
        metavar="N",
        help=f"head-only runs, each between two plain passes (default {FULL.head_rounds})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="an image folder with one sub-folder per class (default: the shared hymenoptera train)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights and both trainings")


def settings_from(args: argparse.Namespace) -> Settings:
    """The preset (--quick or not) with any flag given on top."""
    preset = QUICK if args.quick else FULL
    given = dict(
        batch_size=args.batch_size,
        warmup_steps=args.warmup_steps,
        steps=args.steps,
        head_images=args.images,
        head_rounds=args.head_rounds,
    )
    return replace(preset, **{name: value for name, value in given.items() if value is not None})


def settings_problem(settings: Settings) -> str | None:
    for name in ("batch_size", "warmup_steps", "steps", "head_rounds"):
        if getattr(settings, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if settings.head_images is not None and settings.head_images < 2:
        return "--images must be at least 2 (the head-only run needs a training and a validation photo)"
    return None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problem = settings_problem(settings)
    if problem is None and not args.data.is_dir():
        problem = (
            f"no training photos at {args.data}: put the hymenoptera data set (train/ants, train/bees) in "
            f"{DEFAULT_DATA.parent}, or give --data a folder with one sub-folder per class"
        )
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from transformers.utils import logging as transformers_logging

    from training.data import prepare_data

    transformers_logging.disable_progress_bar()  # save/load progress bars would bury the report
    data = prepare_data(args.data, seed=args.seed)  # a folder is read in place: nothing is copied
    photos = shuffled_photos(data, args.seed)
    needed = max(settings.train_images, settings.head_images or 0)
    if len(photos) < needed:
        print(
            f"error: {len(photos)} usable photos in {args.data}, but {needed} are needed: lower --batch-size, "
            "--steps or --images",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="vit-bench-train-") as folder:
        model_dir = Path(folder) / "model"
        build_random_vit(model_dir, args.seed, data.classes)
        result = benchmark(str(model_dir), data, photos, settings, args.seed, Path(folder))
    print(format_report(result))
    return 0


def shuffled_photos(data: PreparedData, seed: int) -> list[Sample]:
    """Every usable photo in one fixed shuffled order: prepare_data lists them class by class, and a subset
    of one class only would make the loss curves meaningless."""
    photos = [*data.train, *data.val]
    random.Random(seed).shuffle(photos)
    return photos


def build_random_vit(folder: Path, seed: int, classes: Sequence[str]) -> None:
    """google/vit-base-patch16-224's shapes with random weights and a head for these classes, no download."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    id2label = dict(enumerate(classes))
    config = ViTConfig(
        **MODEL_SHAPE,
        num_labels=len(classes),
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": config.image_size, "width": config.image_size}).save_pretrained(folder)


# ---- the benchmark -----------------------------------------------------------------------------------------


def benchmark(
    model_dir: str, data: PreparedData, photos: list[Sample], settings: Settings, seed: int, work_dir: Path
) -> Result:
    """Full fine-tuning step by step in turn, then head-only runs between plain feature passes."""
    machine_before, own_before = machine_cpu_seconds(), cpu_seconds_with_workers()
    train_data = subset(data, photos[: settings.train_images], photos[: settings.batch_size])
    progress(
        f"full fine-tuning: {len(CONTENDERS)} contenders in turn, each {settings.warmup_steps} warm-up + "
        f"{settings.steps} timed steps of {settings.batch_size} photos ..."
    )
    runs = interleaved_training(
        training_worker, CONTENDERS, settings.total_steps, (model_dir, train_data, settings, seed), work_dir
    )

    head_photos = photos[: settings.head_images or len(photos)]
    progress(
        f"head-only: {settings.head_rounds} run(s) of {HEAD_EPOCHS} epochs on {len(head_photos)} photos, each "
        "between two plain feature passes ..."
    )
    feature_pass = FeaturePass(model_dir)
    head_data = head_split(data, head_photos, data_val_fraction(data))
    head_runs, feature_seconds = head_runs_between_passes(
        model_dir, head_data, feature_pass, settings.head_rounds, seed, work_dir
    )
    return Result(
        settings=settings,
        classes=tuple(data.classes),
        photos=len(photos),
        runs=runs,
        head_runs=head_runs,
        feature_pass_seconds=feature_seconds,
        head_photos=len(head_photos),
        feature_precision=feature_pass.precision,
        others_cpu_share=others_share(machine_before, machine_cpu_seconds(), cpu_seconds_with_workers() - own_before),
    )


def head_runs_between_passes(
    model_dir: str, data: PreparedData, feature_pass: FeaturePass, rounds: int, seed: int, work_dir: Path
) -> tuple[list[HeadRun], list[float]]:
    """Pass, head-only run, pass, ...: the machine's load drifts over minutes, and a pass on each side of every
    run averages it out. The passes go over the same photos as the run (its training and validation photos)."""
    photos = [*data.train, *data.val]
    feature_pass(photos[:WARMUP_PHOTOS])
    feature_seconds = [seconds_of(feature_pass, photos)]
    head_runs: list[HeadRun] = []
    for _ in range(rounds):
        head_runs.append(in_fresh_folder(partial(head_run, model_dir, data, seed), work_dir))
        feature_seconds.append(seconds_of(feature_pass, photos))
    return head_runs, feature_seconds


def cpu_seconds_with_workers() -> float:
    """This process's CPU-seconds and its finished workers': theirs are not the other engineers' load."""
    times = os.times()
    return own_cpu_seconds() + times.children_user + times.children_system


def in_fresh_folder(run_once: Callable[[Path], HeadRun], work_dir: Path) -> HeadRun:
    """Run in a new output folder, removed again after (a head-only run writes the ~350 MB model twice)."""
    output_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work_dir))
    try:
        return run_once(output_dir)
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


def seconds_of(call: Callable[[Sequence[Sample]], object], photos: Sequence[Sample]) -> float:
    start = time.perf_counter()
    call(photos)
    return time.perf_counter() - start


def subset(data: PreparedData, train: Sequence[Sample], val: Sequence[Sample]) -> PreparedData:
    """A PreparedData over these samples, which finetune takes as its train_dir without reading the folder again."""
    return replace(data, train=tuple(train), val=tuple(val))


def data_val_fraction(data: PreparedData) -> float:
    return len(data.val) / max(1, len(data.train) + len(data.val))


def head_split(data: PreparedData, photos: Sequence[Sample], val_fraction: float) -> PreparedData:
    """The photos split as prepare_data split the whole folder (about val_fraction for validation)."""
    val_count = min(len(photos) - 1, max(1, round(len(photos) * val_fraction)))
    return subset(data, photos[val_count:], photos[:val_count])


def timed_events(events: Iterator) -> Iterator[tuple[float, object]]:
    """Each event with the time it arrived: finetune does its work between yields."""
    for event in events:
        yield time.perf_counter(), event


# ---- full fine-tuning, one step at a time per contender ----------------------------------------------------
#
# Each contender trains in a process of its own and takes one optimizer step whenever the parent says go, so the
# contenders' steps alternate and the other engineers' load (which drifts over minutes) hits them alike. They
# cannot share this process: accelerate keeps one mixed-precision setting per process (AcceleratorState is a
# singleton that finetune and TrainingArguments both reset), so a bf16 and an fp32 run side by side would not
# stay what they are. Run after run in one process instead gave 1.9x one time and 1.27x the next.


@dataclass(frozen=True)
class WorkerFailed:
    """What a worker sends instead of a step when its training raised."""

    contender: str
    traceback: str


def interleaved_training(
    worker: Callable[..., None], contenders: Sequence[str], total_steps: int, arguments: tuple, work_dir: Path
) -> dict[str, TrainingRun]:
    """Every contender's steps in turn (who goes first rotates step by step), each timed in its own process:
    `worker(name, *arguments, work_dir / name, connection)` answers GO with one step's (seconds, loss)."""
    context = multiprocessing.get_context("spawn")  # a fork would copy this process's threads and torch state
    workers: dict[str, tuple[multiprocessing.process.BaseProcess, Connection]] = {}
    try:
        for name in contenders:
            ours, theirs = context.Pipe()
            process = context.Process(
                target=worker,
                name=f"bench-{name}",
                daemon=True,
                args=(name, *arguments, work_dir / name, theirs),
            )
            process.start()
            theirs.close()
            workers[name] = (process, ours)
        # Each says ready once its model and data are set up: that happens side by side and is not timed.
        precisions = {name: received(name, connection) for name, (_, connection) in workers.items()}
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        losses: dict[str, list[float]] = {name: [] for name in contenders}
        for step in range(total_steps):
            for name in [*contenders[step % len(contenders) :], *contenders[: step % len(contenders)]]:
                workers[name][1].send(GO)
                step_seconds, loss = received(name, workers[name][1])
                seconds[name].append(step_seconds)
                if loss is not None:
                    losses[name].append(loss)
    finally:
        for process, connection in workers.values():
            connection.close()
            process.join(timeout=120)
            if process.is_alive():
                process.terminate()
    return {
        name: TrainingRun(step_seconds=tuple(seconds[name]), losses=tuple(losses[name]), precision=precisions[name])
        for name in contenders
    }


GO = "go"


def received(contender: str, connection: Connection):
    """The worker's next message; its failure, or its death (out of memory?), raised here with what it said."""
    try:
        message = connection.recv()
    except EOFError:
        raise RuntimeError(f"the {contender} training process ended without a word (killed for memory?)") from None
    if isinstance(message, WorkerFailed):
        raise RuntimeError(f"the {contender} training failed:\n{message.traceback}")
    return message


class StepGate:
    """A worker's end of the pipe: say ready, wait for each go, report each step's seconds and loss."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.started = 0.0

    def ready(self, precision: str) -> None:
        self.connection.send(precision)

    def wait(self) -> None:
        self.connection.recv()
        self.started = time.perf_counter()

    def done(self, loss: float | None) -> None:
        self.connection.send((time.perf_counter() - self.started, loss))


def training_worker(
    contender: str,
    model_dir: str,
    data: PreparedData,
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
        if contender == "trainer":
            trainer_steps(model_dir, data.train, settings, seed, output_dir, gate)
        else:
            precision = "fp32" if contender == "finetune_fp32" else "auto"
            finetune_steps(model_dir, data, settings, seed, precision, output_dir, gate)
    except Exception:  # noqa: BLE001 - whatever it was, the parent reports it
        connection.send(WorkerFailed(contender, traceback.format_exc()))
    finally:
        connection.close()


def finetune_steps(
    model_dir: str, data: PreparedData, settings: Settings, seed: int, precision: str, output_dir: Path, gate: StepGate
) -> None:
    """training.finetune in full mode for one epoch of exactly total_steps batches, closed after the last step so
    the epoch's evaluation and save (not training throughput) never run."""
    from training.events import Started, Step
    from training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        train_dir=data,
        output_dir=output_dir,
        model_name_or_path=model_dir,
        mode="full",
        precision=precision,
        num_train_epochs=1,
        per_device_train_batch_size=settings.batch_size,
        seed=seed,
        dataloader_num_workers=0,
    )
    events = finetune(config)
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
    model_dir: str, samples: Sequence[Sample], settings: Settings, seed: int, output_dir: Path, gate: StepGate
) -> None:
    """transformers.Trainer with TrainingArguments' defaults (fp32, its fused AdamW, linear schedule, grad-norm
    clipping) but the same batch size, photos, transforms and seed, and no saving, logging or evaluation."""
    from transformers import PrinterCallback, Trainer, TrainingArguments, ViTForImageClassification, ViTImageProcessor

    from training.data import ImageClassificationData, image_transforms
    from training.finetune import collate

    train_transform, _ = image_transforms(ViTImageProcessor.from_pretrained(model_dir))
    arguments = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.batch_size,
        max_steps=settings.total_steps,
        seed=seed,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=ViTForImageClassification.from_pretrained(model_dir),
        args=arguments,
        train_dataset=ImageClassificationData(samples, train_transform),
        data_collator=collate,
    )
    mixed = trainer.accelerator.mixed_precision
    trainer.add_callback(gated_steps(gate, "fp32" if mixed == "no" else f"{mixed} autocast"))
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints the final metrics among the report
    with warnings.catch_warnings():
        # The default dataloader_pin_memory=True warns on every CPU-only run; it changes nothing here.
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
        trainer.train()


def gated_steps(gate: StepGate, precision: str):
    """A TrainerCallback that holds each step until the parent's go (built here: transformers loads when used)."""
    from transformers import TrainerCallback

    class GatedSteps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            gate.ready(precision)
            gate.wait()

        def on_step_end(self, args, state, control, **kwargs):
            gate.done(None)
            if state.global_step < state.max_steps:
                gate.wait()  # the next batch loads after this returns, inside the timed go

    return GatedSteps()


# ---- head-only ---------------------------------------------------------------------------------------------


def head_run(model_dir: str, data: PreparedData, seed: int, output_dir: Path) -> HeadRun:
    """training.finetune in head mode with the front ends' head defaults (HEAD_EPOCHS epochs), timed by its events."""
    from training.events import Evaluated, Finished, Saved, Started, Step
    from training.finetune import FinetuneConfig, finetune
    from ui.shared.train_widgets import MODE_DEFAULTS

    settings = {
        **MODE_DEFAULTS["head"],
        "num_train_epochs": HEAD_EPOCHS,
        "per_device_train_batch_size": min(HEAD_BATCH, len(data.train)),
    }
    config = FinetuneConfig(
        train_dir=data,
        output_dir=output_dir,
        model_name_or_path=model_dir,
        mode="head",
        seed=seed,
        dataloader_num_workers=0,
        **settings,
    )
    started = first_step = evaluated = saved = finished = None
    precision = "?"
    for arrived, event in timed_events(finetune(config)):
        if isinstance(event, Started):
            started, precision = arrived, event.precision
        elif isinstance(event, Step) and first_step is None:
            first_step = arrived
        elif isinstance(event, Evaluated):
            evaluated = arrived
        elif isinstance(event, Saved):
            saved = arrived
        elif isinstance(event, Finished):
            finished = arrived
    return HeadRun(
        features=first_step - started,
        epochs=evaluated - first_step,
        save=saved - evaluated,
        finish=finished - saved,
        precision=precision,
    )


class FeaturePass:
    """One plain forward over the photos, as head mode's feature pass does it: the eval transforms, batch
    FEATURE_BATCH, inference mode, and the autocast finetune picks on this machine ("auto")."""

    def __init__(self, model_dir: str) -> None:
        from transformers import ViTForImageClassification, ViTImageProcessor

        from core.models import cpu_has_fast_bf16
        from training.data import image_transforms

        self.model = ViTForImageClassification.from_pretrained(model_dir).eval()
        _, self.transform = image_transforms(ViTImageProcessor.from_pretrained(model_dir))
        # finetune's precision="auto" rule on a CPU: bf16 autocast where the CPU has bf16 units.
        self.autocast = cpu_has_fast_bf16()
        self.precision = "bf16 autocast" if self.autocast else "fp32"

    def __call__(self, photos: Sequence[Sample]) -> None:
        from training.data import ImageClassificationData
        from training.finetune import collate

        loader = torch.utils.data.DataLoader(
            ImageClassificationData(photos, self.transform), batch_size=FEATURE_BATCH, collate_fn=collate
        )
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            for batch in loader:
                self.model(pixel_values=batch["pixel_values"])


# ---- the report --------------------------------------------------------------------------------------------


def format_report(result: Result) -> str:
    settings = result.settings
    full_ratio = median_images_per_s(result, "finetune") / median_images_per_s(result, "trainer")
    head_ratio = head_over_feature_pass(result)
    ratios = [
        ("ratio", "value", "target"),
        (
            "finetune / Trainer training images/s",
            f"{full_ratio:.3g}x",
            verdict(full_ratio >= TARGET_FULL_RATIO, f">= {TARGET_FULL_RATIO:g}x"),
        ),
        (
            f"head-only {HEAD_EPOCHS} epochs / one feature pass",
            f"{head_ratio:.3g}x",
            verdict(head_ratio <= TARGET_HEAD_RATIO, f"<= {TARGET_HEAD_RATIO:g}x"),
        ),
    ]
    return "\n".join(
        [
            "",
            f"ViT-B/16 at {model_size()} px (random weights, {len(result.classes)} labels: "
            f"{', '.join(result.classes)}), {result.photos} photos",
            f"full fine-tuning: batch {settings.batch_size} for all, {settings.warmup_steps} warm-up + "
            f"{settings.steps} "
            f"timed optimizer steps each on the first {settings.train_images} photos (same transforms and seed), the "
            "contenders taking steps in turn, each in its own process; medians of the timed steps; evaluation and "
            "saving excluded",
            f"head-only: {result.head_photos} photos, timed from the Started event (model loading excluded), each run "
            "between two plain feature passes; medians",
            f"machine: {machine_description()}",
            interference_note(result.others_cpu_share),
            "",
            *aligned(training_rows(result)),
            "",
            *aligned(head_rows(result)),
            "",
            *aligned(ratios),
            "",
            *fidelity_lines(result),
        ]
    )


def median_images_per_s(result: Result, contender: str) -> float:
    return statistics.median(result.images_per_s(contender))


def training_rows(result: Result) -> list[tuple[str, ...]]:
    labels = {
        "trainer": "(a) transformers.Trainer, TrainingArguments defaults",
        "finetune": '(b) training.finetune, mode="full", precision="auto"',
        "finetune_fp32": '    training.finetune, precision="fp32" (information)',
    }
    finetune_per_s = median_images_per_s(result, "finetune")
    rows = [("full fine-tuning", "precision", "images/s", "min-max", "finetune/this", "step by step min-max")]
    for name in CONTENDERS:
        per_s = median_images_per_s(result, name)
        rows.append(
            (
                labels[name],
                result.runs[name].precision,
                f"{per_s:.2f}",
                spread_2(result.images_per_s(name)),
                f"{finetune_per_s / per_s:.3g}x",
                spread_2(result.paired_speedups("finetune", name)),
            )
        )
    return rows


def head_over_feature_pass(result: Result) -> float:
    return statistics.median(run.total for run in result.head_runs) / statistics.median(result.feature_pass_seconds)


def head_rows(result: Result) -> list[tuple[str, ...]]:
    heads = result.head_runs
    feature_s = statistics.median(result.feature_pass_seconds)
    return [
        ("head-only vs one feature pass", "precision", "seconds", "min-max", "this/feature pass"),
        (
            f"(c) one feature pass, batch {FEATURE_BATCH}",
            result.feature_precision,
            f"{feature_s:.1f}",
            spread(result.feature_pass_seconds),
            "1x",
        ),
        (
            f'(d) training.finetune, mode="head", {HEAD_EPOCHS} epochs',
            heads[0].precision,
            f"{statistics.median(run.total for run in heads):.1f}",
            spread([run.total for run in heads]),
            f"{head_over_feature_pass(result):.3g}x",
        ),
        phase_row("    features (Started -> first step)", heads, "features", feature_s),
        phase_row(f"    {HEAD_EPOCHS} epochs of the head, with evaluations", heads, "epochs", feature_s),
        phase_row("    saving (-> Saved)", heads, "save", feature_s),
        phase_row("    results and figures (-> Finished)", heads, "finish", feature_s),
    ]


def phase_row(label: str, heads: Sequence[HeadRun], phase: str, feature_s: float) -> tuple[str, ...]:
    seconds = statistics.median(getattr(run, phase) for run in heads)
    return label, "", f"{seconds:.1f}", "", f"{seconds / feature_s:.3g}x"


def fidelity_lines(result: Result) -> list[str]:
    """Both finetune runs share seed, batches and crops, so only the precision differs between their losses."""
    reduced, reference = result.runs["finetune"], result.runs["finetune_fp32"]
    differences = [abs(a - b) for a, b in zip(reduced.losses, reference.losses)]
    return [
        f"loss curve, finetune {reduced.precision} vs fp32 over the first {len(differences)} steps (same seed, batches "
        f"and crops): max |difference| {max(differences):.2g}; final-step loss {reduced.losses[-1]:.4f} vs "
        f"{reference.losses[-1]:.4f}",
        f"  per step, {reduced.precision}: {' '.join(f'{loss:.4f}' for loss in reduced.losses)}",
        f"  per step, fp32: {' '.join(f'{loss:.4f}' for loss in reference.losses)}",
    ]


def model_size() -> int:
    from transformers import ViTConfig

    return ViTConfig(**MODEL_SHAPE).image_size


def spread_2(samples: Sequence[float]) -> str:
    """common.spread with two decimals: training runs at about 1 image/s."""
    return f"{min(samples):.2f}-{max(samples):.2f}"
