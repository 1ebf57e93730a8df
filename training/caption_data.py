"""Image + caption pairs from a CSV, a JSON Lines file, an imagefolder (metadata.jsonl / captions.csv) or a zip of
one: checked, reported and split by image for captioner training."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
import shutil
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from core.images import IMAGE_SUFFIXES, ImageError, ImageTooLargeError, is_hidden, verify_image_file
from core.zips import ZipLimits, ZipReader, ZipRefusedError, is_unsafe_zip_name, too_many_files_message

from .data import (
    TRAIN_FOLDER,
    VAL_FOLDERS,
    DataError,
    PathLike,
    Skipped,
    _is_symlink_entry,
    _limits,
    _new_folder,
    unpack_zip,
)

# The column names looked for when none is given, in this order (the Hugging Face and COCO habits).
IMAGE_COLUMNS = ("image", "image_path", "file_name", "filename")
CAPTION_COLUMNS = ("caption", "text", "captions")
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class CaptionPair:
    """One image and every reference caption it has (a list in the file, or repeated rows)."""

    image: Path  # absolute
    captions: tuple[str, ...]  # at least one, each stripped and non-empty


@dataclass(frozen=True)
class CaptionReport:
    """What "Check data" shows for a captioned set."""

    pairs: int  # image-caption pairs kept (an image with 3 captions counts 3)
    images: int  # distinct images kept
    train_images: int
    val_images: int
    split: str  # "validation file" or "held out 10% of images"
    image_column: str
    caption_column: str
    skipped: tuple[Skipped, ...]  # rows and files left out, each with its reason
    caption_words: tuple[int, ...]  # the length in words of every kept caption (a tokenizer may not exist yet)
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class CaptionData:
    train: tuple[CaptionPair, ...]
    val: tuple[CaptionPair, ...]
    report: CaptionReport
    root: Path  # the folder the images are in (a zip's unpacked folder)
    # The folders zips were unpacked into (training's, then validation's): the caller's to delete after training.
    unpacked: tuple[Path, ...] = ()


# The files that hold captions, looked for in a folder (or an unpacked zip) in this order: the Hugging Face
# imagefolder's names first.
CAPTION_FILES = ("metadata.jsonl", "metadata.csv", "captions.csv", "captions.jsonl", "metadata.json", "captions.json")
TABLE_SUFFIXES = (".csv", ".jsonl", ".json")
MAX_TABLE_BYTES = 200 * 1024**2  # a caption file this big holds millions of rows: not something to read in memory
FEW_IMAGES = 100  # below this a captioner learns little beyond the commonest words
SMALL_VAL_IMAGES = 10  # below this validation ROUGE moves in big steps
LONG_CAPTION_WORDS = 60  # past this the usual max target length (64-128 tokens) cuts captions off
MISSING_IMAGE = "missing image"
EMPTY_CAPTION = "empty caption"
NUMBER_CAPTION = "caption is a number, not text"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


# --- the entry points ---------------------------------------------------------------------------------------


def load_caption_data(
    source: PathLike,
    *,
    validation: PathLike | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    work_dir: PathLike | None = None,
) -> CaptionData:
    """Read, check and split image + caption pairs; raise DataError (naming the fix) when training could not start.

    `source`: a CSV or JSON Lines file (image paths relative to the file), a folder of images with metadata.jsonl
    (file_name + text, the imagefolder convention) or captions.csv, or a .zip of such a folder. Columns are found
    from IMAGE_COLUMNS and CAPTION_COLUMNS unless given. An image with several captions (a list, a JSON list in a
    CSV cell, or repeated rows) is one pair holding them all. `validation`: a second source of the same kinds;
    without it val_fraction of the images (never of the captions, so no image is in both) is held out, shuffled by
    `seed`. Rows that cannot be used (a missing or damaged image, an empty caption) are left out with their reason
    in report.skipped. Zips unpack into a new folder under `work_dir` (a temporary folder when None), which the
    caller may delete once training is over; image paths in a zip's caption file must stay inside the zip.
    """
    _check_val_fraction(val_fraction)
    limits = _limits(None, None)
    unpacked: list[Path] = []
    with ExitStack() as cleanup:
        train_place = _locate(source, work_dir, limits, cleanup, unpacked)
        train_table = _read_table(train_place, limits, image_column, caption_column)
        val_place = train_place.validation
        if validation is not None:
            val_place = _locate(validation, work_dir, limits, cleanup, unpacked)
        if val_place is None:
            train, val = _split_by_image(train_table.pairs, val_fraction, seed)
            split = f"held out {round(val_fraction * 100)}% of images"
            skipped = list(train_table.skipped)
        else:
            val_table = _read_table(val_place, limits, image_column, caption_column)
            val = val_table.pairs
            val_images = {pair.image for pair in val}
            train = tuple(pair for pair in train_table.pairs if pair.image not in val_images)
            skipped = [
                *train_table.skipped,
                *(
                    Skipped(_name_of(pair.image, train_table.base), "also in the validation data: kept there only")
                    for pair in train_table.pairs
                    if pair.image in val_images
                ),
                *(Skipped(f"validation: {item.name}", item.reason) for item in val_table.skipped),
            ]
            if not train:
                raise DataError(
                    "Every training image is also in the validation data: give validation images that are not in "
                    "the training data, or leave the validation data out and let 10% of the images be held out."
                )
            split = "validation file"
        report = _report(train, val, split, train_table, skipped)
        cleanup.pop_all()  # success: the unpacked folders are the caller's now
    return CaptionData(train=train, val=val, report=report, root=train_table.base, unpacked=tuple(unpacked))


def sample_pairs(data: CaptionData, count: int = 6) -> tuple[CaptionPair, ...]:
    """Up to `count` pairs for "Check data" thumbnails, spread evenly over the training then validation pairs, so
    they show the variety of the set rather than its first rows."""
    if count < 0:
        raise ValueError(f"The number of examples cannot be negative (got {count}).")
    pairs = (*data.train, *data.val)
    if count >= len(pairs):
        return pairs
    return tuple(pairs[math.floor(index * len(pairs) / count)] for index in range(count))


# --- settings -----------------------------------------------------------------------------------------------


def _check_val_fraction(val_fraction: float) -> None:
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction <= 0.5):
        raise DataError(
            f"The validation fraction must be above 0 and at most 0.5 (got {val_fraction!r}); 0.1 suits most "
            "caption sets."
        )


# --- one source: a caption file and the images it names -----------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """One source read: its pairs (images checked), what was left out, and where it came from."""

    label: str  # the caption file as the user knows it, e.g. "shapes.zip/shapes/metadata.jsonl"
    base: Path  # the folder image paths are relative to
    image_column: str
    caption_column: str
    pairs: tuple[CaptionPair, ...]
    skipped: tuple[Skipped, ...]
    rows: int  # rows read from the file


@dataclass(frozen=True)
class _Row:
    name: str  # the image as the file names it, or "<file> line N" when it names none
    image_name: str  # "" when the row names none
    captions: tuple[str, ...]
    numbers: int  # caption values that were numbers
    problem: str | None  # why the row cannot be used


@dataclass(frozen=True)
class _Location:
    """Where a source's caption file is on disk, and how to read it."""

    table_file: Path
    label: str  # the caption file as the user knows it, e.g. "shapes.zip/shapes/metadata.jsonl"
    images_folder: Path | None  # a folder whose images should all have captions (a folder or zip source)
    confined: bool  # image paths must stay inside the folder (a zip's)
    skipped: tuple[Skipped, ...]  # zip entries left out
    validation: _Location | None = None  # an imagefolder's validation/ beside its train/


