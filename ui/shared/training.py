"""Training as both front ends show it: the settings form read into a FinetuneConfig, run lists, one run's view."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from training import (
    CONFUSION_PNG,
    Evaluated,
    Event,
    FinetuneConfig,
    Finished,
    OnnxExport,
    RunSummary,
    Step,
    Stopped,
    base_settings,
    curves,
    curves_figure,
    format_duration,
    format_size,
    has_saved_model,
    last_evaluation,
    last_started,
)
from ui.shared.train_widgets import BASE_CHOICES, OFFLINE_BASE

# ---- the settings form --------------------------------------------------------------------------------------


def form_config(
    source: Any,
    base: str,
    *,
    mode: str,
    epochs: float | None,
    learning_rate: float | None,
    batch_size: float | None,
    weight_decay: float | None,
    warmup_ratio: float,
    image_size: float | None,
    augment: bool,
    seed: float | None,
    precision: str,
) -> FinetuneConfig:
    """A FinetuneConfig from a front end's settings form (numbers may arrive as floats or None; image size 0
    means the model's own). output_dir is a placeholder: training.start_new_run makes the run folder. The
    engine's check_config judges the values; only what cannot be a whole number is refused here."""
    return FinetuneConfig(
        train_dir=source,
        output_dir=Path("."),
        mode=mode,
        num_train_epochs=whole_number(epochs, "epochs"),
        learning_rate=float(learning_rate or 0),
        per_device_train_batch_size=whole_number(batch_size, "batch size"),
        weight_decay=float(weight_decay or 0),
        warmup_ratio=float(warmup_ratio or 0),
        image_size=whole_number(image_size or 0, "image size") or None,
        augment=bool(augment),
        seed=whole_number(seed or 0, "seed"),
        precision=precision,
        **base_settings(base),
    )


def whole_number(value: float | None, name: str) -> int:
    """A form's number (often a float) as an int; a ValueError naming the setting for anything else."""
    # Not finite first: int() of an infinity raises OverflowError, of a NaN a raw ValueError.
    if value is None or not math.isfinite(float(value)) or float(value) != int(value):
        raise ValueError(f"The {name} must be a whole number, not {value!r}.")
    return int(value)


def start_from_choices(runs: Sequence[RunSummary], *, hub_available: bool = True) -> list[str]:
    """What a "Start from" box offers: the suggested bases, then the finished ones of `runs` (visible_runs's list,
    made once for both of a page's lists: it reads every run's log and size). Without the Hub, what is on this
    machine comes first: the earlier runs, then the scratch preset, then the Hub models (usable if cached)."""
    finished = [str(summary.path) for summary in runs if summary.status == "finished" and summary.task == "classify"]
    if not hub_available:
        return list(dict.fromkeys([*finished, OFFLINE_BASE, *BASE_CHOICES]))
    return list(dict.fromkeys([*BASE_CHOICES, *finished]))


# ---- lists of runs ------------------------------------------------------------------------------------------


def run_label(summary: RunSummary) -> str:
    """'name (status, step 12/40, val acc 85%, 54 MB)' for a list of runs; a captioner shows 'captioner, ROUGE-L 92'."""
    accuracy = f", val acc {summary.eval_accuracy:.0%}" if summary.eval_accuracy is not None else ""
    if summary.task == "caption":
        accuracy = ", captioner" + (f", ROUGE-L {summary.eval_rougeL:.0f}" if summary.eval_rougeL is not None else "")
    return (
        f"{summary.name} ({summary.status}, step {summary.steps_done}/{summary.total_steps}{accuracy}, "
        f"{format_size(summary.size_bytes)})"
    )


def runs_list_label(shared: bool, root: Path) -> str:
    """The heading of the list of earlier runs: a shared app shows a visitor only their own and the example runs."""
    return "Your runs and example runs" if shared else f"Runs in {root}"


def saved_model_dir(run_path: str | Path | None) -> Path:
    """The run folder, checked to hold a saved model (what Use, Zip, Push and the confusion cells need)."""
    if not run_path:
        raise ValueError("Train a model or pick a run under Earlier runs first.")
    folder = Path(run_path)
    if not has_saved_model(folder):
        raise ValueError(f"The run '{folder.name}' has no saved model yet (it stopped before its first save).")
    return folder


# ---- one run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunView:
    """One run as a front end draws it, while it trains or afterwards."""

    progress: str  # describe_progress's line
    figure: object | None  # training.curves_figure (a matplotlib Figure) once a step is logged
    classes: tuple[str, ...]
    per_class: list[list]  # per_class_rows after the last evaluation
    confusion_png: Path | None  # the confusion matrix picture, once the run has ended and written it


