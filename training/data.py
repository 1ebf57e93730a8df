"""Turn a folder, a zip or a list of uploaded files into a checked, split image-classification data set."""

from __future__ import annotations

import errno
import math
import os
import random
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from torch.utils.data import Dataset

from core.images import IMAGE_SUFFIXES, ImageError, ImageTooLargeError, is_hidden, load_image, verify_image_file
from core.zips import (
    MAX_ZIP_BYTES,
    ZipEntryTooLargeError,
    ZipLimits,
    ZipReader,
    ZipRefusedError,
    is_unsafe_zip_name,
    open_zip,
    too_many_bytes_message,
    too_many_files_message,
    zip_limits,
)

PathLike = Union[str, os.PathLike]
# A list source holds plain paths (the class is the parent folder's name) or (relative name, path) pairs.
DataSource = Union[PathLike, Sequence[Union[PathLike, tuple[str, PathLike]]]]

TRAIN_FOLDER = "train"
VAL_FOLDERS = ("val", "validation", "valid")  # in order of preference when several are present

# The data's caps are core.zips's, one set for zips, folders and uploads (zip_limits reads their variables).
DEFAULT_MAX_DATA_BYTES = MAX_ZIP_BYTES

IMBALANCE_RATIO = 3.0
SMALL_CLASS_IMAGES = 10  # below this a class is learnt poorly, whatever the model
SMALL_VAL_IMAGES = 10  # below this validation accuracy moves in steps of 10% or more
EXAMPLES_PER_CLASS = 4


class DataError(ValueError):
    """Data that cannot be trained on; the message says what is wrong and what to do, fit to show as is."""


@dataclass(frozen=True)
class Sample:
    path: Path  # an image file on disk (zips are extracted to work_dir first)
    label: int  # index into classes


@dataclass(frozen=True)
class Skipped:
    name: str  # path relative to the data root, as the user knows it
    reason: str


@dataclass(frozen=True)
class DataReport:
    classes: tuple[str, ...]
    train_counts: tuple[int, ...]  # per class, in classes order
    val_counts: tuple[int, ...]
    skipped: tuple[Skipped, ...]
    warnings: tuple[str, ...]
    split: str
    examples: tuple[tuple[Path, ...], ...]  # up to EXAMPLES_PER_CLASS image paths per class, for thumbnails


@dataclass(frozen=True)
class PreparedData:
    root: Path  # the folder the samples live in (the extraction folder for zips and uploads)
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    report: DataReport

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.classes))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}


@dataclass(frozen=True)
class _Candidate:
    """An image-named file found in the source: its name as the user knows it and where it is on disk."""

    name: str
    path: Path


# --- the two entry points -----------------------------------------------------------------------------------


