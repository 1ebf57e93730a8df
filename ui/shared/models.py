"""Model boxes that work offline: local runs and downloaded models first, Hub-only ids marked, a default that loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from training import RunSummary

NEEDS_HUB = "needs the Hub"


@dataclass(frozen=True)
class ModelChoices:
    """What one model box offers: (label, value) pairs in the order shown, and the value it starts on."""

    choices: tuple[tuple[str, str], ...]
    start: str

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.choices)


def run_choice(summary: RunSummary) -> tuple[str, str]:
    """A finished run as a model: its name and accuracy to read, its folder to load."""
    accuracy = f", val acc {summary.eval_accuracy:.0%}" if summary.eval_accuracy is not None else ""
    return f"{summary.name} (your run{accuracy})", str(summary.path.resolve())


def model_box_choices(
    default: str,
    suggestions: Sequence[str],
    runs: Sequence[RunSummary],
    *,
    hub_up: bool,
    loads_offline: Callable[[str], bool],
    task: str = "classify",
) -> ModelChoices:
    """The box's choices: online, the default and suggestions first and then the finished runs (newest first);
    offline, the runs and what loads from this machine first, and each Hub-only id labelled as needing the Hub.
    Offline, the box starts on the default if it loads from this machine, else on the newest run, else on the
    default anyway (the page's offline banner then says to train one first). `task` picks which runs fit the box:
    "classify" (classifiers) or "caption" (captioners)."""
    hub_ids = list(dict.fromkeys([default, *suggestions]))
    # Only runs of this box's kind: a captioner in the Classify box would fail on its first photo.
    run_choices = [run_choice(summary) for summary in runs if summary.status == "finished" and summary.task == task]
    if hub_up:
        ordered = [(name, name) for name in hub_ids] + run_choices
        return ModelChoices(_unique(ordered), default)
    available = [name for name in hub_ids if loads_offline(name)]
    missing = [name for name in hub_ids if name not in available]
    ordered = run_choices + [(name, name) for name in available] + [(f"{name} ({NEEDS_HUB})", name) for name in missing]
    if default in available:
        start = default
    elif run_choices:
        start = run_choices[0][1]
    else:
        start = available[0] if available else default
    return ModelChoices(_unique(ordered), start)


def _unique(choices: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """First of each value: a run that is also the app's default model folder shows once."""
    seen: dict[str, tuple[str, str]] = {}
    for label, value in choices:
        seen.setdefault(value, (label, value))
    return tuple(seen.values())