def _locate(
    source: PathLike, work_dir: PathLike | None, limits: ZipLimits, cleanup: ExitStack, unpacked: list[Path]
) -> _Location:
    """The caption file of a file, folder or zip source (a zip unpacked first, removed again by `cleanup`)."""
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"Cannot read captions from a {type(source).__name__}: give a CSV or JSON Lines file, a folder of "
            "images with metadata.jsonl, or a .zip of one."
        )
    path = Path(source).expanduser().absolute()  # pairs must not depend on the working directory later
    if not path.exists():
        raise DataError(
            f"{path} does not exist: give a CSV or JSON Lines file, a folder of images with metadata.jsonl, or a "
            ".zip of one."
        )
    if path.is_file() and zipfile.is_zipfile(path):
        folder = _new_folder(work_dir)
        cleanup.callback(shutil.rmtree, folder, True)
        unpacked.append(folder)
        zip_skipped = _extract_zip(path, folder, limits)
        return _folder_location(folder, path.name, confined=True, skipped=tuple(zip_skipped))
    if path.is_dir():
        return _folder_location(path, "", confined=False, skipped=())
    if path.suffix.lower() == ".zip":
        raise DataError(f"{path.name} is not a readable zip file (damaged or incomplete?): zip the folder again.")
    if path.suffix.lower() in TABLE_SUFFIXES:
        return _Location(table_file=path, label=path.name, images_folder=None, confined=False, skipped=())
    raise DataError(
        f"{path.name} is not a caption file: give a .csv or .jsonl file with an image and a caption column, a "
        "folder of images with metadata.jsonl, or a .zip of one."
    )


