"""training.finetune vs transformers.Trainer on ViT-B/16: full fine-tuning images/s, head-only vs one feature pass, bf16 loss fidelity."""
from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from .common import (
    aligned, interference_note, machine_cpu_seconds, machine_description, others_share, own_cpu_seconds, progress,
    spread, time_rotating, verdict,
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

# Full fine-tuning contenders, each one short training run; the last is for information (and bf16 fidelity).
CONTENDERS = ("trainer", "finetune", "finetune_fp32")


@dataclass(frozen=True)
class Settings:
    """How much training each run does: warm-up steps first, then the timed steps, at one batch size."""

    batch_size: int
    warmup_steps: int
    steps: int
    rounds: int  # of the full fine-tuning runs
    head_images: int | None  # photos for the head-only part; None: every photo
    head_rounds: int  # of the head-only run and the feature pass: each is one pass over head_images photos

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.steps

    @property
    def train_images(self) -> int:
        # One epoch over exactly this many photos is total_steps full batches: finetune has no max_steps.
        return self.total_steps * self.batch_size


# ViT-B/16 trains at well under 1 image/s in fp32 on 2 shared cores and infers at a few: these keep a full run
# near 10 minutes on a quiet machine (--quick near 2): 3 contenders x 2 rounds x 3 steps of 16 photos, then two
# passes (head-only run, plain pass) over all 245 photos.
FULL = Settings(batch_size=16, warmup_steps=1, steps=2, rounds=2, head_images=None, head_rounds=1)
QUICK = Settings(batch_size=4, warmup_steps=1, steps=1, rounds=1, head_images=32, head_rounds=1)
# Inference-mode kernels differ from training's: one small batch through the plain model before its timed pass.
WARMUP_PHOTOS = 8


@dataclass(frozen=True)
class TrainingRun:
    """One short full fine-tuning run: when each optimizer step ended (warm-up included) and its loss."""

    step_ends: tuple[float, ...]  # time.perf_counter() seconds
    losses: tuple[float, ...]  # empty for the Trainer, which logs none with logging off
    precision: str

    def timed_seconds(self, warmup_steps: int) -> list[float]:
        """Seconds of each step after the warm-up; the first timed step starts when the last warm-up one ends."""
        ends = self.step_ends[warmup_steps - 1:]
        return [later - earlier for earlier, later in zip(ends, ends[1:])]


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
    """Every run of every round, plus what is needed to describe them."""

    settings: Settings
    classes: tuple[str, ...]
    photos: int  # usable photos in the data folder
    runs: dict[str, list[TrainingRun]]  # keyed as in CONTENDERS, one per round
    head_runs: list[HeadRun]
    feature_pass_seconds: list[float]
    head_photos: int
    feature_precision: str
    others_cpu_share: float | None

    def images_per_s(self, contender: str) -> list[float]:
        """Per run: timed images over timed seconds."""
        timed = self.settings.steps * self.settings.batch_size
        return [timed / sum(run.timed_seconds(self.settings.warmup_steps)) for run in self.runs[contender]]

    def step_images_per_s(self, contender: str) -> list[float]:
        """Per timed step of every run, for the spread."""
        warmup, batch = self.settings.warmup_steps, self.settings.batch_size
        return [batch / seconds for run in self.runs[contender] for seconds in run.timed_seconds(warmup)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: batch {QUICK.batch_size}, {QUICK.steps} timed step, {QUICK.rounds} round, "
                             f"{QUICK.head_images} photos for head-only")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help=f"training batch size for finetune and the Trainer alike (default {FULL.batch_size})")
    parser.add_argument("--steps", type=int, metavar="N", help=f"timed optimizer steps per run (default {FULL.steps})")
    parser.add_argument("--warmup-steps", type=int, metavar="N",
                        help=f"untimed optimizer steps first, at least 1 (default {FULL.warmup_steps})")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help=f"interleaved rounds of the full fine-tuning runs (default {FULL.rounds})")
    parser.add_argument("--images", type=int, metavar="N", help="photos for the head-only part (default: all)")
    parser.add_argument("--head-rounds", type=int, metavar="N",
                        help=f"interleaved rounds of the head-only part (default {FULL.head_rounds})")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="an image folder with one sub-folder per class (default: the shared hymenoptera train)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights and both trainings")


