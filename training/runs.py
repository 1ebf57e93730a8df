"""Training runs on disk: run folders, their event logs read back as curves, figures, zips and the Hub."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .events import Evaluated, Event, Finished, Started, Step, Stopped, read_events

EVENTS_LOG = "events.jsonl"
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"


def runs_root() -> Path:
    """Where runs live: runs/ beside the app, or VIT_STUDIO_RUNS."""
    return Path(os.environ.get("VIT_STUDIO_RUNS", "runs"))


@dataclass(frozen=True)
class RunSummary:
    """One run as a list of runs shows it."""

    name: str
    path: Path
    status: str  # "finished", "stopped" (resumable), "interrupted" (the app or machine stopped mid-run), "running"
    classes: tuple[str, ...]
    eval_accuracy: float | None
    steps_done: int
    total_steps: int
    updated: float  # the log's modification time
    size_bytes: int = 0  # everything in the folder: model, checkpoint, unpacked data

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "interrupted") and (self.path / "checkpoint").is_dir()


@dataclass(frozen=True)
class Curves:
    """What a loss/accuracy plot draws, from a run's events."""

    train_steps: tuple[int, ...]
    train_loss: tuple[float, ...]
    eval_steps: tuple[int, ...]
    eval_loss: tuple[float, ...]
    eval_accuracy: tuple[float, ...]


def new_run_dir(name: str | None = None, root: Path | None = None) -> Path:
    """A fresh folder under the runs root: the given name made safe for a path, or a timestamp; never an
    existing run (a number is appended)."""
    root = root or runs_root()
    stem = safe_run_name(name) if name and name.strip() else time.strftime("run-%Y%m%d-%H%M%S")
    candidate, number = root / stem, 2
    while candidate.exists():
        candidate, number = root / f"{stem}-{number}", number + 1
    candidate.mkdir(parents=True)
    return candidate


def safe_run_name(name: str) -> str:
    """Letters (any script), digits, dot, dash and underscore; everything else becomes a dash."""
    cleaned = re.sub(r"[^\w.-]+", "-", name.strip(), flags=re.UNICODE).strip("-.")
    return cleaned[:80] or "run"


def list_runs(root: Path | None = None, running: Sequence[Path] = ()) -> list[RunSummary]:
    """Every run under the root with an event log, newest first. `running` names runs in progress now."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    active = {Path(path).resolve() for path in running}
    summaries = [summarize(folder, folder.resolve() in active)
                 for folder in root.iterdir() if (folder / EVENTS_LOG).is_file()]
    return sorted(summaries, key=lambda summary: summary.updated, reverse=True)


def summarize(folder: Path, running: bool = False) -> RunSummary:
    events = read_events(folder / EVENTS_LOG)
    started = next((event for event in reversed(events) if isinstance(event, Started)), None)
    evaluations = [event for event in events if isinstance(event, Evaluated)]
    steps = [event.step for event in events if isinstance(event, Step)]
    return RunSummary(
        name=folder.name,
        path=folder,
        status="running" if running else run_status(events),
        classes=started.classes if started else (),
        eval_accuracy=evaluations[-1].eval_accuracy if evaluations else None,
        steps_done=max(steps, default=started.start_step if started else 0),
        total_steps=started.total_steps if started else 0,
        updated=(folder / EVENTS_LOG).stat().st_mtime,
        size_bytes=folder_bytes(folder),
    )


def folder_bytes(folder: Path) -> int:
    """The size of the files under a folder (links not followed); 0 for one that is gone."""
    total = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += folder_bytes(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:  # removed while we looked
            continue
    return total


def format_size(size: int) -> str:
    """'830 KB', '54 MB', '1.2 GB'."""
    if size >= 1024**3:
        return f"{size / 1024**3:.1f} GB"
    if size >= 1024**2:
        return f"{size / 1024**2:.0f} MB"
    return f"{max(size, 0) / 1024:.0f} KB"


def run_status(events: Sequence[Event]) -> str:
    last = events[-1] if events else None
    if isinstance(last, Finished):
        return "finished"
    if isinstance(last, Stopped):
        return "stopped"
    return "interrupted"


def curves(events: Sequence[Event]) -> Curves:
    """Train loss per step and eval loss/accuracy per epoch; a resumed run's repeated steps keep the latest."""
    train = {event.step: event.loss for event in events if isinstance(event, Step)}
    evaluated = {event.step: event for event in events if isinstance(event, Evaluated)}
    eval_steps = sorted(evaluated)
    return Curves(
        train_steps=tuple(sorted(train)),
        train_loss=tuple(train[step] for step in sorted(train)),
        eval_steps=tuple(eval_steps),
        eval_loss=tuple(evaluated[step].eval_loss for step in eval_steps),
        eval_accuracy=tuple(evaluated[step].eval_accuracy for step in eval_steps),
    )