def _folder_location(folder: Path, prefix: str, *, confined: bool, skipped: tuple[Skipped, ...]) -> _Location:
    """A folder's caption file; when it sits in train/ and a validation/ (or val/, valid/) folder beside it has
    one too, that one is the validation data (the imagefolder layout)."""
    table_file = _find_caption_file(folder, prefix or folder.name)

    def location(table: Path, validation: _Location | None = None, kept: tuple[Skipped, ...] = ()) -> _Location:
        label = "/".join(part for part in (prefix, table.relative_to(folder).as_posix()) if part)
        return _Location(table, label, table.parent, confined, kept, validation)

    if table_file.parent.name.lower() != TRAIN_FOLDER or table_file.parent == folder:
        return location(table_file, kept=skipped)
    siblings = {child.name.lower(): child for child in table_file.parent.parent.iterdir() if child.is_dir()}
    val_folder = next((siblings[name] for name in VAL_FOLDERS if name in siblings), None)
    val_table = _caption_file_in(val_folder) if val_folder else None
    return location(table_file, location(val_table) if val_table else None, skipped)


def _read_table(place: _Location, limits: ZipLimits, image_column: str | None, caption_column: str | None) -> _Table:
    table_file, label, images_folder, confined = place.table_file, place.label, place.images_folder, place.confined
    zip_skipped = place.skipped
    columns, records, row_skipped = _read_records(table_file, label)
    image_key = _pick_column(image_column, IMAGE_COLUMNS, columns, label, "image", "image_column")
    caption_key = _pick_column(caption_column, CAPTION_COLUMNS, columns, label, "caption", "caption_column")
    base = table_file.parent
    rows = [_row(line, fields, image_key, caption_key, confined, label) for line, fields in records]
    _check_captions_are_text(rows, caption_key, columns, label)
    pairs, pair_skipped = _pairs(rows, base, limits, label)
    named = {Path(os.path.normpath(base / row.image_name)) for row in rows if row.image_name}
    uncaptioned = _uncaptioned_images(images_folder, named, label) if images_folder else []
    skipped = _unique_by_name([*zip_skipped, *row_skipped, *pair_skipped, *uncaptioned])
    if not pairs:
        raise DataError(_no_pairs_message(label, base, len(records), skipped))
    return _Table(
        label=label,
        base=base,
        image_column=image_key,
        caption_column=caption_key,
        pairs=pairs,
        skipped=tuple(skipped),
        rows=len(records),
    )


