"""core.classify vs transformers' image-classification pipeline: ViT-B/16 speed and bf16 fidelity."""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image, ImageOps

# The targets: core at >= 4x the pipeline's batch-16 throughput and < 0.5x its batch-1 latency.
TARGET_THROUGHPUT_RATIO = 4.0
TARGET_LATENCY_RATIO = 0.5
BATCH_SIZE = 16
NUM_LABELS = 1000

Call = Callable[[], object]

# skimage photos that ship with the package (the rest need a download); greyscale ones become RGB.
PHOTOS = (
    "chelsea", "astronaut", "coffee", "rocket", "camera", "cat", "immunohistochemistry",
    "hubble_deep_field", "retina", "coins", "moon", "brick", "grass", "gravel",
)


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--images", type=int, default=32, metavar="N", help="number of photos (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random ViT weights")


def run(args: argparse.Namespace) -> int:
    if args.images < 1:
        print("error: --images must be at least 1", file=sys.stderr)
        return 2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # save/load progress bars would bury the report
    repeats = 2 if args.quick else 5
    images = sample_photos(args.images)
    with tempfile.TemporaryDirectory(prefix="vit-bench-") as folder:
        build_random_vit(Path(folder), seed=args.seed)
        result = benchmark(folder, images, repeats)
    print(format_report(result, len(images), repeats))
    return 0


def benchmark(model_dir: str, images: list[Image.Image], repeats: int) -> Result:
    """Everything timed in one process, pipeline and core interleaved so machine noise hits both alike."""
    import core
    from core.models import clear_cache, load_classifier
    from transformers import pipeline

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
        core_dtype = load_classifier(model_dir).dtype
        progress("fidelity: bf16 vs fp32 ...")
        fidelity = measure_fidelity(model_dir, images)
        others = others_share(machine_before, machine_cpu_seconds(), own_cpu_seconds() - own_before)
    finally:
        clear_cache()  # the temporary model folder is about to go
    return Result(
        pipeline_dtype=dtype_name(pipe.model.dtype),
        core_dtype=dtype_name(core_dtype),
        pipeline_throughput=[len(images) / s for s in batch_seconds[0]],
        core_throughput=[len(images) / s for s in batch_seconds[1]],
        pipeline_latency_ms=[1000 * s for s in single_seconds[0]],
        core_latency_ms=[1000 * s for s in single_seconds[1]],
        fidelity=fidelity,
        others_cpu_share=others,
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def time_pairs(pairs: Sequence[tuple[Call, Call]], repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per call for each side of every pair, over `repeats` rounds; who goes first flips each time."""
    times: tuple[list[float], list[float]] = ([], [])
    flip = False
    for _ in range(repeats):
        for pair in pairs:
            for side in ((1, 0) if flip else (0, 1)):
                times[side].append(seconds_for(pair[side]))
            flip = not flip
    return times


def seconds_for(call: Call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU-seconds of the whole machine since boot, from /proc/stat; None off Linux."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: idle and iowait are the only idle states.
    ticks = os.sysconf("SC_CLK_TCK")
    total, idle = sum(fields) / ticks, (fields[3] + fields[4]) / ticks
    return total - idle, total


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def others_share(before: tuple[float, float] | None, after: tuple[float, float] | None, own: float) -> float | None:
    """Share of the machine's CPU that other processes used meanwhile: what we burned, subtracted."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return max(0.0, (after[0] - before[0] - own) / (after[1] - before[1]))


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


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
            pixel_values = preprocess(loaded, images[start:start + BATCH_SIZE])
            rows.append(loaded.model(pixel_values=pixel_values).logits.float())
    return torch.cat(rows)


def build_random_vit(folder: Path, seed: int) -> None:
    """ViT-B/16 as in google/vit-base-patch16-224 (same shapes, so same cost), random weights, no download."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    id2label = {index: f"class_{index}" for index in range(NUM_LABELS)}
    config = ViTConfig(num_labels=NUM_LABELS, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor().save_pretrained(folder)


def sample_photos(count: int) -> list[Image.Image]:
    """`count` distinct RGB photos of various sizes: skimage's photos, then mirrored and cropped variants."""
    from skimage import data

    bases = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    return [variant(bases[index % len(bases)], index // len(bases)) for index in range(count)]


def variant(image: Image.Image, round_: int) -> Image.Image:
    """Round 0 is the photo itself; later rounds alternate mirroring with ever tighter centre crops."""
    if round_ % 2 == 1:
        image = ImageOps.mirror(image)
    keep = max(0.3, 1.0 - 0.1 * (round_ // 2))
    width, height = image.size
    crop_w, crop_h = max(1, round(width * keep)), max(1, round(height * keep))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))


def cpu_info() -> tuple[str, set[str]]:
    """CPU model name and feature flags from /proc/cpuinfo; what platform knows elsewhere."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return name, flags
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break  # the first processor's entry is enough
    return name, flags


def machine_description() -> str:
    import transformers

    name, flags = cpu_info()
    # What makes bf16 fast matters more than the model name: AMX >> AVX512-BF16 >> neither.
    known = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"))
    bf16_units = [unit for flag, unit in known if flag in flags]
    return (
        f"{name}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), "
        f"bf16 units: {', '.join(bf16_units) or 'none'}; "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def format_report(result: Result, count: int, repeats: int) -> str:
    pipe_tp, core_tp = statistics.median(result.pipeline_throughput), statistics.median(result.core_throughput)
    pipe_ms, core_ms = statistics.median(result.pipeline_latency_ms), statistics.median(result.core_latency_ms)
    tp_ratio, ms_ratio = core_tp / pipe_tp, core_ms / pipe_ms
    rows = [
        ("", f"pipeline {result.pipeline_dtype}", f"core {result.core_dtype}", "core/pipeline", "target"),
        (f"batch {BATCH_SIZE} throughput, images/s", f"{pipe_tp:.1f}", f"{core_tp:.1f}", f"{tp_ratio:.3g}x",
         verdict(tp_ratio >= TARGET_THROUGHPUT_RATIO, f">= {TARGET_THROUGHPUT_RATIO:g}x")),
        ("batch 1 latency, ms/image", f"{pipe_ms:.0f}", f"{core_ms:.0f}", f"{ms_ratio:.3g}x",
         verdict(ms_ratio < TARGET_LATENCY_RATIO, f"< {TARGET_LATENCY_RATIO:g}x")),
    ]
    fid = result.fidelity
    return "\n".join([
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
        f"min {fid.cosine_min:.5f}; top-1 agree {fid.top1_agree}/{fid.count}; top-5 overlap {fid.top5_overlap:.2f}/5",
        "  (random weights give near-flat outputs, so rank agreement understates what a trained model shows)",
    ])


def interference_note(share: float | None) -> str:
    if share is None:
        return "other processes' CPU use during the run: unknown"
    note = f"other processes used {share:.0%} of the CPU during the run"
    # Others on the cores stall every parallel torch op while its second thread waits to be scheduled.
    return note + (" - absolute numbers are inflated; the interleaved ratios hold up better" if share > 0.1 else "")


def verdict(met: bool, target: str) -> str:
    return f"{target} {'met' if met else 'MISSED'}"


def spread(samples: Sequence[float]) -> str:
    return f"{min(samples):.1f}-{max(samples):.1f}"


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Text table: the first and last columns left-aligned, numbers right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    last = len(widths) - 1
    return [
        "  ".join(cell.ljust(width) if column in (0, last) else cell.rjust(width)
                  for column, (cell, width) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]
