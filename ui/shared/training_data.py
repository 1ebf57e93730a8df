"""The training data as both front ends show it: which input is the data, and the check's report in rows and words."""

from __future__ import annotations

from typing import Any, Sequence

from core import load_image
from training import DataError, DataReport, DataSource, PathLike

COUNT_HEADERS = ("class", "train", "val", "total")
THUMBNAIL_SIDE = 160


def chosen_source(
    zip_file: PathLike | None,
    folder_items: Sequence | None,
    *,
    server_path: str | None,
    example: PathLike | None = None,
) -> DataSource:
    """What a front end's data inputs give training: the zip when one was uploaded, else the folder upload
    (paths, or (name inside the folder, path) pairs), else a path on the machine running the app, else the
    example data set when it was asked for (the user's own images always come first)."""
    if zip_file:
        return zip_file
    if folder_items:
        return list(folder_items)
    if server_path and str(server_path).strip():
        return str(server_path).strip()
    if example:
        return example
    raise DataError("Give the images first: a zip of class folders, or a folder with one sub-folder per class.")


def count_rows(report: DataReport) -> list[list]:
    """Rows [class, train, val, total] (COUNT_HEADERS), for a table."""
    return [
        [name, train, val, train + val]
        for name, train, val in zip(report.classes, report.train_counts, report.val_counts)
    ]


def report_summary(report: DataReport) -> str:
    """One line for a status box: classes, images per side, files left out."""
    skipped = f"; {len(report.skipped)} file(s) skipped" if report.skipped else ""
    return (
        f"{len(report.classes)} classes, {sum(report.train_counts)} training and {sum(report.val_counts)} "
        f"validation images ({report.split}){skipped}."
    )


def skipped_rows(report: DataReport) -> list[list[str]]:
    """Rows [file, why it was skipped] (train_widgets.SKIPPED_HEADERS)."""
    return [[item.name, item.reason] for item in report.skipped]


def thumbnails(report: DataReport, side: int = THUMBNAIL_SIDE) -> list[tuple[Any, str]]:
    """The report's example images as small in-memory pictures with their class, so the folder a check
    unpacked can be deleted at once (a check of a 2 GB zip must not keep 2 GB on disk)."""
    pictures = []
    for name, paths in zip(report.classes, report.examples):
        for path in paths:
            picture = load_image(path)
            picture.thumbnail((side, side))
            pictures.append((picture, name))
    return pictures


def collection_summary(classes: Sequence[str], counts: Sequence[int]) -> str:
    """'thumbs up: 12 images · open hand: 9 images (21 in all)', or what to do when nothing is collected yet."""
    if not classes:
        return "No images yet: type a class name and take a picture."
    parts = [f"**{name}**: {count} image{'s' if count != 1 else ''}" for name, count in zip(classes, counts)]
    return " · ".join(parts) + f" ({sum(counts)} in all)"


def collection_thumbnails(
    samples: Sequence[tuple[str, Sequence[PathLike]]], per_class: int = 6, side: int = THUMBNAIL_SIDE
) -> list[tuple[Any, str]]:
    """The latest `per_class` images of each (class, paths oldest first), as small pictures captioned with their
    class, newest first within a class."""
    pictures = []
    for name, paths in samples:
        for path in list(paths)[-per_class:][::-1]:
            picture = load_image(path)
            picture.thumbnail((side, side))
            pictures.append((picture, name))
    return pictures
