"""What finetune() reports as it goes: small frozen events a UI draws curves from and the CLI prints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Started:
    total_steps: int
    classes: tuple[str, ...]
    train_size: int
    val_size: int
    epochs: int
    mode: str  # "full" or "head"
    device: str
    precision: str
    start_step: int = 0  # > 0 when resuming
    notes: tuple[str, ...] = ()  # sentences for the user about this start (a resume whose random state was lost)


@dataclass(frozen=True)
class Step:
    epoch: int  # 1-based
    step: int  # optimizer steps so far, across epochs
    loss: float
    lr: float
    images_per_s: float
    seconds_left: float


@dataclass(frozen=True)
class Evaluated:
    epoch: int
    step: int
    eval_loss: float
    eval_accuracy: float
    per_class: tuple[float, ...]  # accuracy (recall) of each class, classes order
    confusion: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class


@dataclass(frozen=True)
class Saved:
    path: str
    step: int


@dataclass(frozen=True)
class Finished:
    output_dir: str
    metrics: dict[str, float | None] = field(default_factory=dict)  # None: not measured


@dataclass(frozen=True)
class Stopped:
    output_dir: str
    step: int


Event = Started | Step | Evaluated | Saved | Finished | Stopped
EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in (Started, Step, Evaluated, Saved, Finished, Stopped)}


@dataclass(frozen=True)
class CaptionEvaluated:
    """A captioner's evaluation after an epoch: the loss on the reference captions and the scores (in percent) of
    the captions it generated for the validation images."""

    epoch: int
    step: int
    eval_loss: float
    rouge1: float
    rouge2: float
    rougeL: float
    bleu: float
    images: int  # validation images captioned
    examples: tuple[tuple[str, str], ...] = ()  # a few (reference, generated) pairs to show how it is going


# What train_captioner() yields: the classification events, with CaptionEvaluated in place of Evaluated.
CaptionEvent = Started | Step | CaptionEvaluated | Saved | Finished | Stopped
EVENT_TYPES[CaptionEvaluated.__name__] = CaptionEvaluated
# Any event a run's log may hold, whichever kind of model it trains.
RunEvent = Started | Step | Evaluated | CaptionEvaluated | Saved | Finished | Stopped


def to_json(event: Event | CaptionEvaluated) -> str:
    return json.dumps({"event": type(event).__name__, **asdict(event)})


def from_json(line: str) -> RunEvent:
    """An event back from its log line (tuples come back as tuples, so events compare equal)."""
    fields: dict[str, Any] = json.loads(line)
    cls = EVENT_TYPES[fields.pop("event")]
    for name, value in fields.items():
        if isinstance(value, list):
            fields[name] = tuple(tuple(item) if isinstance(item, list) else item for item in value)
    return cls(**fields)


def read_events(path: str | Path) -> list[RunEvent]:
    """Every event of a run's log, oldest first; a last line cut off by a crash is ignored."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(from_json(line))
        except (ValueError, KeyError, TypeError):
            continue
    return events