def settings_from(args: argparse.Namespace) -> Settings:
    """The preset (--quick or not) with any flag given on top."""
    preset = QUICK if args.quick else FULL
    given = dict(batch_size=args.batch_size, warmup_steps=args.warmup_steps, steps=args.steps, rounds=args.rounds,
                 head_images=args.images, head_rounds=args.head_rounds)
    return replace(preset, **{name: value for name, value in given.items() if value is not None})


def settings_problem(settings: Settings) -> str | None:
    for name in ("batch_size", "warmup_steps", "steps", "rounds", "head_rounds"):
        if getattr(settings, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if settings.head_images is not None and settings.head_images < 2:
        return "--images must be at least 2 (the head-only run needs a training and a validation photo)"
    return None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problem = settings_problem(settings)
    if problem is None and not args.data.is_dir():
        problem = (f"no training photos at {args.data}: put the hymenoptera data set (train/ants, train/bees) in "
                   f"{DEFAULT_DATA.parent}, or give --data a folder with one sub-folder per class")
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
        print(f"error: {len(photos)} usable photos in {args.data}, but {needed} are needed: lower --batch-size, "
              "--steps or --images", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vit-bench-train-") as folder:
        model_dir = Path(folder) / "model"
        build_random_vit(model_dir, args.seed, data.classes)
        result = benchmark(str(model_dir), data, photos, settings, args.seed, Path(folder))
    print(format_report(result))
    return 0


def shuffled_photos(data, seed: int) -> list:
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
    config = ViTConfig(**MODEL_SHAPE, num_labels=len(classes), id2label=id2label,
                       label2id={name: index for index, name in id2label.items()})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": config.image_size, "width": config.image_size}).save_pretrained(folder)


# ---- the benchmark -----------------------------------------------------------------------------------------


def benchmark(model_dir: str, data, photos: list, settings: Settings, seed: int, work_dir: Path) -> Result:
    """Full fine-tuning runs, then head-only runs against feature passes, each part interleaved round by round."""
    machine_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    train_data = subset(data, photos[:settings.train_images], photos[:settings.batch_size])
    runs: dict[str, list[TrainingRun]] = {name: [] for name in CONTENDERS}
    contenders: dict[str, Callable[[Path], TrainingRun]] = {
        "trainer": partial(trainer_run, model_dir, train_data.train, settings, seed),
        "finetune": partial(finetune_run, model_dir, train_data, settings, seed, "auto"),
        "finetune_fp32": partial(finetune_run, model_dir, train_data, settings, seed, "fp32"),
    }
    progress(f"full fine-tuning: {settings.rounds} round(s) of {len(CONTENDERS)} runs, each {settings.warmup_steps} "
             f"warm-up + {settings.steps} timed steps of {settings.batch_size} photos ...")
    # time_rotating's own seconds include model loading; the runs keep their step times.
    time_rotating([[partial(kept, runs[name], contenders[name], work_dir) for name in CONTENDERS]], settings.rounds)

    head_photos = photos[:settings.head_images or len(photos)]
    head_data = head_split(data, head_photos, data_val_fraction(data))
    feature_pass = FeaturePass(model_dir)
    head_runs: list[HeadRun] = []
    feature_seconds: list[float] = []
    progress(f"head-only: {settings.head_rounds} round(s) of {HEAD_EPOCHS} epochs on {len(head_photos)} photos vs "
             "one feature pass ...")
    feature_pass(head_photos[:WARMUP_PHOTOS])
    time_rotating([[partial(kept, head_runs, partial(head_run, model_dir, head_data, seed), work_dir),
                    partial(kept, feature_seconds, partial(seconds_of, feature_pass, head_photos), work_dir)]],
                  settings.head_rounds)
    return Result(
        settings=settings, classes=tuple(data.classes), photos=len(photos), runs=runs, head_runs=head_runs,
        feature_pass_seconds=feature_seconds, head_photos=len(head_photos),
        feature_precision=feature_pass.precision,
        others_cpu_share=others_share(machine_before, machine_cpu_seconds(), own_cpu_seconds() - own_before),
    )


def kept(results: list, run_once: Callable[[Path], object], work_dir: Path) -> None:
    """Run in a fresh output folder and keep the result; the folder goes, and memory of the last run is freed
    first, so one run's ~1.5 GB of weights, gradients and optimizer state never overlap the next one's."""
    gc.collect()
    output_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work_dir))
    try:
        results.append(run_once(output_dir))
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


def seconds_of(call: Callable[[Sequence], object], photos: Sequence, _output_dir: Path) -> float:
    start = time.perf_counter()
    call(photos)
    return time.perf_counter() - start


