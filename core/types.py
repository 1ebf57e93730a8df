"""Small frozen result types that the engine returns and the front ends display."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """One label and the model's confidence in it, in [0, 1]."""

    label: str
    score: float


@dataclass(frozen=True)
class FileResult:
    """One row of a batch run: a file's predictions, or why it could not be read."""

    name: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