def prepare_data(
    source: DataSource,
    work_dir: PathLike | None = None,
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> PreparedData:
    """Find, check and split the images of `source`; raise DataError when training could not start.

    `source`: a folder (one sub-folder per class, or train/ and val/ each holding class folders), a .zip of
    such a folder, or a list of files (plain paths take their class from the parent folder's name;
    (relative name, path) pairs from the relative name, e.g. ("photos/train/ants/1.jpg", "/tmp/x/1.jpg")).
    Zips and lists are unpacked or linked into a new folder under `work_dir` (a temp folder when None),
    which the caller may delete once training is over.
    """
    _check_val_fraction(val_fraction)
    limits = _limits(max_files, max_bytes)
    source_root, skipped, made_here = _materialise(source, work_dir, limits)
    try:
        return _prepare_folder(source_root, skipped, val_fraction, seed, limits)
    except BaseException:
        if made_here:  # an unpacked zip or linked upload that cannot be trained on is of no further use
            shutil.rmtree(source_root, ignore_errors=True)
        raise


def _prepare_folder(
    source_root: Path, skipped: list[Skipped], val_fraction: float, seed: int, limits: ZipLimits
) -> PreparedData:
    data_root = _find_data_root(source_root)
    candidates, walk_skipped = _walk_images(source_root, data_root, limits)
    skipped += walk_skipped
    if not candidates:
        raise DataError(_no_images_message(skipped))
    usable, damaged = _verify_images(candidates)
    skipped += damaged
    layout = _read_layout(data_root, usable)
    skipped += layout.skipped
    train_files, val_files, split = _split(layout, val_fraction, seed)
    classes = tuple(sorted(set(train_files) | set(val_files)))
    _check_classes(classes, train_files, val_files, layout, skipped)
    train, val = _samples(classes, train_files), _samples(classes, val_files)
    report = DataReport(
        classes=classes,
        train_counts=tuple(len(train_files.get(name, ())) for name in classes),
        val_counts=tuple(len(val_files.get(name, ())) for name in classes),
        skipped=tuple(_unique_by_name(skipped)),
        warnings=(),
        split=split,
        examples=_examples(classes, train, val),
    )
    report = _with_warnings(report, layout)
    return PreparedData(root=data_root, classes=classes, train=train, val=val, report=report)


def check_data(
    source: DataSource,
    work_dir: PathLike | None = None,
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> DataReport:
    """What prepare_data would train on, as a report for the user to look over first."""
    return prepare_data(
        source, work_dir, val_fraction=val_fraction, seed=seed, max_files=max_files, max_bytes=max_bytes
    ).report


# --- settings -----------------------------------------------------------------------------------------------


def _check_val_fraction(val_fraction: float) -> None:
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction <= 0.5):
        raise DataError(
            f"The validation fraction must be above 0 and at most 0.5 (got {val_fraction!r}); "
            "0.15 to 0.2 suits most data sets."
        )


def _limits(max_files: int | None, max_bytes: int | None) -> ZipLimits:
    try:
        return zip_limits(max_files, max_bytes)
    except ValueError as error:  # a variable that is not a whole number
        raise DataError(str(error)) from None


# --- getting the source onto disk as one folder -------------------------------------------------------------


def _materialise(source: DataSource, work_dir: PathLike | None, limits: ZipLimits) -> tuple[Path, list[Skipped], bool]:
    """The folder that holds the source's files, what was left out getting them there, and whether the
    folder was made here (and so may be removed again)."""
    if isinstance(source, (list, tuple)):
        items = list(source)
        if len(items) == 1 and _is_zip_path(items[0]):
            return *_filled_folder(_extract_zip, Path(items[0]), work_dir, limits), True
        return *_filled_folder(_link_files, items, work_dir, limits), True
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"Cannot read training data from a {type(source).__name__}: give a folder, a .zip or a list of files."
        )
    path = Path(source).expanduser().absolute()  # samples must not depend on the working directory later
    if path.is_dir():
        return path, [], False
    if not path.exists():
        raise DataError(f"{path} does not exist: give a folder with one sub-folder per class, or a .zip of one.")
    if zipfile.is_zipfile(path):
        return *_filled_folder(_extract_zip, path, work_dir, limits), True
    if path.suffix.lower() == ".zip":
        raise DataError(f"{path.name} is not a readable zip file (damaged or incomplete?): zip the folder again.")
    raise DataError(
        f"{path.name} is a single file: give a folder with one sub-folder of images per class, or a .zip of one."
    )


def _filled_folder(
    fill: Callable[[Any, Path, ZipLimits], tuple[Path, list[Skipped]]],
    source: Any,
    work_dir: PathLike | None,
    limits: ZipLimits,
) -> tuple[Path, list[Skipped]]:
    """A new folder under work_dir filled by `fill` from source; removed again whatever stops the filling (a
    refused zip, a damaged one, a full disk), so a source that fails leaves nothing behind."""
    target = _new_folder(work_dir)
    try:
        return fill(source, target, limits)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _is_zip_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() == ".zip"


def _new_folder(work_dir: PathLike | None) -> Path:
    # A fresh folder each time, so two preparations into one work_dir never mix their files.
    if work_dir is None:
        return Path(tempfile.mkdtemp(prefix="vit-studio-data-"))
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="data-", dir=work_dir))


def _extract_zip(zip_path: Path, target: Path, limits: ZipLimits) -> tuple[Path, list[Skipped]]:
    """Unpack the image entries of a zip into target through core.zips's reader, which checks names and sizes."""
    return target, unpack_zip(zip_path, target, limits, _unpack_entries)


# Writes the entries it keeps under the target folder and returns what it left out: each data set's own choice of
# what to keep (class folders keep images; a captioned set keeps its caption table too).
UnpackEntries = Callable[[ZipReader, Sequence[zipfile.ZipInfo], Path], list[Skipped]]


