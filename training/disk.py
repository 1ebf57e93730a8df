"""Keeps a Space's runs folder within its disk budget: old visitors' runs go, and finished runs shed what only
training needed."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.settings import current_settings

from .access import run_owner_key
from .checkpoints import CHECKPOINT, read_split
from .events import read_events
from .runs import EVENTS_LOG, folder_bytes, format_size, run_status, run_task, runs_root

CHECKPOINT_FOLDERS = (CHECKPOINT, f"{CHECKPOINT}.tmp", f"{CHECKPOINT}.old")  # the one in use, and a save's leftovers


@dataclass(frozen=True)
class DiskBudget:
    """How much of the disk visitors' runs may hold, and for how long."""

    keep_runs_s: float  # a visitor's run unchanged for this long is removed (resume included)
    quota_bytes: int  # the runs folder's size; past it no new run starts


@dataclass(frozen=True)
class Tidied:
    """What one tidy-up did."""

    removed: tuple[str, ...]  # runs removed for their age
    trimmed: tuple[str, ...]  # finished runs that shed their checkpoint and training images
    freed_bytes: int


def space_budget() -> DiskBudget:
    """A Space runs for weeks on a disk of tens of GB shared by every visitor. Runs go after the same 6 hours as
    visitors' uploads (ui.serving.SPACE_LIMITS); 10 GB holds a dozen ViT-B runs with their data. Both are settings
    (VIT_STUDIO_KEEP_RUNS_HOURS and VIT_STUDIO_RUNS_QUOTA_GB)."""
    launch = current_settings()
    return DiskBudget(keep_runs_s=launch.keep_runs_hours * 3600, quota_bytes=int(launch.runs_quota_gb * 1024**3))


def disk_budget() -> DiskBudget | None:
    """The budget on a Hugging Face Space; None on one's own machine, where the user's runs stay until they
    remove them."""
    return space_budget() if current_settings().on_space else None


def tidy_runs(
    budget: DiskBudget, root: Path | None = None, *, running: Sequence[Path] = (), now: float | None = None
) -> Tidied:
    """Remove visitors' runs older than the budget keeps them, and trim their finished runs. Runs nobody
    claimed (the Space owner's example runs) and the runs named in `running` are left alone. training.jobs calls
    this under its lock, when nothing trains, so no run can start or resume meanwhile."""
    root = Path(root or runs_root())
    if not root.is_dir():
        return Tidied((), (), 0)
    now = time.time() if now is None else now
    active = {Path(path).resolve() for path in running}
    removed, trimmed, freed = [], [], 0
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.resolve() in active or run_owner_key(folder) is None:
            continue
        if now - _last_change(folder) > budget.keep_runs_s:
            freed += folder_bytes(folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        elif _finished(folder):
            saved = trim_finished_run(folder)
            if saved:
                freed += saved
                trimmed.append(folder.name)
    return Tidied(tuple(removed), tuple(trimmed), freed)


def room_for_new_run(budget: DiskBudget, root: Path | None = None) -> int:
    """Bytes a new run's data may take before the runs folder passes its quota; a ValueError when it already has."""
    used = folder_bytes(Path(root or runs_root()))
    if used >= budget.quota_bytes:
        hours = budget.keep_runs_s / 3600
        raise ValueError(
            f"This Space's runs folder is full ({format_size(used)} of {format_size(budget.quota_bytes)}):"
            f" no new run can start until older runs are removed ({hours:g} hours after they last "
            "changed). Try again later, or run ViT Studio on your own machine."
        )
    return budget.quota_bytes - used


def trim_finished_run(folder: Path) -> int:
    """Remove what only more training would need from a finished run: its checkpoint and its training images. The
    model, the figures, the log and the validation images (which the confusion-matrix views show) stay.
    Returns the bytes freed."""
    freed = 0
    for name in CHECKPOINT_FOLDERS:
        if (folder / name).is_dir():
            freed += folder_bytes(folder / name)
            shutil.rmtree(folder / name, ignore_errors=True)
    data = folder / "data"
    validation_images = _validation_images(folder)
    if data.is_dir() and validation_images is not None:
        for path in [path for path in data.rglob("*") if path.is_file()]:
            if path.resolve() not in validation_images:
                freed += path.stat().st_size
                path.unlink(missing_ok=True)
    return freed


def _validation_images(folder: Path) -> set[Path] | None:
    """The resolved paths split.json lists for validation; None when it cannot be read (then nothing is removed)."""
    try:
        if run_task(folder, ()) == "caption":
            from .captioning import read_caption_split  # the captioner trainer loads torch and transformers

            return {pair.image.resolve() for pair in read_caption_split(folder).val}
        return {sample.path.resolve() for sample in read_split(folder).val}
    except ValueError:  # missing or damaged
        return None


def _finished(folder: Path) -> bool:
    events_log = folder / EVENTS_LOG
    return events_log.is_file() and run_status(read_events(events_log)) == "finished"


def _last_change(folder: Path) -> float:
    events_log = folder / EVENTS_LOG
    try:
        return (events_log if events_log.is_file() else folder).stat().st_mtime
    except OSError:
        return 0.0
