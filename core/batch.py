"""Many files at once: expand zips, classify or caption what reads, report what does not, write a CSV."""
from __future__ import annotations

import csv
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm.auto import tqdm

from .classify import check_batch_size, check_top_k, label_names, predict_probabilities, top_predictions
from .images import ImageError, load_image
from .zips import ZipImage, open_zip_in, zip_image_entries
from .caption import DEFAULT_CAPTIONER, caption
from .models import DEFAULT_CLASSIFIER, load_classifier
from .types import FileCaptions, FileResult, Prediction

CSV_COLUMNS = ("file", "top1", "score", "top_k", "error")
CAPTION_CSV_COLUMNS = ("file", "caption", "other_captions", "error")


def classify_files(
    files: Sequence[str | os.PathLike],
    model: str = DEFAULT_CLASSIFIER,
    top_k: int = 5,
    *,
    batch_size: int = 16,
    device: str | None = None,
    precision: str | None = None,
) -> list[FileResult]:
    """One row per image (zip entries included), in input order; a bad file gets an error row, not an exception."""
    check_top_k(top_k)
    check_batch_size(batch_size)
    predictions: dict[int, list[Prediction]] = {}
    loaded = labels = None
    with ExitStack() as open_zips:  # zip entries are read as their batch is decoded, so the zips stay open till then
        names, sources, errors = _expand(_as_list(files), open_zips)
        for rows, images in _image_batches(names, sources, errors, batch_size, "Classifying"):
            if loaded is None:  # no model load at all when nothing could be read
                loaded = load_classifier(model, device=device, precision=precision)
                labels = label_names(loaded.model.config)
            probabilities = predict_probabilities(loaded, images, batch_size=batch_size)
            predictions.update({row: top_predictions(p, labels, top_k) for row, p in zip(rows, probabilities)})
    return [
        FileResult(name=name, predictions=tuple(predictions.get(row, ())), error=errors.get(row))
        for row, name in enumerate(names)
    ]


def caption_files(
    files: Sequence[str | os.PathLike],
    model: str = DEFAULT_CAPTIONER,
    *,
    batch_size: int = 8,
    **caption_settings: Any,
) -> list[FileCaptions]:
    """One row per image (zip entries included), in input order, with core.caption's settings; a bad file gets
    an error row, not an exception."""
    check_batch_size(batch_size)
    captions: dict[int, tuple[str, ...]] = {}
    with ExitStack() as open_zips:
        names, sources, errors = _expand(_as_list(files), open_zips)
        for rows, images in _image_batches(names, sources, errors, batch_size, "Captioning"):
            texts = caption(images, model, batch_size=batch_size, **caption_settings)
            captions.update({row: (text,) if isinstance(text, str) else tuple(text)
                             for row, text in zip(rows, texts)})
    return [FileCaptions(name=name, captions=captions.get(row, ()), error=errors.get(row))
            for row, name in enumerate(names)]


def _as_list(files) -> list:
    if isinstance(files, (str, os.PathLike)):
        files = [files]  # one path, not a sequence of one-letter paths
    if not files:
        raise ValueError("No files given: upload images or a zip of images.")
    return list(files)


def _image_batches(
    names: list[str], sources: list, errors: dict[int, str], batch_size: int, desc: str,
) -> Iterator[tuple[list[int], list]]:
    """(rows, images) a batch at a time; files that fail to decode get their message in `errors` instead.
    Decoding lazily means a zip of thousands of photos never sits in memory, as bytes or pixels, all at once."""
    images, image_rows = [], []
    rows = tqdm(zip(names, sources), total=len(names), desc=desc, unit="image",
                disable=len(names) <= batch_size, leave=False)
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


def format_top_k(predictions: Sequence[Prediction]) -> str:
    return "; ".join(f"{p.label} ({p.score:.3f})" for p in predictions)


def results_table(results: Sequence[FileResult]) -> list[list[str]]:
    """Rows for a table widget or a CSV, in CSV_COLUMNS order."""
    rows = []
    for result in results:
        top = result.predictions[0] if result.predictions else None
        rows.append([
            result.name,
            top.label if top else "",
            f"{top.score:.4f}" if top else "",
            format_top_k(result.predictions),
            result.error or "",
        ])
    return rows


def write_csv(results: Sequence[FileResult], path: str | os.PathLike) -> Path:
    return _write_rows(CSV_COLUMNS, results_table(results), path)


def _write_rows(columns: Sequence[str], rows: list[list[str]], path: str | os.PathLike) -> Path:
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def caption_table(results: Sequence[FileCaptions]) -> list[list[str]]:
    """Rows for a table widget or a CSV, in CAPTION_CSV_COLUMNS order."""
    return [[result.name, result.captions[0] if result.captions else "", " | ".join(result.captions[1:]),
             result.error or ""] for result in results]


def write_caption_csv(results: Sequence[FileCaptions], path: str | os.PathLike) -> Path:
    return _write_rows(CAPTION_CSV_COLUMNS, caption_table(results), path)


def batch_summary(results: Sequence[FileResult | FileCaptions], done: str) -> str:
    """One Markdown line under a batch table: '**3** images classified, **1** could not be read (...)'.
    `done` is the past participle of what happened to the images that read ('classified', 'captioned')."""
    failed = sum(not result.ok for result in results)
    succeeded = len(results) - failed
    line = f"**{succeeded}** image{'' if succeeded == 1 else 's'} {done}"
    return line + (f", **{failed}** could not be read (see the error column)." if failed else ".")
