"""Image classification with any Hugging Face image classifier: batched, no-grad, reduced precision where fast."""

from __future__ import annotations

import inspect
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .gpu import gpu_work
from .images import ImageInput, load_images
from .models import LoadedModel, load_classifier
from .settings import DEFAULT_CLASSIFIER
from .types import OnLoad, OnRun, Prediction, run_since


def preload_classifier_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """The classifier a call of classify (or classify_files) will use, loaded into the cache (see core.gpu)."""
    load_classifier(call["model"], device=call["device"], precision=call["precision"], on_load=on_load)


@gpu_work(preload=preload_classifier_for)
def classify(
    images: ImageInput | list[ImageInput],
    model: str = DEFAULT_CLASSIFIER,
    top_k: int = 5,
    *,
    batch_size: int = 16,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
    on_run: OnRun = None,
) -> list[Prediction] | list[list[Prediction]]:
    """Top-k labels, best first. One image in gives one list; a list in gives a list of lists.
    `on_load` hears the model's name before a load that may download; `on_run` hears what the call ran on."""
    single = not isinstance(images, (list, tuple))
    check_top_k(top_k)
    check_batch_size(batch_size)
    pil_images = load_images(images)
    loaded = load_classifier(model, device=device, precision=precision, on_load=on_load)
    started = time.perf_counter()
    probabilities = predict_probabilities(loaded, pil_images, batch_size=batch_size)
    labels = label_names(loaded.model.config)
    results = [top_predictions(row, labels, top_k) for row in probabilities]
    if on_run is not None:
        on_run(run_since(loaded, started))
    return results[0] if single else results


def predict_probabilities(loaded: LoadedModel, images: Sequence[Image.Image], batch_size: int = 16) -> np.ndarray:
    """Class probabilities, one row per image, as float32 (computed in the model's dtype)."""
    starts = range(0, len(images), batch_size)
    rows = []
    for start in tqdm(starts, desc="Classifying", unit="batch", disable=len(starts) < 2, leave=False):
        pixel_values = preprocess(loaded, images[start : start + batch_size])
        with torch.inference_mode():
            logits = loaded.model(pixel_values=pixel_values, **size_kwargs(loaded, pixel_values)).logits.float()
        rows.append(scores_from_logits(logits, loaded.model.config).cpu().numpy())
    return np.concatenate(rows)


def preprocess(loaded: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """The model's own image processor, then onto the model's device and dtype."""
    pixel_values = loaded.processor(images=list(images), return_tensors="pt")["pixel_values"]
    return pixel_values.to(loaded.device, loaded.dtype)


def size_kwargs(loaded: LoadedModel, pixel_values: torch.Tensor) -> dict:
    """A processor set to another size than the model was trained at (e.g. a non-square one) needs the
    position embeddings interpolated; ViT, DeiT and DINO accept the flag."""
    image_size = getattr(loaded.model.config, "image_size", None)
    expected = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size or ())
    accepts_flag = "interpolate_pos_encoding" in inspect.signature(loaded.model.forward).parameters
    if accepts_flag and expected and tuple(pixel_values.shape[-2:]) != expected:
        return {"interpolate_pos_encoding": True}
    return {}


def scores_from_logits(logits: torch.Tensor, config) -> torch.Tensor:
    # Multi-label heads are trained with sigmoid, everything else with softmax (as transformers' pipeline does).
    if getattr(config, "problem_type", None) == "multi_label_classification":
        return logits.sigmoid()
    return logits.softmax(dim=-1)


def label_names(config) -> list[str]:
    """Class names by index; models without names get LABEL_i, as transformers does."""
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(index, id2label.get(str(index), f"LABEL_{index}"))) for index in range(config.num_labels)]


def top_predictions(probabilities: np.ndarray, labels: Sequence[str], top_k: int) -> list[Prediction]:
    """The k most likely labels, best first (k is capped at the number of labels)."""
    k = min(top_k, len(labels))
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [Prediction(label=labels[index], score=float(probabilities[index])) for index in order]


def check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a whole number of at least 1, not {top_k!r}.")


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, not {batch_size!r}.")