def run_view(events: Sequence[Event], running: bool, *, folder: Path) -> RunView:
    """Progress, curves, per-class results and the confusion picture of a run from its events."""
    run_curves = curves(events)
    started, evaluation = last_started(events), last_evaluation(events)
    classes = tuple(started.classes) if started else ()
    confusion_png = Path(folder) / CONFUSION_PNG
    return RunView(
        progress=describe_progress(events, running, resumable=(Path(folder) / "checkpoint").is_dir()),
        figure=curves_figure(run_curves) if run_curves.train_steps else None,
        classes=classes,
        per_class=per_class_rows(evaluation, classes) if evaluation else [],
        # Written when the run ends; during a resumed run the old picture would describe an earlier model.
        confusion_png=confusion_png if not running and confusion_png.is_file() else None,
    )


def describe_progress(events: Sequence[Event], running: bool, *, resumable: bool = True) -> str:
    """One line on where a run is: steps, epoch, speed and time left, or how it ended; then the notes of its
    (last) start, such as a resume whose random state could not be restored."""
    started = last_started(events)
    # A resumed run shows its earlier log first: until its new start arrives, that log's end is not this run's.
    resuming = running and bool(events) and isinstance(events[-1], (Finished, Stopped))
    if started is None or resuming:
        return "Preparing the data and loading the model ..." if running else "Not started."
    notes = "".join(f" ⚠ {note}" for note in started.notes)
    last_step = next((event for event in reversed(events) if isinstance(event, Step)), None)
    done = last_step.step if last_step else started.start_step
    line = f"step {done}/{started.total_steps}"
    if last_step:
        line += f" · epoch {last_step.epoch}/{started.epochs} · loss {last_step.loss:.3f}"
        # Head-only steps run on features computed once, before the first step: their images/s times a linear
        # layer, not the model, and would read as thousands.
        if started.mode not in ("head", "frozen_encoder"):
            line += f" · {last_step.images_per_s:.1f} images/s"
    end = events[-1]
    if isinstance(end, Finished):
        accuracy, rouge = end.metrics.get("eval_accuracy"), end.metrics.get("eval_rougeL")
        score = f" · validation accuracy {accuracy:.1%}" if accuracy is not None else ""
        if rouge is not None:  # a captioner's
            score = f" · validation ROUGE-L {rouge:.1f}"
        return f"Finished: {line}{score}{notes}"
    if isinstance(end, Stopped):
        return f"Stopped at {line}: the model so far is saved, and the run can be resumed.{notes}"
    if not running:
        return (
            f"Interrupted at {line}."
            + (" Resume it from its last checkpoint." if resumable else " It saved no checkpoint, so start it again.")
            + notes
        )
    if last_step:
        line += f" · about {format_duration(last_step.seconds_left)} left"
    return f"Training ({started.mode}, {started.device}, {started.precision}): {line}{notes}"


def per_class_rows(evaluation: Evaluated, classes: Sequence[str]) -> list[list]:
    """[class, accuracy as '71%', correct, validation images] per class (PER_CLASS_HEADERS), for a results table."""
    return [
        [name, f"{accuracy:.0%}", evaluation.confusion[index][index], sum(evaluation.confusion[index])]
        for index, (name, accuracy) in enumerate(zip(classes, evaluation.per_class))
    ]


# ---- ONNX export ----------------------------------------------------------------------------------------------


def onnx_check_line(exported: OnnxExport) -> str:
    """'Same top-1 as PyTorch on 18 of 18 validation images; largest logit difference 2e-05.' for the line under
    the Export button."""
    agreeing = round(exported.top1_agreement * exported.images_checked)
    images = "validation images" if exported.checked_on == "validation" else "images"
    return (
        f"Same top-1 as PyTorch on {agreeing} of {exported.images_checked} {images}; largest logit difference "
        f"{exported.max_abs_logit_diff:.0e} ({format_size(exported.size_bytes)}, input {exported.image_size}x"
        f"{exported.image_size})."
    )


# ---- what a button says -------------------------------------------------------------------------------------

NOTHING_TRAINING = "Nothing is training."
STOPPING = "Stopping after the current step; the model so far will be saved ..."


def stop_message(stopping: bool) -> str:
    """What to tell the user after Stop: training.stop_current's answer in words."""
    return STOPPING if stopping else NOTHING_TRAINING