# --- zips ---------------------------------------------------------------------------------------------------


def _extract_zip(zip_path: Path, target: Path, limits: ZipLimits) -> list[Skipped]:
    """Unpack a zip's images and caption files into target through core.zips's reader, which refuses unsafe names
    and too many files or bytes before a byte is written; symlinks and other files are left out with a reason."""
    return unpack_zip(zip_path, target, limits, _unpack)


def _unpack(reader: ZipReader, entries: Sequence[zipfile.ZipInfo], target: Path) -> list[Skipped]:
    skipped: list[Skipped] = []
    for info in entries:
        name = info.filename.replace("\\", "/")  # PowerShell's Compress-Archive writes backslashes
        suffix = Path(name).suffix.lower()
        if is_hidden(name):
            skipped.append(Skipped(name, "hidden file"))
            continue
        if _is_symlink_entry(info):
            skipped.append(Skipped(name, "symlink"))
            continue
        if suffix not in IMAGE_SUFFIXES and suffix not in TABLE_SUFFIXES:
            skipped.append(Skipped(name, "not an image or a caption file"))
            continue
        destination = target / name
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as out:
                for chunk in reader.chunks(info, label=f"'{name}'"):
                    out.write(chunk)
        except ZipRefusedError:
            raise  # past the zip's total: the whole zip is refused
        except (
            ImageError,
            OSError,
            RuntimeError,
            NotImplementedError,
            EOFError,
            zipfile.BadZipFile,
            zlib.error,
        ) as error:
            # an entry too large, damaged, encrypted or oddly compressed: the rows naming it are skipped later
            destination.unlink(missing_ok=True)
            skipped.append(Skipped(name, f"cannot be unpacked: {error}"))
    return skipped


def _find_caption_file(folder: Path, label: str) -> Path:
    """The caption file of a folder, looked for in the folder, then in the folders below it (a zip often wraps
    everything in one folder), shallowest first."""
    for depth_folder in _folders_by_depth(folder):
        found = _caption_file_in(depth_folder)
        if found is not None:
            return found
    raise DataError(
        f"No caption file found in {label}: add metadata.jsonl beside the images (one line per image, e.g. "
        '{"file_name": "1.jpg", "text": "a cat on a sofa"}) or captions.csv with image and caption columns.'
    )


def _caption_file_in(folder: Path) -> Path | None:
    """A file named as in CAPTION_FILES, else the folder's only .csv/.jsonl/.json, else None."""
    files = {child.name.lower(): child for child in folder.iterdir() if child.is_file() and not is_hidden(child.name)}
    named = next((files[name] for name in CAPTION_FILES if name in files), None)
    if named is not None:
        return named
    tables = sorted(child for name, child in files.items() if Path(name).suffix in TABLE_SUFFIXES)
    if len(tables) > 1:
        names = ", ".join(table.name for table in tables)
        raise DataError(
            f"{folder.name}/ holds several caption files ({names}) and none is named metadata.jsonl or "
            "captions.csv: rename the one to train on, or give that file itself."
        )
    return tables[0] if tables else None


def _folders_by_depth(folder: Path, max_depth: int = 3) -> list[Path]:
    found, level = [], [folder]
    for _ in range(max_depth + 1):
        found += level
        level = sorted(
            child
            for parent in level
            for child in parent.iterdir()
            if child.is_dir() and not child.is_symlink() and not is_hidden(child.name)
        )
    return found


# --- reading the caption file -------------------------------------------------------------------------------

_Record = tuple[int, dict[str, Any]]  # (line number in the file, the row's fields)


