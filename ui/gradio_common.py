"""What every Gradio tab shares: engine errors shown as messages, the output folder, load announcements."""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import gradio as gr

from core.models import describe_run, is_cached, load_classifier  # noqa: F401 - describe_run is re-exported

NO_IMAGE = "Upload, paste or take a photo first (or click an example)."
NO_FILES = "Upload some images or a zip of images first."

# Files the app hands out (CSVs, .npy features) go in one folder that is removed when the app exits;
# Gradio copies what it serves into its own cache first.
_OUTPUT_ROOT = tempfile.TemporaryDirectory(prefix="vit-studio-")


def output_folder() -> Path:
    return Path(tempfile.mkdtemp(dir=_OUTPUT_ROOT.name))


@contextmanager
def user_errors():
    """Turn the engine's ValueErrors into gr.Error so the page shows the message, never a traceback."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as error:
        raise gr.Error(str(error)) from error


def announce_load(model: str, progress: gr.Progress, loader: Callable = load_classifier,
                  cached: Callable[[str], bool] = is_cached) -> None:
    """Say a model is loading (the first use may download it) before the call that loads it."""
    if not cached(model):
        progress(0, desc=f"Loading {model} (the first use may download it)")
    loader(model)


def require_image(image_path: str | None) -> str:
    if not image_path:
        raise gr.Error(NO_IMAGE)
    return image_path