def unpack_zip(zip_path: Path, target: Path, limits: ZipLimits, unpack_entries: UnpackEntries) -> list[Skipped]:
    """Open a zip through core.zips's reader and let `unpack_entries` write it under target; a zip that cannot be
    read, or that the reader refuses (an unsafe name, too many files or bytes), is a DataError."""
    with ExitStack() as stack:
        try:
            archive = stack.enter_context(open_zip(zip_path))
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(f"{zip_path.name} is not a readable zip file ({error}): zip the folder again.") from None
        reader = ZipReader(archive, zip_path.name, limits)
        try:
            return unpack_entries(reader, reader.entries(), target)
        except ZipRefusedError as error:  # an unsafe name, or too many files or bytes: nothing of it is kept
            raise DataError(str(error)) from None


def _unpack_entries(reader: ZipReader, entries: Sequence[zipfile.ZipInfo], target: Path) -> list[Skipped]:
    """Write each image entry under target by its name; what cannot be written becomes a Skipped row."""
    skipped: list[Skipped] = []
    for info in entries:
        name = info.filename.replace("\\", "/")  # PowerShell's Compress-Archive writes backslashes
        reason = _name_skip_reason(name) or ("symlink" if _is_symlink_entry(info) else None)
        if reason:
            skipped.append(_skipped_for(name, reason))
            continue
        destination = target / name
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as out:
                for chunk in reader.chunks(info, label="the file"):
                    out.write(chunk)
        except ZipEntryTooLargeError as error:
            destination.unlink(missing_ok=True)
            skipped.append(Skipped(name, f"too large: {error}"))
        except UnicodeDecodeError:
            destination.unlink(missing_ok=True)
            skipped.append(Skipped(name, "damaged zip entry: its name in the zip is marked UTF-8 but is not"))
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            destination.unlink(missing_ok=True)
            skipped.append(Skipped(name, f"damaged zip entry: {error}"))
        except ZipRefusedError:
            raise  # past the zip's total: the whole zip is refused
        except (ImageError, RuntimeError, NotImplementedError) as error:
            destination.unlink(missing_ok=True)  # encrypted, bzip2, or a compression method zipfile cannot read
            skipped.append(Skipped(name, f"cannot be unpacked: {error}"))
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DataError(
                    f"The disk is full unpacking {reader.label}: free some space, or use fewer images."
                ) from None
            skipped.append(Skipped(name, f"cannot be unpacked: {error.strerror or error}"))
    return skipped


def _is_symlink_entry(info: zipfile.ZipInfo) -> bool:
    # Unix zips keep st_mode in the high 16 bits; a link's target would point anywhere on this machine.
    return stat.S_ISLNK(info.external_attr >> 16)


def _link_files(items: list, target: Path, limits: ZipLimits) -> tuple[Path, list[Skipped]]:
    """Lay uploaded files out as the folder tree they came from, so a list reads like a folder."""
    if not items:
        raise DataError(
            "No files were given: upload a folder with one sub-folder of images per class, or a .zip of it."
        )
    if len(items) > limits.max_files:
        raise DataError(too_many_files_message("The upload", len(items), limits))
    named = [_relative_name(item) for item in items]
    unsafe = next((name for name, _ in named if is_unsafe_zip_name(name)), None)
    if unsafe is not None:
        raise DataError(f"The file name '{unsafe}' points outside its folder (a drive letter or '..'): rename it.")
    skipped: list[Skipped] = []
    seen: set[str] = set()
    copied_bytes = 0
    for name, path in named:
        reason = _name_skip_reason(name)
        if reason:
            skipped.append(_skipped_for(name, reason))
            continue
        if name in seen:
            skipped.append(Skipped(name, "duplicate name (an earlier file has the same class and name)"))
            continue
        if not path.is_file():
            skipped.append(Skipped(name, "missing file"))
            continue
        seen.add(name)
        copied_bytes += path.stat().st_size
        if copied_bytes > limits.max_bytes:
            raise DataError(too_many_bytes_message("The upload", copied_bytes, limits))
        _link_or_copy(path, target / name)
    return target, skipped