def _read_records(table_file: Path, label: str) -> tuple[list[str], list[_Record], list[Skipped]]:
    """(columns, rows, rows left out) of a CSV, JSON Lines or JSON (a list of objects) file."""
    size = table_file.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise DataError(
            f"{label} is {size / 1e6:.0f} MB; caption files up to {MAX_TABLE_BYTES / 1e6:.0f} MB are read. "
            "Split it, or train on a part of it."
        )
    raw = table_file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as error:
        raise DataError(
            f"{label} is not UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start}): save it again as "
            "UTF-8 (in Excel: Save As, 'CSV UTF-8'; in an editor: encoding UTF-8)."
        ) from None
    if not text.strip():
        raise DataError(f"{label} is empty: it needs a row per image with an image and a caption column.")
    suffix = table_file.suffix.lower()
    if suffix == ".csv":
        return _read_csv(text, label)
    stripped = text.lstrip()
    if suffix == ".json" and stripped.startswith("["):
        return _read_json_list(text, label)
    return _read_json_lines(text, label)


def _read_csv(text: str, label: str) -> tuple[list[str], list[_Record], list[Skipped]]:
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        columns = [name.strip() for name in header]
        records = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line, often the last one
            records.append((reader.line_num, dict(zip(columns, row))))
    except csv.Error as error:
        raise DataError(f"{label} is not a readable CSV file ({error}): save it again as CSV.") from None
    return columns, records, []


