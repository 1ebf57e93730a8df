"""The line under a result that says what ran: which model, where, in which precision, and how long it took."""

from __future__ import annotations

from typing import Sequence

from core import RunInfo


def run_line(run: RunInfo) -> str:
    """'`model` on cpu, bfloat16, 12 ms' (Markdown), from what an engine call reported."""
    device_type = run.device.partition(":")[0]  # "cuda", as before RunInfo carried the GPU's number
    return f"`{run.model}` on {device_type}, {run.dtype}, {run.milliseconds:.0f} ms"


def last_run_line(runs: Sequence[RunInfo]) -> str:
    """The line for the last report an on_run callback collected; empty when none came (a call that ran in another
    process, as a lent ZeroGPU worker may be, reports there, and the result is still worth showing)."""
    return run_line(runs[-1]) if runs else ""
