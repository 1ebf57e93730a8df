"""Images collected one at a time (from a webcam, a paste or an upload) into an ImageFolder: one folder per class."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.images import IMAGE_SUFFIXES, load_image

MAX_CLASS_NAME = 40
MIN_PER_CLASS = 2  # one to learn from and one to check on: training.data's own minimum
MAX_SAMPLE_SIDE = 256  # a webcam frame kept at this size: plenty for a 224-pixel model, small on disk
SAMPLE_SUFFIX = ".png"
# Letters of any script, digits, spaces, dashes and underscores: a name that is also a safe folder name.
_CLASS_NAME = re.compile(r"^[\w][\w \-]*$", flags=re.UNICODE)
_SAMPLE_NUMBER = re.compile(r"^(\d+)\.")


@dataclass(frozen=True)
class Collection:
    """What has been collected so far: the classes, in name order (the order training gives them), and how many
    images each holds."""

    root: Path
    classes: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def check_class_name(name: str | None) -> str:
    """The class name, trimmed, or a ValueError saying what a class name may hold."""
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ValueError("Type a class name first (for example 'thumbs up'), then add images to it.")
    if len(cleaned) > MAX_CLASS_NAME:
        raise ValueError(f"A class name can be at most {MAX_CLASS_NAME} characters; '{cleaned[:20]}...' is longer.")
    if not _CLASS_NAME.match(cleaned):
        raise ValueError(
            f"The class name '{cleaned}' can hold only letters, digits, spaces, '-' and '_' (it becomes a folder "
            "name), and must start with a letter or digit."
        )
    return cleaned


def next_sample_path(class_dir: Path) -> Path:
    """class_dir/0001.png, or the number after the highest already there (a removed image's number is not reused,
    so a name never points at two different images)."""
    numbers = [int(match.group(1)) for match in map(_SAMPLE_NUMBER.match, _names(class_dir)) if match]
    return class_dir / f"{max(numbers, default=0) + 1:04d}{SAMPLE_SUFFIX}"


def save_sample(root: str | Path, class_name: str | None, image: Any, *, max_side: int = MAX_SAMPLE_SIDE) -> Path:
    """One image (a path, PIL image, array or bytes, as core.load_image takes it) saved into root/<class>/ as an
    RGB PNG no larger than max_side a side; its path."""
    name = check_class_name(class_name)
    picture = load_image(image)
    picture.thumbnail((max_side, max_side))
    class_dir = Path(root) / name
    class_dir.mkdir(parents=True, exist_ok=True)
    path = next_sample_path(class_dir)
    picture.save(path)
    return path


def read_collection(root: str | Path) -> Collection:
    """The classes under root that hold at least one image, and their counts."""
    root = Path(root)
    folders = sorted(folder for folder in root.iterdir() if folder.is_dir()) if root.is_dir() else []
    counted = [(folder.name, len(class_samples(root, folder.name))) for folder in folders]
    counted = [(name, count) for name, count in counted if count]
    return Collection(root, tuple(name for name, _ in counted), tuple(count for _, count in counted))


def class_samples(root: str | Path, class_name: str) -> list[Path]:
    """A class's images, oldest first."""
    folder = Path(root) / check_class_name(class_name)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def remove_class(root: str | Path, class_name: str | None) -> None:
    """Remove a class and its images; a ValueError when there is no such class."""
    name = check_class_name(class_name)
    folder = Path(root) / name
    if not folder.is_dir():
        raise ValueError(f"There is no class '{name}' to remove: pick one of the classes listed.")
    shutil.rmtree(folder)


def check_ready(root: str | Path) -> Collection:
    """The collection, if it can be trained on: two classes or more, each with MIN_PER_CLASS images or more."""
    collected = read_collection(root)
    if len(collected.classes) < 2:
        have = f"only '{collected.classes[0]}'" if collected.classes else "none yet"
        raise ValueError(f"Collect images of at least two classes to train on ({have}).")
    short = [
        f"'{name}' has {count}" for name, count in zip(collected.classes, collected.counts) if count < MIN_PER_CLASS
    ]
    if short:
        raise ValueError(
            f"Each class needs at least {MIN_PER_CLASS} images, one to learn from and one to check on: "
            f"{', '.join(short)}. Add a few more (10 or more each learns better)."
        )
    return collected


def collection_batch_size(collected: Collection, preferred: int) -> int:
    """A batch size a run on this collection accepts: at most the training part of its split, which is at least
    half of each class (a class of 2 keeps 1 to check on), so never more than half the images."""
    return max(1, min(int(preferred), collected.total // 2))


def zip_collection(root: str | Path, destination: str | Path) -> Path:
    """The collection as destination/<name of root>.zip holding one folder per class, as training takes an upload:
    the run unpacks it into its own folder, so its validation images stay with the run whatever happens to the
    collection afterwards. Checked with check_ready first."""
    root = Path(root)
    check_ready(root)
    return Path(
        shutil.make_archive(str(Path(destination) / root.name), "zip", root_dir=root.parent, base_dir=root.name)
    )


def _names(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir()] if folder.is_dir() else []