def subset(data, train: Sequence, val: Sequence):
    """A PreparedData over these samples, which finetune takes as its train_dir without reading the folder again."""
    return replace(data, train=tuple(train), val=tuple(val))


def data_val_fraction(data) -> float:
    return len(data.val) / max(1, len(data.train) + len(data.val))


def head_split(data, photos: Sequence, val_fraction: float):
    """The photos split as prepare_data split the whole folder (about val_fraction for validation)."""
    val_count = min(len(photos) - 1, max(1, round(len(photos) * val_fraction)))
    return subset(data, photos[val_count:], photos[:val_count])


def timed_events(events: Iterator) -> Iterator[tuple[float, object]]:
    """Each event with the time it arrived: finetune does its work between yields."""
    for event in events:
        yield time.perf_counter(), event


def finetune_run(model_dir: str, data, settings: Settings, seed: int, precision: str, output_dir: Path) -> TrainingRun:
    """training.finetune in full mode for one epoch of exactly total_steps batches, stopped at the last step so
    the epoch's evaluation and save (not training throughput) are left out."""
    from training.events import Started, Step
    from training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(train_dir=data, output_dir=output_dir, model_name_or_path=model_dir, mode="full",
                            precision=precision, num_train_epochs=1, per_device_train_batch_size=settings.batch_size,
                            seed=seed, dataloader_num_workers=0)
    events = finetune(config)
    ends: list[float] = []
    losses: list[float] = []
    precision_name = "?"
    try:
        for arrived, event in timed_events(events):
            if isinstance(event, Started):
                precision_name = event.precision
            elif isinstance(event, Step):
                ends.append(arrived)
                losses.append(event.loss)
                if event.step == settings.total_steps:
                    break
    finally:
        events.close()
    return TrainingRun(step_ends=tuple(ends), losses=tuple(losses), precision=precision_name)


