"""Training runs on disk: run folders, their event logs read back as curves, figures, zips and the Hub."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.settings import current_settings

from .events import CaptionEvaluated, Evaluated, Finished, RunEvent, Started, Step, Stopped, read_events

EVENTS_LOG = "events.jsonl"
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"


def runs_root() -> Path:
    """Where runs live: runs/ beside the app, or VIT_STUDIO_RUNS."""
    return current_settings().runs_dir


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
    task: str = "classify"  # "classify" or "caption": which model boxes the run belongs in
    eval_rougeL: float | None = None  # a captioner's last validation ROUGE-L, in percent

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
    eval_accuracy: tuple[float, ...]  # a classifier's; empty for a captioner
    # A captioner's ROUGE-1/2/L per evaluation, in percent; empty for a classifier.
    eval_rouge1: tuple[float, ...] = ()
    eval_rouge2: tuple[float, ...] = ()
    eval_rougeL: tuple[float, ...] = ()

    @property
    def is_caption(self) -> bool:
        return bool(self.eval_rougeL) and not self.eval_accuracy


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
    summaries = [
        summarize(folder, folder.resolve() in active) for folder in root.iterdir() if (folder / EVENTS_LOG).is_file()
    ]
    return sorted(summaries, key=lambda summary: summary.updated, reverse=True)


def summarize(folder: Path, running: bool = False) -> RunSummary:
    events = read_events(folder / EVENTS_LOG)
    started = next((event for event in reversed(events) if isinstance(event, Started)), None)
    evaluations = [event for event in events if isinstance(event, Evaluated)]
    caption_scores = [event.rougeL for event in events if isinstance(event, CaptionEvaluated)]
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
        task=run_task(folder, events),
        eval_rougeL=caption_scores[-1] if caption_scores else None,
    )


def run_task(folder: Path, events: Sequence[RunEvent]) -> str:
    """'caption' for a captioner run (its settings say so, or it logged a caption evaluation), else 'classify'."""
    if any(isinstance(event, CaptionEvaluated) for event in events):
        return "caption"
    try:
        settings = json.loads((folder / "run_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no settings yet, or damaged: resume_config says which
        return "classify"
    return "caption" if isinstance(settings, dict) and settings.get("task") == "caption" else "classify"


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


def run_status(events: Sequence[RunEvent]) -> str:
    last = events[-1] if events else None
    if isinstance(last, Finished):
        return "finished"
    if isinstance(last, Stopped):
        return "stopped"
    return "interrupted"


def curves(events: Sequence[RunEvent]) -> Curves:
    """Train loss per step and eval loss with accuracy (a classifier) or ROUGE (a captioner) per epoch; a resumed
    run's repeated steps keep the latest."""
    train = {event.step: event.loss for event in events if isinstance(event, Step)}
    classified = {event.step: event for event in events if isinstance(event, Evaluated)}
    captioned = {event.step: event for event in events if isinstance(event, CaptionEvaluated)}
    evaluated: dict[int, Evaluated | CaptionEvaluated] = {**classified, **captioned}
    eval_steps = sorted(evaluated)
    return Curves(
        train_steps=tuple(sorted(train)),
        train_loss=tuple(train[step] for step in sorted(train)),
        eval_steps=tuple(eval_steps),
        eval_loss=tuple(evaluated[step].eval_loss for step in eval_steps),
        eval_accuracy=tuple(classified[step].eval_accuracy for step in eval_steps if step in classified),
        eval_rouge1=tuple(captioned[step].rouge1 for step in eval_steps if step in captioned),
        eval_rouge2=tuple(captioned[step].rouge2 for step in eval_steps if step in captioned),
        eval_rougeL=tuple(captioned[step].rougeL for step in eval_steps if step in captioned),
    )


def last_evaluation(events: Sequence[RunEvent]) -> Evaluated | None:
    return next((event for event in reversed(events) if isinstance(event, Evaluated)), None)


def last_started(events: Sequence[RunEvent]) -> Started | None:
    return next((event for event in reversed(events) if isinstance(event, Started)), None)


def format_duration(seconds: float) -> str:
    """'42 s', '4 min 10 s', '2 h 05 min': how long a run has left, in the engine's messages and on a page."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---- figures ------------------------------------------------------------------------------------------------


def curves_figure(run_curves: Curves):
    """Loss (train per step, eval per epoch) on the left axis; eval accuracy, or a captioner's ROUGE, on the right."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.6), layout="constrained")
    loss_axis = figure.add_subplot()
    loss_axis.plot(run_curves.train_steps, run_curves.train_loss, color="tab:blue", alpha=0.8, label="train loss")
    loss_axis.plot(run_curves.eval_steps, run_curves.eval_loss, "o-", color="tab:orange", label="eval loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss")
    accuracy_axis = loss_axis.twinx()
    if run_curves.is_caption:
        for scores, style, name, colour in (
            (run_curves.eval_rouge1, "^:", "ROUGE-1", "tab:purple"),
            (run_curves.eval_rouge2, "v:", "ROUGE-2", "tab:red"),
            (run_curves.eval_rougeL, "s--", "ROUGE-L", "tab:green"),
        ):
            accuracy_axis.plot(run_curves.eval_steps, scores, style, color=colour, label=f"eval {name}")
        accuracy_axis.set_ylim(0, 100)
        accuracy_axis.set_ylabel("ROUGE (%)")
    else:
        accuracy_axis.plot(
            run_curves.eval_steps, run_curves.eval_accuracy, "s--", color="tab:green", label="eval accuracy"
        )
        accuracy_axis.set_ylim(0, 1)
        accuracy_axis.set_ylabel("accuracy")
    handles = loss_axis.get_legend_handles_labels()[0] + accuracy_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles, [str(handle.get_label()) for handle in handles], loc="center right", fontsize="small")
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
                axis.text(
                    column,
                    row,
                    str(int(matrix[row, column])),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if matrix[row, column] > threshold else "black",
                )
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
_NOT_SHARED = ("checkpoint", "checkpoint.tmp", "checkpoint.old", "data", "initial", "initial.tmp")


def zip_run(folder: Path, destination: Path | None = None) -> Path:
    """The run's model, processor, results, log and figures as one zip (no checkpoint, no data)."""
    destination = destination or Path(tempfile.mkdtemp(prefix="vit-studio-run-"))
    with tempfile.TemporaryDirectory() as staging:
        copy = Path(staging) / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(*_NOT_SHARED, "*.tmp"))
        return Path(shutil.make_archive(str(destination / folder.name), "zip", root_dir=staging, base_dir=folder.name))


def has_saved_model(folder: Path) -> bool:
    """Whether a run folder holds a saved model yet (a run stopped before its first save has none)."""
    return (Path(folder) / "config.json").is_file()