def _relative_name(item: Any) -> tuple[str, Path]:
    if isinstance(item, (tuple, list)) and len(item) == 2:  # a list too: pairs may arrive through JSON
        name, path = item
        return unicodedata.normalize("NFC", str(name).replace("\\", "/").lstrip("/")), Path(path)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        return f"{path.parent.name}/{path.name}", path
    raise DataError(f"Cannot read a {type(item).__name__} as a file: give paths or (relative name, path) pairs.")


def _link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)  # free and instant when both sides are on one file system
    except OSError:
        shutil.copyfile(source, destination)


# --- finding the images -------------------------------------------------------------------------------------


def _name_skip_reason(name: str) -> str | None:
    """Why a file is left out by its name alone, or None for an image worth opening."""
    if is_hidden(name):
        return "hidden file"
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image"
    return None


def _skipped_for(name: str, reason: str) -> Skipped:
    # A hidden folder (__MACOSX holds a twin of every file) is one row, not one row per file inside it.
    if reason == "hidden file":
        parts = name.split("/")
        first_hidden = next(index for index, part in enumerate(parts) if part.startswith(".") or part == "__MACOSX")
        if first_hidden < len(parts) - 1:
            return Skipped("/".join(parts[: first_hidden + 1]) + "/", "hidden folder")
    return Skipped(name, reason)


def _unique_by_name(skipped: Iterable[Skipped]) -> list[Skipped]:
    return list({item.name: item for item in skipped}.values())


def _find_data_root(folder: Path) -> Path:
    """Step into single wrapper folders (hymenoptera.zip holds hymenoptera/train/...) down to the data."""
    while True:
        visible = _visible_children(folder)
        folders = [child for child in visible if child.is_dir() and not child.is_symlink()]
        has_images = any(child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES for child in visible)
        if (
            len(folders) != 1
            or has_images
            or folders[0].name.lower() in (TRAIN_FOLDER, *VAL_FOLDERS)  # a lone split folder is data, not a wrapper
            or not any(child.is_dir() for child in _visible_children(folders[0]))
        ):
            return folder
        folder = folders[0]


def _visible_children(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if not is_hidden(child.name))


def _walk_images(source_root: Path, data_root: Path, limits: ZipLimits) -> tuple[list[_Candidate], list[Skipped]]:
    """Every image-named file under data_root, named relative to source_root; the rest with a reason."""
    candidates: list[_Candidate] = []
    skipped: list[Skipped] = []
    seen_files = 0
    for folder, subfolders, files in os.walk(data_root):
        folder_path = Path(folder)
        kept = []
        for subfolder in sorted(subfolders):
            name = _name_in(source_root, folder_path / subfolder)
            if is_hidden(subfolder):
                skipped.append(Skipped(name + "/", "hidden folder"))
            elif (folder_path / subfolder).is_symlink():
                skipped.append(Skipped(name + "/", "symlinked folder (not followed)"))
            else:
                kept.append(subfolder)
        subfolders[:] = kept  # os.walk descends only into what is left here
        for file_name in sorted(files):
            seen_files += 1
            if seen_files > limits.max_files:
                raise DataError(
                    too_many_files_message(source_root.name or str(source_root), seen_files, limits, at_least=True)
                )
            path = folder_path / file_name
            name = _name_in(source_root, path)
            reason = _name_skip_reason(name)
            if reason:
                skipped.append(Skipped(name, reason))
            elif not path.is_file():
                skipped.append(Skipped(name, "symlink to nothing"))
            else:
                candidates.append(_Candidate(name=name, path=path))
    return candidates, skipped