def last_evaluation(events: Sequence[Event]) -> Evaluated | None:
    return next((event for event in reversed(events) if isinstance(event, Evaluated)), None)


def last_started(events: Sequence[Event]) -> Started | None:
    return next((event for event in reversed(events) if isinstance(event, Started)), None)


def describe_progress(events: Sequence[Event], running: bool, resumable: bool = True) -> str:
    """One line on where a run is: steps, epoch, speed and time left, or how it ended; then the notes of its
    (last) start, such as a resume whose random state could not be restored."""
    started = last_started(events)
    if started is None:
        return "Preparing the data and loading the model ..." if running else "Not started."
    notes = "".join(f" ⚠ {note}" for note in started.notes)
    last_step = next((event for event in reversed(events) if isinstance(event, Step)), None)
    done = last_step.step if last_step else started.start_step
    line = f"step {done}/{started.total_steps}"
    if last_step:
        line += (f" · epoch {last_step.epoch}/{started.epochs} · loss {last_step.loss:.3f} · "
                 f"{last_step.images_per_s:.1f} images/s")
    end = events[-1]
    if isinstance(end, Finished):
        accuracy = end.metrics.get("eval_accuracy")
        return f"Finished: {line}" + (f" · validation accuracy {accuracy:.1%}" if accuracy is not None else "") + notes
    if isinstance(end, Stopped):
        return f"Stopped at {line}: the model so far is saved, and the run can be resumed.{notes}"
    if not running:
        return f"Interrupted at {line}." + (" Resume it from its last checkpoint." if resumable else
                                              " It saved no checkpoint, so start it again.") + notes
    if last_step:
        line += f" · about {format_duration(last_step.seconds_left)} left"
    return f"Training ({started.mode}, {started.device}, {started.precision}): {line}{notes}"


def format_duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def per_class_rows(evaluation: Evaluated, classes: Sequence[str]) -> list[list]:
    """[class, accuracy, correct, validation images] per class, for a results table."""
    return [[name, round(accuracy, 4), evaluation.confusion[index][index], sum(evaluation.confusion[index])]
            for index, (name, accuracy) in enumerate(zip(classes, evaluation.per_class))]


# ---- figures ------------------------------------------------------------------------------------------------


