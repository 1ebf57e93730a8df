"""Where the engine's tensor work may run on a lent GPU: ZeroGPU Spaces lend one per call of a marked function.

The engine marks its entry points with @gpu_work once, where they are defined. Nothing changes until the app
calls lend_gpu(spaces.GPU) at start-up; from then on each marked call goes through spaces.GPU, whichever module
the caller found it in. spaces.GPU runs the call in a worker process that ends with it, so three things happen
in the calling process instead: the call's models are loaded there first (the worker starts with them in memory,
and the app's cache keeps them for the next call), the on_load and on_run callbacks are called there, and calls one
entry point makes to another (classify_files classifying) run inside the first one's GPU slot.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable, Mapping, Optional, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])
Lender = Callable[[Callable[..., Any]], Callable[..., Any]]
Preload = Callable[[Mapping[str, Any], Optional[Callable[[str], None]]], object]

_entry_points: dict[str, Callable[..., Any]] = {}  # 'module.name' -> the undecorated function
_lent: dict[str, Callable[..., Any]] = {}  # 'module.name' -> that function as the lender wrapped it
_on_gpu = threading.local()  # set while a lent call runs, in the thread (or process) that runs it


def gpu_work(*, preload: Preload) -> Callable[[Function], Function]:
    """Mark an engine entry point whose calls may run on a lent GPU (see lend_gpu). `preload(arguments, on_load)`
    loads the models a call will use, from the call's arguments by name (defaults filled in)."""

    def mark(function: Function) -> Function:
        name = f"{function.__module__}.{function.__qualname__}"
        signature = inspect.signature(function)
        _entry_points[name] = function

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            lent = _lent.get(name)
            if lent is None or getattr(_on_gpu, "active", False):
                return function(*args, **kwargs)
            # The callbacks stay here: the worker could not reach them (and a lambda cannot be sent there).
            on_load = kwargs.pop("on_load", None)
            on_run = kwargs.pop("on_run", None)
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            preload(arguments.arguments, on_load)  # a bad model name fails here, before a GPU is asked for
            result, runs = lent(*args, **kwargs)
            for run in runs if on_run is not None else ():
                on_run(run)
            return result

        call.gpu_entry_point = name  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return mark


def lend_gpu(lender: Lender) -> list[str]:
    """Run every marked entry point through lender(function) from now on (spaces.GPU on a ZeroGPU Space);
    returns the entry points' names."""
    for name, function in _entry_points.items():
        _lent[name] = lender(_marked_on_gpu(function))
    return sorted(_lent)


def stop_lending() -> None:
    """Back to plain calls (for tests, and for an app that restarts its engine)."""
    _lent.clear()


def entry_points() -> list[str]:
    """The names of the marked entry points, 'module.function'."""
    return sorted(_entry_points)


def _marked_on_gpu(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function as it runs on the lent GPU: entry points called from inside it run in place, and what it
    reports through on_run is returned beside its result."""
    reports_runs = "on_run" in inspect.signature(function).parameters

    @functools.wraps(function)
    def on_gpu(*args: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
        runs: list[Any] = []
        if reports_runs:
            kwargs["on_run"] = runs.append
        _on_gpu.active = True
        try:
            return function(*args, **kwargs), runs
        finally:
            _on_gpu.active = False

    return on_gpu
