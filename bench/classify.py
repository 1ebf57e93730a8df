"""core.classify vs transformers' image-classification pipeline: ViT-B/16 speed and bf16 fidelity."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
from PIL import Image

from . import common
from .common import (
    NUM_LABELS,
    Call,
    aligned,
    dtype_name,
    interference_note,
    machine_cpu_seconds,
    machine_description,
    others_share,
    own_cpu_seconds,
    progress,
    ran_on,
    seconds_for,
    spread,
    verdict,
)

# The targets: core at >= 4x the pipeline's batch-16 throughput and < 0.5x its batch-1 latency.
TARGET_THROUGHPUT_RATIO = 4.0
TARGET_LATENCY_RATIO = 0.5
BATCH_SIZE = 16


@dataclass(frozen=True)
class Fidelity:
    """How far bf16 outputs stray from fp32 for the same images."""

    cosine_mean: float
    cosine_min: float
    top1_agree: int
    top5_overlap: float
    count: int


@dataclass(frozen=True)
class Result:
    """Per-call samples for both contenders: images/s at batch 16, ms per image at batch 1."""

    pipeline_dtype: str
    core_dtype: str
    pipeline_throughput: list[float]
    core_throughput: list[float]
    pipeline_latency_ms: list[float]
    core_latency_ms: list[float]
    fidelity: Fidelity
    others_cpu_share: float | None


add_arguments = common.add_arguments


def run(args: argparse.Namespace) -> int:
    return common.run_on_random_vit(args, benchmark, format_report)


def benchmark(model_dir: str, images: list[Image.Image], repeats: int) -> Result:
    """Everything timed in one process, pipeline and core interleaved so machine noise hits both alike."""
    from transformers import pipeline

    import core
    from core.models import clear_cache

    pipe = pipeline("image-classification", model=model_dir)
    pipe_batch = partial(pipe, images, batch_size=BATCH_SIZE)
    core_batch = partial(core.classify, images, model=model_dir, batch_size=BATCH_SIZE)
    singles = [(partial(pipe, image), partial(core.classify, image, model=model_dir)) for image in images]
    machine_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    try:
        # Warm-up: the first calls pay for model loading, thread pools and oneDNN kernel selection.
        for call in (pipe_batch, core_batch, *singles[0]):
            call()
        progress(f"batch {BATCH_SIZE}: {repeats} rounds of {len(images)} images each ...")
        batch_seconds = time_pairs([(pipe_batch, core_batch)], repeats)
        progress(f"batch 1: {repeats} rounds of {len(images)} single-image calls each ...")
        single_seconds = time_pairs(singles, repeats)
        core_dtype = ran_on(partial(core.classify, images[0], model=model_dir))
        progress("fidelity: bf16 vs fp32 ...")
        fidelity = measure_fidelity(model_dir, images)
        others = others_share(machine_before, machine_cpu_seconds(), own_cpu_seconds() - own_before)
    finally:
        clear_cache()  # the temporary model folder is about to go
    return Result(
        pipeline_dtype=dtype_name(pipe.model.dtype),
        core_dtype=core_dtype,
        pipeline_throughput=[len(images) / s for s in batch_seconds[0]],
        core_throughput=[len(images) / s for s in batch_seconds[1]],
        pipeline_latency_ms=[1000 * s for s in single_seconds[0]],
        core_latency_ms=[1000 * s for s in single_seconds[1]],
        fidelity=fidelity,
        others_cpu_share=others,
    )


def time_pairs(pairs: Sequence[tuple[Call, Call]], repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per call for each side of every pair, over `repeats` rounds; who goes first flips each time."""
    times: tuple[list[float], list[float]] = ([], [])
    flip = False
    for _ in range(repeats):
        for pair in pairs:
            for side in (1, 0) if flip else (0, 1):
                times[side].append(seconds_for(pair[side]))
            flip = not flip
    return times


def measure_fidelity(model_dir: str, images: Sequence[Image.Image]) -> Fidelity:
    """bf16 vs fp32 logits from the engine's own loader and preprocessing, image by image."""
    reference = logits_for(model_dir, images, "fp32")
    reduced = logits_for(model_dir, images, "bf16")
    cosines = torch.nn.functional.cosine_similarity(reference, reduced, dim=-1)
    top5_ref, top5_red = reference.topk(5).indices, reduced.topk(5).indices
    overlaps = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top5_ref, top5_red)]
    return Fidelity(
        cosine_mean=cosines.mean().item(),
        cosine_min=cosines.min().item(),
        top1_agree=int((top5_ref[:, 0] == top5_red[:, 0]).sum()),
        top5_overlap=sum(overlaps) / len(overlaps),
        count=len(images),
    )


def logits_for(model_dir: str, images: Sequence[Image.Image], precision: str) -> torch.Tensor:
    from core.classify import preprocess
    from core.models import load_classifier

    loaded = load_classifier(model_dir, precision=precision)
    rows = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH_SIZE):
            pixel_values = preprocess(loaded, images[start : start + BATCH_SIZE])
            rows.append(loaded.model(pixel_values=pixel_values).logits.float())
    return torch.cat(rows)


def format_report(result: Result, count: int, repeats: int) -> str:
    pipe_tp, core_tp = statistics.median(result.pipeline_throughput), statistics.median(result.core_throughput)
    pipe_ms, core_ms = statistics.median(result.pipeline_latency_ms), statistics.median(result.core_latency_ms)
    tp_ratio, ms_ratio = core_tp / pipe_tp, core_ms / pipe_ms
    rows = [
        ("", f"pipeline {result.pipeline_dtype}", f"core {result.core_dtype}", "core/pipeline", "target"),
        (
            f"batch {BATCH_SIZE} throughput, images/s",
            f"{pipe_tp:.1f}",
            f"{core_tp:.1f}",
            f"{tp_ratio:.3g}x",
            verdict(tp_ratio >= TARGET_THROUGHPUT_RATIO, f">= {TARGET_THROUGHPUT_RATIO:g}x"),
        ),
        (
            "batch 1 latency, ms/image",
            f"{pipe_ms:.0f}",
            f"{core_ms:.0f}",
            f"{ms_ratio:.3g}x",
            verdict(ms_ratio < TARGET_LATENCY_RATIO, f"< {TARGET_LATENCY_RATIO:g}x"),
        ),
    ]
    fid = result.fidelity
    return "\n".join(
        [
            "",
            f"ViT-B/16 (random weights, {NUM_LABELS} labels), {count} photos, medians of {repeats} interleaved repeats",
            f"machine: {machine_description()}",
            interference_note(result.others_cpu_share),
            "",
            *aligned(rows),
            "",
            f"spread (min-max): throughput pipeline {spread(result.pipeline_throughput)}, "
            f"core {spread(result.core_throughput)} images/s; "
            f"latency pipeline {spread(result.pipeline_latency_ms)}, core {spread(result.core_latency_ms)} ms",
            f"fidelity, bf16 vs fp32 logits over {fid.count} images: cosine mean {fid.cosine_mean:.5f}, "
            f"min {fid.cosine_min:.5f}; top-1 agree {fid.top1_agree}/{fid.count}; "
            f"top-5 overlap {fid.top5_overlap:.2f}/5",
            "  (random weights give near-flat outputs, so rank agreement understates what a trained model shows)",
        ]
    )
