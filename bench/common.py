"""What every benchmark shares: the random ViT-B/16, the photos, timing, machine notes and table drawing."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image, ImageOps

NUM_LABELS = 1000

Call = Callable[[], object]

# skimage photos that ship with the package (the rest need a download); greyscale ones become RGB.
PHOTOS = (
    "chelsea",
    "astronaut",
    "coffee",
    "rocket",
    "camera",
    "cat",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
)


def add_arguments(parser: argparse.ArgumentParser, default_images: int = 32) -> None:
    """The flags every benchmark on random weights takes."""
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument(
        "--images", type=int, default=default_images, metavar="N", help=f"number of photos (default {default_images})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")


def run_on_random_vit(args: argparse.Namespace, benchmark: Callable, format_report: Callable) -> int:
    """Build the random ViT-B/16 in a temporary folder, time `benchmark` on the photos, print its report."""
    repeats = 2 if args.quick else 5
    return run_on_random_model(args, build_random_vit, benchmark, format_report, repeats)


def run_on_random_model(
    args: argparse.Namespace,
    build: Callable[[Path, int], object],
    benchmark: Callable,
    format_report: Callable,
    repeats: int,
) -> int:
    """`build(folder, seed)` random models into a temporary folder, time `benchmark(folder, images, repeats)`
    on the photos, print `format_report(result, image count, repeats)`."""
    if args.images < 1:
        print("error: --images must be at least 1", file=sys.stderr)
        return 2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # save/load progress bars would bury the report
    images = sample_photos(args.images)
    with tempfile.TemporaryDirectory(prefix="vit-bench-") as folder:
        build(Path(folder), args.seed)
        result = benchmark(folder, images, repeats)
    print(format_report(result, len(images), repeats))
    return 0


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


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seconds_for(call: Call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_rotating(rows: Sequence[Sequence[Call]], repeats: int) -> list[list[float]]:
    """Seconds per call for each column, over `repeats` rounds of all rows; who goes first rotates row by row,
    so machine noise and warm caches favour no column."""
    width = len(rows[0])
    times: list[list[float]] = [[] for _ in range(width)]
    turn = 0
    for _ in range(repeats):
        for row in rows:
            for column in [(turn + offset) % width for offset in range(width)]:
                times[column].append(seconds_for(row[column]))
            turn += 1
    return times


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


def dtype_name(dtype: torch.dtype | str) -> str:
    """'fp32', 'bf16', 'fp16' for a torch dtype or a RunInfo's dtype ('float32', ...)."""
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(name, name)


def ran_on(call: Callable[..., object]) -> str:
    """The dtype one engine call ran in, from its own report (on_run), as dtype_name gives it."""
    runs: list = []
    call(on_run=runs.append)
    return dtype_name(runs[-1].dtype)


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
        "  ".join(
            cell.ljust(width) if column in (0, last) else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