def curves_figure(run_curves: Curves):
    """Loss (train per step, eval per epoch) on the left axis, eval accuracy on the right."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.6), layout="constrained")
    loss_axis = figure.add_subplot()
    loss_axis.plot(run_curves.train_steps, run_curves.train_loss, color="tab:blue", alpha=0.8, label="train loss")
    loss_axis.plot(run_curves.eval_steps, run_curves.eval_loss, "o-", color="tab:orange", label="eval loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss")
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(run_curves.eval_steps, run_curves.eval_accuracy, "s--", color="tab:green",
                       label="eval accuracy")
    accuracy_axis.set_ylim(0, 1)
    accuracy_axis.set_ylabel("accuracy")
    handles = loss_axis.get_legend_handles_labels()[0] + accuracy_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles, [handle.get_label() for handle in handles], loc="center right", fontsize="small")
    return figure


def confusion_figure(evaluation: Evaluated, classes: Sequence[str]):
    """The confusion matrix with counts in the cells; rows are the true classes."""
    import numpy as np
    from matplotlib.figure import Figure

    matrix = np.asarray(evaluation.confusion)
    side = min(2.5 + 0.45 * len(classes), 14)
    figure = Figure(figsize=(side + 1, side), layout="constrained")
    axis = figure.add_subplot()
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, shrink=0.8)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"epoch {evaluation.epoch}: accuracy {evaluation.eval_accuracy:.1%}")
    if len(classes) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for row in range(matrix.shape[0]):
            for column in range(matrix.shape[1]):
                axis.text(column, row, int(matrix[row, column]), ha="center", va="center", fontsize="small",
                          color="white" if matrix[row, column] > threshold else "black")
    return figure


def write_figures(folder: Path) -> list[Path]:
    """curves.png and (after an evaluation) confusion.png in the run folder."""
    events = read_events(folder / EVENTS_LOG)
    written = []
    run_curves = curves(events)
    if run_curves.train_steps:
        curves_figure(run_curves).savefig(folder / CURVES_PNG, dpi=120)
        written.append(folder / CURVES_PNG)
    evaluation = last_evaluation(events)
    started = next((event for event in reversed(events) if isinstance(event, Started)), None)
    if evaluation is not None and started is not None:
        confusion_figure(evaluation, started.classes).savefig(folder / CONFUSION_PNG, dpi=120)
        written.append(folder / CONFUSION_PNG)
    return written


# ---- sharing ------------------------------------------------------------------------------------------------

# What a run zip and a Hub upload leave out: resume state and the extracted training data.
_NOT_SHARED = ("checkpoint", "checkpoint.tmp", "checkpoint.old", "data")


def zip_run(folder: Path, destination: Path | None = None) -> Path:
    """The run's model, processor, results, log and figures as one zip (no checkpoint, no data)."""
    destination = destination or Path(tempfile.mkdtemp(prefix="vit-studio-run-"))
    with tempfile.TemporaryDirectory() as staging:
        copy = Path(staging) / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(*_NOT_SHARED, "*.tmp"))
        return Path(shutil.make_archive(str(destination / folder.name), "zip", root_dir=staging,
                                        base_dir=folder.name))


# ---- what a front end shows of one run ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunView:
    """One run as a front end draws it, while it trains or afterwards."""

    progress: str  # describe_progress's line
    figure: object | None  # curves_figure (a matplotlib Figure) once a step is logged
    classes: tuple[str, ...]
    per_class: list[list]  # per_class_rows after the last evaluation
    confusion_png: Path | None  # the confusion matrix picture, once the run has ended and written it


def run_view(events: Sequence[Event], running: bool, folder: Path) -> RunView:
    """Progress, curves, per-class results and the confusion picture of a run from its events."""
    run_curves = curves(events)
    started, evaluation = last_started(events), last_evaluation(events)
    classes = tuple(started.classes) if started else ()
    confusion_png = Path(folder) / CONFUSION_PNG
    return RunView(
        progress=describe_progress(events, running, (Path(folder) / "checkpoint").is_dir()),
        figure=curves_figure(run_curves) if run_curves.train_steps else None,
        classes=classes,
        per_class=per_class_rows(evaluation, classes) if evaluation else [],
        # Written when the run ends; during a resumed run the old picture would describe an earlier model.
        confusion_png=confusion_png if not running and confusion_png.is_file() else None,
    )


def run_label(summary: RunSummary) -> str:
    """'name (status, step 12/40, val acc 85%, 54 MB)' for a list of runs."""
    accuracy = f", val acc {summary.eval_accuracy:.0%}" if summary.eval_accuracy is not None else ""
    return (f"{summary.name} ({summary.status}, step {summary.steps_done}/{summary.total_steps}{accuracy}, "
            f"{format_size(summary.size_bytes)})")


def saved_model_dir(run_path: str | Path | None) -> Path:
    """The run folder, checked to hold a saved model (what Use, Zip, Push and the confusion cells need)."""
    if not run_path:
        raise ValueError("Train a model or pick a run under Earlier runs first.")
    folder = Path(run_path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"The run '{folder.name}' has no saved model yet (it stopped before its first save).")
    return folder
