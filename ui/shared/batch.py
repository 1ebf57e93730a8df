"""Batch results as both front ends show them: table rows for a widget, the same rows as a CSV, a summary line."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

from core import FileCaptions, FileResult, Prediction

CSV_COLUMNS = ("file", "top1", "score", "top_k", "error")
CAPTION_CSV_COLUMNS = ("file", "caption", "other_captions", "error")
PREDICTIONS_CSV = "predictions.csv"  # the downloads' file names
CAPTIONS_CSV = "captions.csv"
DONE_CLASSIFIED, DONE_CAPTIONED = "classified", "captioned"  # batch_summary's `done` for each tab


def format_top_k(predictions: Sequence[Prediction]) -> str:
    return "; ".join(f"{p.label} ({p.score:.3f})" for p in predictions)


def results_table(results: Sequence[FileResult]) -> list[list[str]]:
    """Rows for a table widget or a CSV, in CSV_COLUMNS order."""
    rows = []
    for result in results:
        top = result.predictions[0] if result.predictions else None
        rows.append(
            [
                result.name,
                top.label if top else "",
                f"{top.score:.4f}" if top else "",
                format_top_k(result.predictions),
                result.error or "",
            ]
        )
    return rows


def write_csv(results: Sequence[FileResult], path: str | os.PathLike) -> Path:
    return _write_rows(CSV_COLUMNS, results_table(results), path=path)


def caption_table(results: Sequence[FileCaptions]) -> list[list[str]]:
    """Rows for a table widget or a CSV, in CAPTION_CSV_COLUMNS order."""
    return [
        [
            result.name,
            result.captions[0] if result.captions else "",
            " | ".join(result.captions[1:]),
            result.error or "",
        ]
        for result in results
    ]


def write_caption_csv(results: Sequence[FileCaptions], path: str | os.PathLike) -> Path:
    return _write_rows(CAPTION_CSV_COLUMNS, caption_table(results), path=path)


def _write_rows(columns: Sequence[str], rows: list[list[str]], *, path: str | os.PathLike) -> Path:
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def batch_summary(results: Sequence[FileResult | FileCaptions], done: str) -> str:
    """One Markdown line under a batch table: '**3** images classified, **1** could not be read (...)'.
    `done` is the past participle of what happened to the images that read ('classified', 'captioned')."""
    failed = sum(not result.ok for result in results)
    succeeded = len(results) - failed
    line = f"**{succeeded}** image{'' if succeeded == 1 else 's'} {done}"
    return line + (f", **{failed}** could not be read (see the error column)." if failed else ".")