def _name_in(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _verify_images(candidates: Sequence[_Candidate]) -> tuple[list[_Candidate], list[Skipped]]:
    """Open and decode every image (in threads: PIL decodes without the GIL), keeping those that work."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        problems = list(pool.map(_image_problem, candidates))
    usable = [candidate for candidate, problem in zip(candidates, problems) if problem is None]
    skipped = [Skipped(candidate.name, problem) for candidate, problem in zip(candidates, problems) if problem]
    return usable, skipped


def _image_problem(candidate: _Candidate) -> str | None:
    try:
        verify_image_file(candidate.path, name="the file")
    except ImageTooLargeError as error:
        return f"too large: {error}"
    except ImageError as error:
        return f"damaged image: {error}"
    return None


# --- reading the layout: classes, and a given split or not --------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    train: dict[str, list[_Candidate]]  # class -> files; everything when no split is given
    val: dict[str, list[_Candidate]] | None  # None: make a split
    train_folder: str | None  # the name as found ("Train", "train"), when the source has one
    val_folder: str | None
    left_out: dict[str, int]  # top-level folders beside train/ and val/ -> images in them
    skipped: tuple[Skipped, ...]


def _read_layout(data_root: Path, images: Sequence[_Candidate]) -> _Layout:
    top_folders = {child.name.lower(): child.name for child in _visible_children(data_root) if child.is_dir()}
    train_folder = top_folders.get(TRAIN_FOLDER)
    val_folder = next((top_folders[name] for name in VAL_FOLDERS if name in top_folders), None)
    if val_folder and not train_folder:
        raise DataError(
            f"Found a {val_folder}/ folder but no train/ folder beside it: put the training images in train/ "
            "(one sub-folder per class), or give one folder per class and let the split be made."
        )
    train: dict[str, list[_Candidate]] = {}
    val: dict[str, list[_Candidate]] = {}
    left_out: dict[str, int] = {}
    skipped: list[Skipped] = []
    for image in images:
        parts = image.path.relative_to(data_root).parts
        if train_folder is None:
            if len(parts) < 2:
                skipped.append(Skipped(image.name, NOT_IN_A_CLASS_FOLDER))
            else:
                train.setdefault(_class_name(parts[0]), []).append(image)
            continue
        if parts[0] not in (train_folder, val_folder):
            if len(parts) < 2:
                skipped.append(Skipped(image.name, NOT_IN_A_CLASS_FOLDER))
            else:
                left_out[parts[0]] = left_out.get(parts[0], 0) + 1
            continue
        if len(parts) < 3:
            skipped.append(Skipped(image.name, NOT_IN_A_CLASS_FOLDER))
            continue
        side = train if parts[0] == train_folder else val
        side.setdefault(_class_name(parts[1]), []).append(image)
    return _Layout(
        train=train,
        val=val if val_folder else None,
        train_folder=train_folder,
        val_folder=val_folder,
        left_out=left_out,
        skipped=tuple(skipped),
    )


def _class_name(folder_name: str) -> str:
    # macOS writes decomposed accents (o + combining diaeresis); show and sort the composed form.
    return unicodedata.normalize("NFC", folder_name)


def _split(
    layout: _Layout, val_fraction: float, seed: int
) -> tuple[dict[str, list[_Candidate]], dict[str, list[_Candidate]], str]:
    if layout.val is not None:
        train = {name: sorted(files, key=_by_name) for name, files in layout.train.items()}
        val = {name: sorted(files, key=_by_name) for name, files in layout.val.items()}
        return train, val, f"{layout.train_folder}/ and {layout.val_folder}/ folders as given"
    train, val = {}, {}
    for name, files in layout.train.items():
        train[name], val[name] = _stratify(name, files, val_fraction, seed)
    percent = round(val_fraction * 100)
    of_train = f" of {layout.train_folder}/" if layout.train_folder else ""
    return train, val, f"stratified {100 - percent}/{percent} split{of_train} (seed {seed})"


def _stratify(
    class_name: str, files: Sequence[_Candidate], val_fraction: float, seed: int
) -> tuple[list[_Candidate], list[_Candidate]]:
    """One class's files, shuffled by (seed, class) so adding a class never reshuffles another; at least one
    on each side when there are two or more."""
    ordered = sorted(files, key=_by_name)
    random.Random(f"{seed}/{class_name}").shuffle(ordered)
    if len(ordered) < 2:
        return ordered, []
    val_count = min(max(math.floor(len(ordered) * val_fraction + 0.5), 1), len(ordered) - 1)
    return ordered[val_count:], ordered[:val_count]


def _by_name(candidate: _Candidate) -> str:
    return candidate.name


# --- checks that stop training, and warnings that do not ---------------------------------------------------


NOT_IN_A_CLASS_FOLDER = "not in a class folder"
# The layout a classifier's data needs, shown when photos came without it.
CLASS_FOLDERS_LAYOUT = "my-photos.zip → cats/ (1.jpg, 2.jpg, ...), dogs/ (3.jpg, 4.jpg, ...)"


def _no_images_message(skipped: Sequence[Skipped]) -> str:
    loose = [item for item in skipped if item.reason == NOT_IN_A_CLASS_FOLDER]
    if loose:
        # Good photos without class folders: the class is the folder's name, so there is nothing to learn from.
        return (
            f"The {len(loose)} photo(s) (e.g. {loose[0].name}) are not in class folders, so their classes are "
            "unknown. Put the photos of each class in a folder named after the class, and give the folder of "
            f"those folders (or a .zip of it), like this: {CLASS_FOLDERS_LAYOUT}."
        )
    found = f" ({len(skipped)} other file(s) skipped, e.g. {skipped[0].name}: {skipped[0].reason})" if skipped else ""
    return (
        f"No images found{found}. Give a folder with one sub-folder of images per class "
        f"(e.g. cats/1.jpg, dogs/2.jpg), or a .zip of one; images are {', '.join(sorted(IMAGE_SUFFIXES))}."
    )


def _check_classes(
    classes: tuple[str, ...],
    train: dict[str, list[_Candidate]],
    val: dict[str, list[_Candidate]],
    layout: _Layout,
    skipped: Sequence[Skipped],
) -> None:
    if not classes:
        raise DataError(_no_images_message(skipped))
    unknown = sorted(set(val) - set(train))
    if unknown:
        raise DataError(
            f"{layout.val_folder}/ has classes that {layout.train_folder}/ does not: {', '.join(unknown)}. "
            f"Add training images for them to {layout.train_folder}/, or remove them from {layout.val_folder}/."
        )
    if len(classes) < 2:
        raise DataError(
            f"Only one class was found ('{classes[0]}'): a classifier needs at least two. "
            "Put each class's images in its own sub-folder (e.g. cats/, dogs/)."
        )
    too_small = [name for name in classes if len(train.get(name, ())) + len(val.get(name, ())) < 2]
    if too_small:
        counts = ", ".join(f"'{name}' ({len(train.get(name, ())) + len(val.get(name, ()))})" for name in too_small)
        raise DataError(
            f"Each class needs at least 2 images, one to learn from and one to check on; too few in {counts}. "
            "Add images to those classes or remove their folders."
        )
    no_train = [name for name in classes if not train.get(name)]
    if no_train:
        raise DataError(
            f"No training images for {', '.join(repr(name) for name in no_train)} in {layout.train_folder}/: "
            "add some there."
        )


def _with_warnings(report: DataReport, layout: _Layout) -> DataReport:
    totals = [train + val for train, val in zip(report.train_counts, report.val_counts)]
    warnings = [
        *_imbalance_warning(report.classes, totals),
        *_small_class_warning(report.classes, totals),
        *_small_val_warning(report.classes, report.val_counts),
        *_left_out_warning(layout),
    ]
    return replace(report, warnings=tuple(warnings))


def _imbalance_warning(classes: Sequence[str], totals: Sequence[int]) -> list[str]:
    largest, smallest = max(totals), min(totals)
    if largest <= IMBALANCE_RATIO * smallest:
        return []
    big, small = classes[totals.index(largest)], classes[totals.index(smallest)]
    return [
        f"Classes are imbalanced: '{big}' has {largest} images, '{small}' only {smallest} "
        f"({largest / smallest:.1f}x). The model will lean towards '{big}'; add images to the small classes, "
        "and judge by per-class accuracy, not the overall figure."
    ]


def _small_class_warning(classes: Sequence[str], totals: Sequence[int]) -> list[str]:
    small = [f"'{name}' ({total})" for name, total in zip(classes, totals) if total < SMALL_CLASS_IMAGES]
    if not small:
        return []
    return [
        f"Very small classes: {', '.join(small)} images. Fine-tuning works from a few dozen images per class; "
        f"below {SMALL_CLASS_IMAGES} expect guesswork."
    ]


def _small_val_warning(classes: Sequence[str], val_counts: Sequence[int]) -> list[str]:
    warnings = []
    total = sum(val_counts)
    if total < SMALL_VAL_IMAGES:
        warnings.append(
            f"The validation split holds only {total} images, so its accuracy moves in steps of "
            f"{100 / max(total, 1):.0f}%; add images or raise the validation fraction for a steadier figure."
        )
    missing = [name for name, count in zip(classes, val_counts) if count == 0]
    if missing:
        warnings.append(
            f"No validation images for {', '.join(repr(name) for name in missing)}: their accuracy cannot be "
            "measured. Add some to the validation folder."
        )
    return warnings


def _left_out_warning(layout: _Layout) -> list[str]:
    if not layout.left_out:
        return []
    folders = ", ".join(f"{folder}/ ({count} images)" for folder, count in sorted(layout.left_out.items()))
    return [
        f"Left out {folders}: only {layout.train_folder}/ and "
        f"{layout.val_folder or 'a validation'}/ folder{'s are' if layout.val_folder else ' is'} used."
    ]


# --- samples ------------------------------------------------------------------------------------------------


def _samples(classes: tuple[str, ...], files: dict[str, list[_Candidate]]) -> tuple[Sample, ...]:
    return tuple(
        Sample(path=candidate.path, label=label)
        for label, name in enumerate(classes)
        for candidate in files.get(name, ())
    )


def _examples(classes: tuple[str, ...], train: Sequence[Sample], val: Sequence[Sample]) -> tuple[tuple[Path, ...], ...]:
    by_class: list[list[Path]] = [[] for _ in classes]
    for sample in (*train, *val):
        if len(by_class[sample.label]) < EXAMPLES_PER_CLASS:
            by_class[sample.label].append(sample.path)
    return tuple(tuple(paths) for paths in by_class)


# --- what the trainer iterates ------------------------------------------------------------------------------


class ImageClassificationData(Dataset):
    """Samples as model inputs: {"pixel_values": CHW float tensor, "labels": int}, read as RGB on demand."""

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None):
        self.samples = tuple(samples)
        self.transform = transform or _to_tensor()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image = load_image(sample.path)
        return {"pixel_values": self.transform(image), "labels": sample.label}


def image_transforms(
    image_processor: Any, image_size: int | None = None, augment: bool = True
) -> tuple[Callable, Callable]:
    """(train, eval) torchvision v2 transforms from PIL RGB to a normalised tensor, sized for the model.

    As transformers' examples/pytorch/image-classification: train = RandomResizedCrop + RandomHorizontalFlip
    (Resize + CenterCrop when augment is False, for data where crops or flips change the label),
    eval = Resize + CenterCrop. The size is image_size, else the processor's crop_size when it crops
    (DeiT, BEiT: the model sees the crop), else its size (height/width or shortest_edge).
    """
    from torchvision.transforms import v2

    crop, resize = _input_size(image_processor, image_size)
    to_model = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *_normalize(image_processor)]
    eval_transform = v2.Compose([v2.Resize(resize), v2.CenterCrop(crop), *to_model])
    if not augment:
        return eval_transform, eval_transform
    train_transform = v2.Compose([v2.RandomResizedCrop(crop), v2.RandomHorizontalFlip(), *to_model])
    return train_transform, eval_transform


def _input_size(image_processor: Any, image_size: int | None) -> tuple[tuple[int, int], int | tuple[int, int]]:
    """(crop (height, width), resize target) for Resize then CenterCrop."""
    if image_size is not None:
        return (image_size, image_size), image_size
    size = dict(getattr(image_processor, "size", None) or {})
    crop_size = dict(getattr(image_processor, "crop_size", None) or {})
    if getattr(image_processor, "do_center_crop", False) and "height" in crop_size:
        crop = (crop_size["height"], crop_size["width"])
        if "shortest_edge" in size:
            return crop, size["shortest_edge"]
        if "height" in size and "width" in size:
            return crop, (size["height"], size["width"])
        return crop, crop
    if "shortest_edge" in size:
        return (size["shortest_edge"], size["shortest_edge"]), size["shortest_edge"]
    if "height" in size and "width" in size:
        return (size["height"], size["width"]), (size["height"], size["width"])
    raise ValueError(
        f"Cannot tell the model's input size from {type(image_processor).__name__} (size={size}): pass image_size."
    )


def _normalize(image_processor: Any) -> list:
    from torchvision.transforms import v2

    mean, std = getattr(image_processor, "image_mean", None), getattr(image_processor, "image_std", None)
    if mean is None or std is None or getattr(image_processor, "do_normalize", True) is False:
        return []
    return [v2.Normalize(mean=list(mean), std=list(std))]


def _to_tensor() -> Callable:
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
