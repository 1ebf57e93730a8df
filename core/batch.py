"""Many files at once: expand zips, classify or caption what reads, report what does not."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from .caption import DEFAULT_CAPTIONER, caption, preload_captioner_for
from .classify import (
    check_batch_size,
    check_top_k,
    label_names,
    predict_probabilities,
    preload_classifier_for,
    top_predictions,
)
from .gpu import gpu_work
from .images import ImageError, load_image
from .models import LoadedModel, load_classifier
from .settings import DEFAULT_CLASSIFIER
from .types import FileCaptions, FileResult, OnLoad, OnRun, Prediction, RunInfo, run_since
from .zips import ZipImage, open_zip_in, zip_image_entries


@gpu_work(preload=preload_classifier_for)
def classify_files(
    files: Sequence[str | os.PathLike],
    model: str = DEFAULT_CLASSIFIER,
    top_k: int = 5,
    *,
    batch_size: int = 16,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
    on_run: OnRun = None,
) -> list[FileResult]:
    """One row per image (zip entries included), in input order; a bad file gets an error row, not an exception.
    `on_run` hears what ran, timed from the model load to the last row (decoding included); it is not called
    when no file could be read, since then no model ran."""
    check_top_k(top_k)
    check_batch_size(batch_size)
    predictions: dict[int, list[Prediction]] = {}
    loaded: LoadedModel | None = None
    labels: list[str] = []
    started = 0.0
    with ExitStack() as open_zips:  # zip entries are read as their batch is decoded, so the zips stay open till then
        names, sources, errors = _expand(_as_list(files), open_zips)
        for rows, images in _image_batches(names, sources, errors, batch_size, "Classifying"):
            if loaded is None:  # no model load at all when nothing could be read
                loaded = load_classifier(model, device=device, precision=precision, on_load=on_load)
                labels = label_names(loaded.model.config)
                started = time.perf_counter()
            probabilities = predict_probabilities(loaded, images, batch_size=batch_size)
            predictions.update({row: top_predictions(p, labels, top_k) for row, p in zip(rows, probabilities)})
    if on_run is not None and loaded is not None:
        on_run(run_since(loaded, started))
    return [
        FileResult(name=name, predictions=tuple(predictions.get(row, ())), error=errors.get(row))
        for row, name in enumerate(names)
    ]


def _preload_captioner_for_files(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """caption_files' captioner: its device and precision arrive among the caption settings."""
    settings = call["caption_settings"]
    preload_captioner_for(
        {"model": call["model"], "device": settings.get("device"), "precision": settings.get("precision")}, on_load
    )


@gpu_work(preload=_preload_captioner_for_files)
def caption_files(
    files: Sequence[str | os.PathLike],
    model: str = DEFAULT_CAPTIONER,
    *,
    batch_size: int = 8,
    on_load: OnLoad = None,
    on_run: OnRun = None,
    **caption_settings: Any,
) -> list[FileCaptions]:
    """One row per image (zip entries included), in input order, with core.caption's settings; a bad file gets
    an error row, not an exception. `on_run` hears what ran, timed as classify_files times it: from the model
    being ready to the last row (not called when no file could be read)."""
    check_batch_size(batch_size)
    captions: dict[int, tuple[str, ...]] = {}
    runs: list[RunInfo] = []
    started: float | None = None
    with ExitStack() as open_zips:
        names, sources, errors = _expand(_as_list(files), open_zips)
        for rows, images in _image_batches(names, sources, errors, batch_size, "Captioning"):
            texts = caption(
                images, model, batch_size=batch_size, on_load=on_load, on_run=runs.append, **caption_settings
            )
            if started is None:  # the moment the first batch's model was ready: its load is not counted
                started = time.perf_counter() - runs[0].milliseconds / 1000
            captions.update({row: (text,) if isinstance(text, str) else tuple(text) for row, text in zip(rows, texts)})
    if on_run is not None and started is not None:
        on_run(replace(runs[0], milliseconds=(time.perf_counter() - started) * 1000))
    return [
        FileCaptions(name=name, captions=captions.get(row, ()), error=errors.get(row)) for row, name in enumerate(names)
    ]


def _as_list(files) -> list:
    if isinstance(files, (str, os.PathLike)):
        files = [files]  # one path, not a sequence of one-letter paths
    if not files:
        raise ValueError("No files given: upload images or a zip of images.")
    return list(files)


def _image_batches(
    names: list[str],
    sources: list,
    errors: dict[int, str],
    batch_size: int,
    desc: str,
) -> Iterator[tuple[list[int], list]]:
    """(rows, images) a batch at a time; files that fail to decode get their message in `errors` instead.
    Decoding lazily means a zip of thousands of photos never sits in memory, as bytes or pixels, all at once."""
    images, image_rows = [], []
    rows = tqdm(
        zip(names, sources), total=len(names), desc=desc, unit="image", disable=len(names) <= batch_size, leave=False
    )
    for row, (name, source) in enumerate(rows):
        if source is not None:
            try:
                images.append(load_image(source, name=f"'{name}'"))
                image_rows.append(row)
            except ImageError as error:
                errors[row] = str(error)
        if images and (len(images) == batch_size or row == len(names) - 1):
            yield image_rows, images
            images, image_rows = [], []


def _expand(files: Sequence[str | os.PathLike], open_zips: ExitStack):
    """Flatten zips into references to their image entries (read later, one at a time), each zip held open by
    `open_zips`; a zip that cannot be opened or is refused as a whole becomes one error row."""
    names: list[str] = []
    sources: list[Path | ZipImage | None] = []
    errors: dict[int, str] = {}
    for file in tqdm(files, desc="Reading files", unit="file", disable=len(files) < 20, leave=False):
        path = Path(file)
        if path.suffix.lower() == ".zip":
            try:
                archive = open_zip_in(open_zips, path, path.name)
                entries = zip_image_entries(archive, path.name)
            except ImageError as error:
                errors[len(names)] = str(error)
                names.append(path.name)
                sources.append(None)
                continue
            for info in entries:
                names.append(f"{path.name}/{info.filename}")
                sources.append(ZipImage(archive, info, names[-1]))
        else:
            names.append(path.name)
            sources.append(path)
    return names, sources, errors
