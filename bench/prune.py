"""core.token_merging (ToMe) vs the unmerged ViT-B/16: images/s at batch 8, bf16 and fp32, and top-1 agreement."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from . import common
from .common import (
    NUM_LABELS,
    aligned,
    dtype_name,
    interference_note,
    machine_cpu_seconds,
    machine_description,
    others_share,
    own_cpu_seconds,
    progress,
    spread,
    time_rotating,
    verdict,
)

# The target: ToMe at r=8 runs ViT-B/16 at >= 1.4x the unmerged model's images/s.
TARGET_SPEEDUP = 1.4
R = 8
R_EXTRA = 16  # for information: the paper's r for ViT-B/16's biggest speed-up
BATCH_SIZE = 8
AGREEMENT_RS = (0, 2, 4, 8, 12, 16)
AGREEMENT_EPOCHS = 3
HELD_OUT_PER_CLASS = 20  # fresh shapes (another seed) the trained model never saw


@dataclass(frozen=True)
class Speeds:
    """Seconds per pass over all photos, in one precision: unmerged, r=R and r=R_EXTRA, interleaved."""

    dtype: str
    tokens_before: int
    unmerged: list[float]
    merged: list[float]
    merged_extra: list[float]
    tokens_left: int
    tokens_left_extra: int
    agreement: float  # top-1 of r=R vs unmerged on the photos (random weights: near-flat outputs)


@dataclass(frozen=True)
class Trained:
    """ToMe on a model the app's own trainer trained: agreement with the unmerged model on held-out shapes."""

    base: str
    accuracy: float | None  # the trainer's own validation accuracy
    train_seconds: float
    held_out: int
    points: list  # core.token_merging.MergePoint per r


@dataclass(frozen=True)
class Result:
    speeds: list[Speeds]
    others_cpu_share: float | None
    trained: Trained | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_arguments(parser, default_images=16)
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="train vit-small-scratch on the example shapes and report each r's top-1 agreement on unseen shapes "
        "(part of every full run, about a minute; with --quick only when asked)",
    )


def run(args: argparse.Namespace) -> int:
    repeats = 2 if args.quick else 5
    return common.run_on_random_model(
        args,
        common.build_random_vit,
        partial(benchmark, agreement=args.agreement or not args.quick),
        format_report,
        repeats,
    )


def benchmark(model_dir: str, images: list[Image.Image], repeats: int, *, agreement: bool = False) -> Result:
    """Both precisions timed in one process; within each, unmerged and merged interleaved, rotating who goes first."""
    from core.models import clear_cache

    machine_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    try:
        speeds = [measure_speeds(model_dir, images, repeats, precision) for precision in (None, "fp32")]
        others = others_share(machine_before, machine_cpu_seconds(), own_cpu_seconds() - own_before)
    finally:
        clear_cache()  # the temporary model folder is about to go
    trained = measure_trained_agreement() if agreement else None
    return Result(speeds=speeds, others_cpu_share=others, trained=trained)


def measure_speeds(model_dir: str, images: Sequence[Image.Image], repeats: int, precision: str | None) -> Speeds:
    """precision None: what core picks (bf16 autocast where the CPU has bf16 units); "fp32" for information."""
    from core.classify import preprocess
    from core.models import load_classifier
    from core.token_merging import merged_logits, merging

    loaded = load_classifier(model_dir, precision=precision)
    label = dtype_name(loaded.dtype)
    batches = [preprocess(loaded, images[i : i + BATCH_SIZE]) for i in range(0, len(images), BATCH_SIZE)]

    def all_batches(r: int | None) -> torch.Tensor:
        return torch.cat([merged_logits(loaded, batch, r) for batch in batches])

    calls = [partial(all_batches, None), partial(all_batches, R), partial(all_batches, R_EXTRA)]
    progress(f"{label}: warm-up ...")
    reference, merged = calls[0](), calls[1]()
    calls[2]()
    progress(
        f"{label}: {repeats} rounds of {len(images)} photos, batch {BATCH_SIZE}, unmerged / r={R} / r={R_EXTRA} ..."
    )
    seconds = time_rotating([calls], repeats)
    counts = []
    for r in (0, R, R_EXTRA):
        with merging(loaded.model, r) as state, torch.inference_mode():
            loaded.model(pixel_values=batches[0][:1])
        counts.append(state.tokens_per_layer[-1])
    return Speeds(
        dtype=label,
        unmerged=seconds[0],
        merged=seconds[1],
        merged_extra=seconds[2],
        tokens_before=counts[0],
        tokens_left=counts[1],
        tokens_left_extra=counts[2],
        agreement=float((reference.argmax(-1) == merged.argmax(-1)).float().mean()),
    )


