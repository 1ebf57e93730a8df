"""A trained run as one ONNX file, checked with onnxruntime against the PyTorch model on the run's validation images."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from core.images import load_image

from .checkpoints import SPLIT

log = logging.getLogger("vit_studio.training")

# The checks run on at most this many images: enough to trust the file, quick enough to wait for on a page.
MAX_CHECKED_IMAGES = 64
ONNX_OPSET = 18
CHECK_BATCH = 16


@dataclass(frozen=True)
class OnnxExport:
    """An exported run and how closely onnxruntime's answers match PyTorch's."""

    path: Path  # the .onnx file (weights inside: one file to download)
    images_checked: int
    top1_agreement: float  # the fraction of the checked images whose best class is the same in both, 0..1
    max_abs_logit_diff: float  # the largest difference between any logit of the two, over the checked images
    checked_on: str  # "validation": the run's held-out images; "given": the images passed in
    size_bytes: int
    classes: tuple[str, ...]
    image_size: int  # the side of the square images the file takes (pixel_values: batch x 3 x side x side)


def export_onnx(
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    images: Sequence[Any] | None = None,
    max_images: int = MAX_CHECKED_IMAGES,
    opset: int = ONNX_OPSET,
) -> OnnxExport:
    """Export a trained run (a save_pretrained folder) to `output` (default: run_dir/model.onnx), with a dynamic
    batch axis, then run it with onnxruntime on the run's validation images (from its split.json) and compare with
    PyTorch. `images` (paths, PIL images, arrays, bytes) are checked instead when given, or when the run no longer
    holds its validation images (a shared app removes a finished run's data)."""
    folder = Path(run_dir)
    model, processor = _load_run(folder)
    if images is not None and len(images) > 0:
        pictures, checked_on = [load_image(image) for image in list(images)[:max_images]], "given"
    else:
        pictures, checked_on = validation_images(folder, max_images), "validation"
    if not pictures:
        raise ValueError(
            f"The run '{folder.name}' no longer holds its validation images, so the export cannot be checked: "
            "pass a few images to check it on."
        )
    pixel_values = _pixel_values(processor, pictures)
    side = int(pixel_values.shape[-1])
    wrapped = _LogitsOnly(model, _needs_interpolation(model, side)).eval()
    path = Path(output) if output is not None else folder / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    _export(wrapped, pixel_values[:2], path, opset)
    with torch.inference_mode():
        expected = torch.cat([wrapped(batch) for batch in pixel_values.split(CHECK_BATCH)]).float().numpy()
    got = run_onnx(path, pixel_values.numpy())
    agreement = float(np.mean(expected.argmax(axis=1) == got.argmax(axis=1)))
    return OnnxExport(
        path=path,
        images_checked=len(pictures),
        top1_agreement=agreement,
        max_abs_logit_diff=float(np.abs(expected - got).max()),
        checked_on=checked_on,
        size_bytes=path.stat().st_size,
        classes=tuple(model.config.id2label[index] for index in range(model.config.num_labels)),
        image_size=side,
    )


def run_onnx(path: str | Path, pixel_values: np.ndarray) -> np.ndarray:
    """Logits from an exported file on CPU with onnxruntime, CHECK_BATCH images at a time."""
    import onnxruntime  # type: ignore[import-untyped]

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batches = [
        session.run(None, {name: pixel_values[start : start + CHECK_BATCH].astype(np.float32)})[0]
        for start in range(0, len(pixel_values), CHECK_BATCH)
    ]
    return np.concatenate(batches).astype(np.float32)


def validation_images(run_dir: Path, limit: int = MAX_CHECKED_IMAGES) -> list[Image.Image]:
    """Up to `limit` of the run's validation images that are still on disk, in split.json's order."""
    try:
        split = json.loads((run_dir / SPLIT).read_text(encoding="utf-8"))
        paths = [Path(entry[0]) for entry in split["val"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # no split kept, or not one we can read
        return []
    pictures: list[Image.Image] = []
    for path in paths:
        if len(pictures) >= limit:
            break
        try:
            pictures.append(load_image(path))
        except (OSError, ValueError):  # removed since training, or unreadable now
            continue
    return pictures


class _LogitsOnly(torch.nn.Module):
    """pixel_values -> logits: one input and one output, as an ONNX file has them."""

    def __init__(self, model: torch.nn.Module, interpolate: bool):
        super().__init__()
        self.model = model
        self.interpolate = interpolate

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        extra = {"interpolate_pos_encoding": True} if self.interpolate else {}
        return self.model(pixel_values=pixel_values, **extra).logits


def _load_run(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ValueError(
            f"'{folder.name or folder}' is not a trained run (no saved model in it): pick a finished run, or train "
            "one first."
        )
    try:
        model = AutoModelForImageClassification.from_pretrained(str(folder), attn_implementation="eager")
        processor = AutoImageProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"'{folder.name}' is not a trained image classifier that can be exported ({error}): pick a finished "
            "run of the Train tab."
        ) from error
    return model.float().eval(), processor


def _pixel_values(processor: Any, pictures: Sequence[Image.Image]) -> torch.Tensor:
    return processor(images=list(pictures), return_tensors="pt")["pixel_values"].float()


def _needs_interpolation(model: Any, side: int) -> bool:
    """A run trained at another size than its base model's own resizes its position embeddings as it runs."""
    import inspect

    native = getattr(model.config, "image_size", None)
    native = native[0] if isinstance(native, (list, tuple)) and native else native
    return (
        isinstance(native, int)
        and native != side
        and "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
    )


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """torch.onnx.export (the dynamo exporter) with a dynamic batch axis, the weights inside the one file. It is
    written next to `path` and renamed into place, so a failed export never leaves half a file."""
    example = example if len(example) > 1 else torch.cat([example, example])  # batch 1 would be fixed as 1
    batch = torch.export.Dim("batch", min=1, max=4096)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-") as staging:
        staged = Path(staging) / path.name
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's own progress notes and deprecations
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["pixel_values"],
                output_names=["logits"],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes={"pixel_values": {0: batch}},
                external_data=False,
                verbose=False,
            )
            if program is None:
                raise RuntimeError("torch.onnx.export returned no program")
            program.save(str(staged), external_data=False)
        staged.replace(path)
    log.info("exported %s (%d bytes)", path, path.stat().st_size)