def trainer_run(model_dir: str, samples: Sequence, settings: Settings, seed: int, output_dir: Path) -> TrainingRun:
    """transformers.Trainer with TrainingArguments' defaults (fp32, its fused AdamW, linear schedule, grad-norm
    clipping) but the same batch size, photos, transforms and seed, and no saving, logging or evaluation."""
    from transformers import PrinterCallback, Trainer, TrainingArguments, ViTForImageClassification, ViTImageProcessor

    from training.data import ImageClassificationData, image_transforms
    from training.finetune import collate

    train_transform, _ = image_transforms(ViTImageProcessor.from_pretrained(model_dir))
    arguments = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=settings.batch_size, max_steps=settings.total_steps,
        seed=seed, remove_unused_columns=False, report_to=[], save_strategy="no", eval_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
    )
    clock = step_clock()
    trainer = Trainer(model=ViTForImageClassification.from_pretrained(model_dir), args=arguments,
                      train_dataset=ImageClassificationData(samples, train_transform), data_collator=collate,
                      callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints the final metrics into the report
    with warnings.catch_warnings():
        # The default dataloader_pin_memory=True warns on every CPU-only run; it changes nothing here.
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
        trainer.train()
    precision = "fp32" if trainer.accelerator.mixed_precision == "no" else f"{trainer.accelerator.mixed_precision}"
    return TrainingRun(step_ends=tuple(clock.step_ends), losses=(), precision=precision)


def step_clock():
    """A TrainerCallback noting when each optimizer step ends (built here: transformers loads only when used)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.step_ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.step_ends.append(time.perf_counter())

    return StepClock()


def head_run(model_dir: str, data, seed: int, output_dir: Path) -> HeadRun:
    """training.finetune in head mode with the front ends' head defaults (HEAD_EPOCHS epochs), timed by its events."""
    from training.events import Evaluated, Finished, Saved, Started, Step
    from training.finetune import MODE_DEFAULTS, FinetuneConfig, finetune

    settings = {**MODE_DEFAULTS["head"], "num_train_epochs": HEAD_EPOCHS,
                "per_device_train_batch_size": min(HEAD_BATCH, len(data.train))}
    config = FinetuneConfig(train_dir=data, output_dir=output_dir, model_name_or_path=model_dir, mode="head",
                            seed=seed, dataloader_num_workers=0, **settings)
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
    return HeadRun(features=first_step - started, epochs=evaluated - first_step, save=saved - evaluated,
                   finish=finished - saved, precision=precision)


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

    def __call__(self, photos: Sequence) -> None:
        from training.data import ImageClassificationData
        from training.finetune import collate

        loader = torch.utils.data.DataLoader(ImageClassificationData(photos, self.transform),
                                             batch_size=FEATURE_BATCH, collate_fn=collate)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            for batch in loader:
                self.model(pixel_values=batch["pixel_values"])


# ---- the report --------------------------------------------------------------------------------------------


def format_report(result: Result) -> str:
    settings = result.settings
    per_s = {name: statistics.median(result.images_per_s(name)) for name in CONTENDERS}
    full_ratio = per_s["finetune"] / per_s["trainer"]
    precision = {name: result.runs[name][0].precision for name in CONTENDERS}
    labels = {
        "trainer": "(a) transformers.Trainer, TrainingArguments defaults",
        "finetune": '(b) training.finetune, mode="full", precision="auto"',
        "finetune_fp32": '    training.finetune, precision="fp32" (information)',
    }
    training_rows = [("full fine-tuning", "precision", "images/s", "per-step min-max", "finetune/this")]
    for name in CONTENDERS:
        training_rows.append((labels[name], precision[name], f"{per_s[name]:.2f}",
                              spread_2(result.step_images_per_s(name)), f"{per_s['finetune'] / per_s[name]:.3g}x"))

    heads = result.head_runs
    feature_s = statistics.median(result.feature_pass_seconds)
    head_s = statistics.median(run.total for run in heads)
    head_ratio = head_s / feature_s
    phase = lambda name: statistics.median(getattr(run, name) for run in heads)  # noqa: E731
    head_rows = [
        ("head-only vs one feature pass", "precision", "seconds", "min-max", "this/feature pass"),
        (f"(c) one feature pass, batch {FEATURE_BATCH}", result.feature_precision, f"{feature_s:.1f}",
         spread(result.feature_pass_seconds), "1x"),
        (f'(d) training.finetune, mode="head", {HEAD_EPOCHS} epochs', heads[0].precision, f"{head_s:.1f}",
         spread([run.total for run in heads]), f"{head_ratio:.3g}x"),
        ("    features (Started -> first step)", "", f"{phase('features'):.1f}", "", f"{phase('features') / feature_s:.3g}x"),
        (f"    {HEAD_EPOCHS} epochs of the head, with evaluations", "", f"{phase('epochs'):.1f}", "",
         f"{phase('epochs') / feature_s:.3g}x"),
        ("    saving (-> Saved)", "", f"{phase('save'):.1f}", "", f"{phase('save') / feature_s:.3g}x"),
        ("    results and figures (-> Finished)", "", f"{phase('finish'):.1f}", "", f"{phase('finish') / feature_s:.3g}x"),
    ]
    ratios = [
        ("ratio", "value", "target"),
        ("finetune / Trainer training images/s", f"{full_ratio:.3g}x",
         verdict(full_ratio >= TARGET_FULL_RATIO, f">= {TARGET_FULL_RATIO:g}x")),
        (f"head-only {HEAD_EPOCHS} epochs / one feature pass", f"{head_ratio:.3g}x",
         verdict(head_ratio <= TARGET_HEAD_RATIO, f"<= {TARGET_HEAD_RATIO:g}x")),
    ]
    return "\n".join([
        "",
        f"ViT-B/16 at {model_size()} px (random weights, {len(result.classes)} labels: {', '.join(result.classes)}), "
        f"{result.photos} photos; medians of {settings.rounds} interleaved round(s) of training, "
        f"{settings.head_rounds} of head-only",
        f"full fine-tuning: batch {settings.batch_size} for both, {settings.warmup_steps} warm-up + {settings.steps} "
        f"timed optimizer steps per run on the first {settings.train_images} photos (same transforms and seed), "
        "evaluation and saving excluded",
        f"head-only: {result.head_photos} photos, timed from the Started event (model loading excluded)",
        f"machine: {machine_description()}",
        interference_note(result.others_cpu_share),
        "",
        *aligned(training_rows),
        "",
        *aligned(head_rows),
        "",
        *aligned(ratios),
        "",
        *fidelity_lines(result),
    ])


def fidelity_lines(result: Result) -> list[str]:
    """The first round's loss curves: both runs share seed, batches and crops, so only the precision differs."""
    reduced, reference = result.runs["finetune"][0], result.runs["finetune_fp32"][0]
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
    """common.spread with two decimals: training runs at a few images/s."""
    return f"{min(samples):.2f}-{max(samples):.2f}"