def measure_trained_agreement() -> Trained:
    """Train vit-small-scratch with training.finetune on the example shapes, then agreement_curve on fresh shapes."""
    from core.models import clear_cache
    from core.token_merging import agreement_curve
    from training import FinetuneConfig, Finished, base_settings, example_data_zip, finetune
    from training.examples import write_shapes

    base = "vit-small-scratch"
    with tempfile.TemporaryDirectory(prefix="vit-bench-tome-") as folder:
        progress(f"--agreement: training {base} on the example shapes ({AGREEMENT_EPOCHS} epochs) ...")
        started = time.perf_counter()
        config = FinetuneConfig(
            train_dir=example_data_zip(),
            output_dir=Path(folder) / "run",
            num_train_epochs=AGREEMENT_EPOCHS,
            **base_settings(base),
        )
        finished = [event for event in finetune(config) if isinstance(event, Finished)]
        train_seconds = time.perf_counter() - started
        accuracy = finished[-1].metrics.get("eval_accuracy") if finished else None
        held_out = sorted(write_shapes(Path(folder) / "held-out", per_class=HELD_OUT_PER_CLASS, seed=1).rglob("*.png"))
        progress(f"--agreement: r in {AGREEMENT_RS} on {len(held_out)} unseen shapes ...")
        try:
            points = agreement_curve(
                [str(path) for path in held_out],
                str(config.output_dir),
                rs=AGREEMENT_RS,
                batch_size=BATCH_SIZE,
                repeats=3,
            )
        finally:
            clear_cache()
    return Trained(base=base, accuracy=accuracy, train_seconds=train_seconds, held_out=len(held_out), points=points)


def format_report(result: Result, count: int, repeats: int) -> str:
    lines = [
        "",
        f"ViT-B/16 (random weights, {NUM_LABELS} labels), {count} photos at batch {BATCH_SIZE}, "
        f"medians of {repeats} interleaved repeats",
        f"machine: {machine_description()}",
        interference_note(result.others_cpu_share),
        "",
    ]
    rows = [("", "tokens after last layer", "images/s", "vs unmerged", "target")]
    for speeds in result.speeds:
        base = count / statistics.median(speeds.unmerged)
        merged = count / statistics.median(speeds.merged)
        extra = count / statistics.median(speeds.merged_extra)
        main_target = speeds is result.speeds[0]
        rows += [
            (f"{speeds.dtype} unmerged", str(speeds.tokens_before), f"{base:.1f}", "1x", ""),
            (
                f"{speeds.dtype} ToMe r={R}",
                str(speeds.tokens_left),
                f"{merged:.1f}",
                f"{merged / base:.3g}x",
                verdict(merged / base >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP:g}x") if main_target else "(information)",
            ),
            (
                f"{speeds.dtype} ToMe r={R_EXTRA}",
                str(speeds.tokens_left_extra),
                f"{extra:.1f}",
                f"{extra / base:.3g}x",
                "(information)",
            ),
        ]
    lines += aligned(rows)
    lines.append("")
    for speeds in result.speeds:
        lines.append(
            f"spread {speeds.dtype} (min-max images/s): unmerged {spread([count / s for s in speeds.unmerged])}, "
            f"r={R} {spread([count / s for s in speeds.merged])}, "
            f"r={R_EXTRA} {spread([count / s for s in speeds.merged_extra])}"
        )
    lines.append(
        f"top-1 agreement, ToMe r={R} vs unmerged on the {count} photos: "
        + ", ".join(f"{s.dtype} {s.agreement:.0%}" for s in result.speeds)
        + " (random weights: near-flat outputs, so this says little; see --agreement)"
    )
    if result.trained is not None:
        lines += ["", *format_trained(result.trained)]
    return "\n".join(lines)


def format_trained(trained: Trained) -> list[str]:
    accuracy = "not reported" if trained.accuracy is None else f"{trained.accuracy:.0%}"
    rows = [("r", "tokens after last layer", "top-1 agreement", "images/s")]
    rows += [(str(p.r), str(p.tokens_left), f"{p.top1_agreement:.1%}", f"{p.images_per_s:.1f}") for p in trained.points]
    return [
        f"{trained.base} trained by training.finetune on the example shapes in {trained.train_seconds:.1f} s "
        f"(validation accuracy {accuracy}); ToMe on {trained.held_out} unseen shapes "
        f"(64x64, 8x8 patches: 65 tokens, 6 layers; r clamped per layer):",
        *aligned(rows),
    ]