def _read_json_list(text: str, label: str) -> tuple[list[str], list[_Record], list[Skipped]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{label} is not valid JSON ({error}): fix it, or write one JSON object per line.") from None
    return _json_records([(index + 1, item) for index, item in enumerate(items)], label, "item")


def _read_json_lines(text: str, label: str) -> tuple[list[str], list[_Record], list[Skipped]]:
    parsed: list[tuple[int, Any]] = []
    skipped = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.append((line_number, json.loads(line)))
        except json.JSONDecodeError as error:
            skipped.append(Skipped(f"{label} line {line_number}", f"not valid JSON: {error.msg}"))
    if not parsed:
        raise DataError(
            f"{label} holds no JSON objects: write one per line, e.g. "
            '{"file_name": "1.jpg", "text": "a cat on a sofa"}.'
        )
    columns, records, not_objects = _json_records(parsed, label, "line")
    return columns, records, [*skipped, *not_objects]


def _json_records(
    items: list[tuple[int, Any]], label: str, unit: str
) -> tuple[list[str], list[_Record], list[Skipped]]:
    columns: dict[str, None] = {}  # in the order first seen
    records: list[_Record] = []
    skipped = []
    for number, item in items:
        if not isinstance(item, dict):
            skipped.append(Skipped(f"{label} {unit} {number}", "not a JSON object with an image and a caption"))
            continue
        columns.update(dict.fromkeys(str(key) for key in item))
        records.append((number, {str(key): value for key, value in item.items()}))
    if not records:
        raise DataError(
            f"{label} holds no JSON objects: give one per image, e.g. "
            '{"file_name": "1.jpg", "text": "a cat on a sofa"}.'
        )
    return list(columns), records, skipped


def _pick_column(
    given: str | None, usual: Sequence[str], columns: Sequence[str], label: str, kind: str, option: str
) -> str:
    found = ", ".join(f"'{name}'" for name in columns) or "none"
    if given is not None:
        if given in columns:
            return given
        raise DataError(
            f"{label} has no {kind} column '{given}'; the columns found are {found}. Give one of those as {option}."
        )
    by_lower = {name.lower(): name for name in columns}
    for name in usual:
        if name in by_lower:
            return by_lower[name]
    raise DataError(
        f"{label} has no {kind} column: looked for {', '.join(usual)}; the columns found are {found}. "
        f"Rename the column, or name it with {option} (--{option} on the command line)."
    )


# --- rows to pairs ------------------------------------------------------------------------------------------


def _row(line: int, fields: dict[str, Any], image_key: str, caption_key: str, confined: bool, label: str) -> _Row:
    """One row of the file, read but not yet checked against the disk."""
    captions, numbers = _captions(fields.get(caption_key))
    image_name = _image_name(fields.get(image_key))
    name = image_name or f"{label} line {line}"
    problem = None
    if not image_name:
        problem = f"no image named in its '{image_key}' column"
    elif confined and is_unsafe_zip_name(image_name):
        problem = "points outside the zip (an absolute path or '..'): name images by their path inside the zip"
    elif not captions:
        problem = NUMBER_CAPTION if numbers else EMPTY_CAPTION
    return _Row(name=name, image_name=image_name, captions=captions, numbers=numbers, problem=problem)


def _image_name(value: Any) -> str:
    if isinstance(value, dict):  # a Hugging Face datasets Image feature written out: {"path": ..., "bytes": ...}
        value = value.get("path")
    if value is None or isinstance(value, (list, bool, float)):
        return ""
    return str(value).strip().replace("\\", "/")


def _captions(value: Any) -> tuple[tuple[str, ...], int]:
    """(the non-empty captions in a cell, how many of its values were numbers). A cell holds one caption, a list
    of them (JSON), or a JSON list written as text (a CSV cell such as '["a cat", "a black cat"]')."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # a caption that happens to start with a bracket
    values = value if isinstance(value, list) else [value]
    captions: list[str] = []
    numbers = 0
    for item in values:
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, (int, float)) or (isinstance(item, str) and _NUMBER.match(item.strip())):
            numbers += 1
            continue
        text = " ".join(str(item).split())  # one space between words, none around them
        if text and text not in captions:
            captions.append(text)
    return tuple(captions), numbers


def _check_captions_are_text(rows: Sequence[_Row], caption_key: str, columns: Sequence[str], label: str) -> None:
    """A caption column of numbers is the wrong column (an id, a score, a count), not rows to skip one by one."""
    if any(row.captions for row in rows):
        return
    example = next((row for row in rows if row.numbers), None)
    if example is None:
        return
    others = ", ".join(f"'{name}'" for name in columns if name != caption_key) or "none"
    raise DataError(
        f"The caption column '{caption_key}' of {label} holds numbers, not text: name the column that holds the "
        f"captions with caption_column (--caption_column on the command line); the other columns are {others}."
    )


def _pairs(
    rows: Sequence[_Row], base: Path, limits: ZipLimits, label: str
) -> tuple[tuple[CaptionPair, ...], list[Skipped]]:
    """The rows grouped by image (repeated rows add captions), each image opened once; rows whose image is
    missing or damaged are left out with the reason."""
    skipped = [Skipped(row.name, row.problem) for row in rows if row.problem]
    captions_by_image: dict[Path, list[str]] = {}
    names: dict[Path, str] = {}
    for row in rows:
        if row.problem:
            continue
        path = Path(os.path.normpath(base / row.image_name))
        names.setdefault(path, row.name)
        kept = captions_by_image.setdefault(path, [])
        kept += [caption for caption in row.captions if caption not in kept]
    if len(captions_by_image) > limits.max_files:
        raise DataError(too_many_files_message(label, len(captions_by_image), limits))
    images = list(captions_by_image)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        problems = list(pool.map(_image_problem, images))
    pairs = []
    for path, problem in zip(images, problems):
        if problem:
            skipped.append(Skipped(names[path], problem))
        else:
            pairs.append(CaptionPair(image=path, captions=tuple(captions_by_image[path])))
    return tuple(pairs), skipped


def _image_problem(path: Path) -> str | None:
    if not path.is_file():
        return MISSING_IMAGE
    try:
        verify_image_file(path, name="the file")
    except ImageTooLargeError as error:
        return f"too large: {error}"
    except ImageError as error:
        return f"damaged image: {error}"
    return None


def _uncaptioned_images(folder: Path, named: set[Path], label: str) -> list[Skipped]:
    """The images of a folder (or unpacked zip) that no row of its caption file names: left out, and said so."""
    return [
        Skipped(path.relative_to(folder).as_posix(), f"no caption in {label}")
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not is_hidden(path.relative_to(folder).as_posix())
        and Path(os.path.normpath(path)) not in named
        and path.is_file()
    ]


def _unique_by_name(skipped: Sequence[Skipped]) -> list[Skipped]:
    return list({item.name: item for item in skipped}.values())


def _no_pairs_message(label: str, base: Path, rows: int, skipped: Sequence[Skipped]) -> str:
    reasons = [item.reason for item in skipped]
    example = f", e.g. {skipped[0].name}: {skipped[0].reason}" if skipped else ""
    if reasons and all(reason == MISSING_IMAGE for reason in reasons):
        fix = f"image paths are read relative to the caption file's folder ({base}): fix the paths, or move the file"
    elif reasons and all(reason in (EMPTY_CAPTION, NUMBER_CAPTION) for reason in reasons):
        fix = "fill in the captions"
    else:
        fix = "fix the rows listed, or give a file with an image and a caption on each row"
    return f"{label} has no usable image + caption pairs ({rows} rows read, {len(skipped)} left out{example}): {fix}."


# --- the split and the report -------------------------------------------------------------------------------


def _split_by_image(
    pairs: Sequence[CaptionPair], val_fraction: float, seed: int
) -> tuple[tuple[CaptionPair, ...], tuple[CaptionPair, ...]]:
    """Hold out val_fraction of the images (all captions of an image go with it), shuffled by seed, at least one
    when there are two or more; both sides keep the file's order."""
    if len(pairs) < 2:
        return tuple(pairs), ()
    images = sorted(str(pair.image) for pair in pairs)  # the file's order must not change the split
    random.Random(seed).shuffle(images)
    val_count = min(max(math.floor(len(images) * val_fraction + 0.5), 1), len(images) - 1)
    held_out = set(images[:val_count])
    return (
        tuple(pair for pair in pairs if str(pair.image) not in held_out),
        tuple(pair for pair in pairs if str(pair.image) in held_out),
    )


def _name_of(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _report(
    train: Sequence[CaptionPair], val: Sequence[CaptionPair], split: str, table: _Table, skipped: Sequence[Skipped]
) -> CaptionReport:
    captions = [caption for pair in (*train, *val) for caption in pair.captions]
    words = tuple(len(caption.split()) for caption in captions)
    return CaptionReport(
        pairs=len(captions),
        images=len(train) + len(val),
        train_images=len(train),
        val_images=len(val),
        split=split,
        image_column=table.image_column,
        caption_column=table.caption_column,
        skipped=tuple(skipped),
        caption_words=words,
        warnings=tuple(_warnings(len(train) + len(val), len(val), words)),
    )


def _warnings(images: int, val_images: int, words: Sequence[int]) -> list[str]:
    warnings = []
    if images < FEW_IMAGES:
        warnings.append(
            f"Only {images} images: a captioner learns little more than the commonest words from so few. A few "
            "hundred images suit the small scratch model; thousands a pretrained one."
        )
    if val_images == 0:
        warnings.append("No validation images (only one image): ROUGE cannot be measured. Add images.")
    elif val_images < SMALL_VAL_IMAGES:
        warnings.append(
            f"The validation split holds only {val_images} images, so its ROUGE moves in big steps; add images or "
            "give a validation file for a steadier figure."
        )
    if words and max(words) > LONG_CAPTION_WORDS:
        warnings.append(
            f"The longest caption has {max(words)} words: captions longer than the max target length (in tokens) "
            "are cut off in training; raise it, or shorten them."
        )
    return warnings


__all__ = [
    "CAPTION_COLUMNS",
    "IMAGE_COLUMNS",
    "VAL_FRACTION",
    "sample_pairs",
    "load_caption_data",
    "CaptionData",
    "CaptionPair",
    "CaptionReport",
    "DataError",
    "Skipped",
]
