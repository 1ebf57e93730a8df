"""The classroom views on ViT-B/16: a patch click and a redraw against a forward pass, the step-by-step view
against a classify, and the ONNX export against PyTorch (same top-1, and its speed at batch 1)."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import common
from .common import aligned, interference_note, machine_cpu_seconds, machine_description, others_share, own_cpu_seconds

# A click redraws from kept attentions, so it must cost a small part of the forward pass it spares (two overlays
# at the photo's size are most of it); the walk-through is one forward pass plus its numbers.
TARGET_CLICK_OVER_EXPLAIN = 0.1
TARGET_WALKTHROUGH_OVER_CLASSIFY = 2.0
ONNX_CHECK_IMAGES = 8


@dataclass(frozen=True)
class Result:
    median_ms: dict[str, float]  # per call, by contender
    onnx_agreement: float  # top-1 agreement of onnxruntime with PyTorch fp32 on the checked photos
    onnx_max_logit_diff: float
    onnx_export_s: float
    others: float | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_arguments(parser, default_images=8)


def run(args: argparse.Namespace) -> int:
    return common.run_on_random_vit(args, benchmark, format_report)


def benchmark(model_dir: str, images: list[Image.Image], repeats: int) -> Result:
    import core
    from training import export_onnx

    busy_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    common.progress("explaining each photo once (its attentions are kept for clicks and redraws) ...")
    explanations = [core.explain(image, model=model_dir) for image in images]
    grid_h, grid_w = explanations[0].grid_size
    common.progress("exporting to ONNX and checking it against PyTorch ...")
    with _TemporaryPath() as onnx_path:
        started = time.perf_counter()
        exported = export_onnx(model_dir, onnx_path, images=images[:ONNX_CHECK_IMAGES])
        export_s = time.perf_counter() - started
        torch_fp32, pixel_batches = _fp32_classifier(model_dir, images)
        onnx_fp32 = _onnx_classifier(exported.path)
        contenders = {
            "classify": lambda index: core.classify(images[index], model=model_dir),
            "explain": lambda index: core.explain(images[index], model=model_dir),
            "walkthrough": lambda index: core.walkthrough(images[index], model=model_dir),
            "patch click": lambda index: core.patch_attention(
                explanations[index], 1 + index % grid_h, 1 + (3 * index) % grid_w
            ),
            "redraw": lambda index: core.redraw(explanations[index], method="attention", head=1),
            "pytorch fp32": lambda index: torch_fp32(pixel_batches[index]),
            "onnxruntime fp32": lambda index: onnx_fp32(pixel_batches[index].numpy()),
        }
        common.progress("warming up ...")
        for call in contenders.values():
            call(0)
        common.progress(f"timing {len(contenders)} contenders, {repeats} rounds of {len(images)} photos ...")
        rows = [[partial(call, index) for call in contenders.values()] for index in range(len(images))]
        times = common.time_rotating(rows, repeats)
    medians = {name: 1000 * statistics.median(samples) for name, samples in zip(contenders, times)}
    return Result(
        median_ms=medians,
        onnx_agreement=exported.top1_agreement,
        onnx_max_logit_diff=exported.max_abs_logit_diff,
        onnx_export_s=export_s,
        others=others_share(busy_before, machine_cpu_seconds(), own_cpu_seconds() - own_before),
    )


def _fp32_classifier(model_dir: str, images: list[Image.Image]):
    """The plain PyTorch fp32 forward pass the ONNX file is compared with, and each photo's pixel values."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    batches = [processor(images=image, return_tensors="pt")["pixel_values"] for image in images]

    def forward(pixel_values: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(pixel_values=pixel_values).logits.numpy()

    return forward, batches


def _onnx_classifier(path: Path):
    """The exported file in one onnxruntime session, made once, as a deployment would hold it."""
    import onnxruntime  # type: ignore[import-untyped]

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda pixel_values: session.run(None, {name: pixel_values})[0]


class _TemporaryPath:
    """A path for the .onnx file in a folder removed afterwards."""

    def __enter__(self) -> Path:
        import tempfile

        self._folder = tempfile.TemporaryDirectory(prefix="vit-bench-onnx-")
        return Path(self._folder.name) / "model.onnx"

    def __exit__(self, *exc_info) -> None:
        self._folder.cleanup()


def format_report(result: Result, image_count: int, repeats: int) -> str:
    ms = result.median_ms
    click_ratio = ms["patch click"] / ms["explain"]
    walk_ratio = ms["walkthrough"] / ms["classify"]
    onnx_ratio = ms["onnxruntime fp32"] / ms["pytorch fp32"]
    click_verdict = common.verdict(click_ratio <= TARGET_CLICK_OVER_EXPLAIN, f"target <= {TARGET_CLICK_OVER_EXPLAIN}")
    walk_target = f"target <= {TARGET_WALKTHROUGH_OVER_CLASSIFY}"
    walk_verdict = common.verdict(walk_ratio <= TARGET_WALKTHROUGH_OVER_CLASSIFY, walk_target)
    rows = [("contender", "median ms per call", "")] + [
        (name, f"{value:.1f}", "") for name, value in result.median_ms.items()
    ]
    return "\n".join(
        [
            f"classroom views, ViT-B/16 random weights, {image_count} photos x {repeats} rounds, batch 1",
            machine_description(),
            *aligned(rows),
            f"patch click / explain: {click_ratio:.3f} ({click_verdict})",
            f"redraw / explain: {ms['redraw'] / ms['explain']:.3f}",
            f"walkthrough / classify: {walk_ratio:.2f} ({walk_verdict})",
            f"ONNX: exported and checked in {result.onnx_export_s:.1f} s; same top-1 as PyTorch on "
            f"{result.onnx_agreement:.0%} of {min(image_count, ONNX_CHECK_IMAGES)} photos; largest logit difference "
            f"{result.onnx_max_logit_diff:.1e}; onnxruntime / PyTorch fp32 time: {onnx_ratio:.2f}",
            interference_note(result.others),
        ]
    )
