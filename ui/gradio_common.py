"""What every Gradio tab shares: engine errors shown as messages, the output folder, load announcements, sliders."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import gradio as gr
from gradio import processing_utils

from ui.shared.notes import note_markdown
from ui.shared.texts import NO_IMAGE, loading_text
from ui.shared.widgets import Slider

# Files the app hands out (CSVs, .npy features, run zips) go in one folder that is removed when the app exits.
# Gradio copies each file it serves into its own cache as the answer goes out, so a copy here is needed for
# moments only: older ones are removed as new ones are made, so a long-running app does not fill its disk.
_OUTPUT_ROOT = tempfile.TemporaryDirectory(prefix="vit-studio-")
KEEP_OUTPUTS_S = 3600


def output_folder(root: Path | None = None) -> Path:
    """A fresh folder for one answer's files, under the app's output folder (or `root`)."""
    root = Path(root or _OUTPUT_ROOT.name)
    remove_older_than(root, KEEP_OUTPUTS_S)
    return Path(tempfile.mkdtemp(dir=root))


def remove_older_than(root: Path, seconds: float) -> None:
    """Remove the folders in `root` last changed more than `seconds` ago."""
    cutoff = time.time() - seconds
    for folder in root.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            continue


@contextmanager
def user_errors():
    """Turn the engine's ValueErrors into gr.Error so the page shows the message, never a traceback."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as error:
        raise gr.Error(str(error)) from error


def load_progress(progress: gr.Progress) -> Callable[[str], None]:
    """An on_load for engine calls: the progress bar says a model is loading (only when the engine loads one)."""
    return lambda name: progress(0, desc=loading_text(name))


def slider(spec: Slider, *, scale: int | None = None, min_width: int = 160) -> gr.Slider:
    """A gr.Slider from the shared spec, with Gradio's own layout options."""
    return gr.Slider(
        spec.minimum,
        spec.maximum,
        value=spec.default,
        step=spec.step,
        label=spec.label,
        info=spec.info or None,
        scale=scale,
        min_width=min_width,
    )


def teacher_note(key: str) -> gr.Markdown:
    """The "what to notice" under a picture; the page's Teacher notes toggle hides every one at once."""
    return gr.Markdown(note_markdown(key), elem_classes=["teacher-note"])


def require_image(image_path: str | None) -> str:
    if not image_path:
        raise gr.Error(NO_IMAGE)
    return image_path


# ---- Gradio's cache, written so that a file being served is never rewritten in place -------------------------


def write_cache_images_atomically() -> None:
    """Make Gradio write a result image under a temporary name and rename it into place.

    Gradio names a cached image by the hash of its content and rewrites the file each time, in place. When
    visitors ask for the same thing at once (a class clicking the same example photo), one request truncates the
    file while another is still sending it, and that visitor gets a broken image (bench load: 8 of 600 explain
    requests failed so). A rename swaps the file whole: a reader keeps the copy it opened. Every component that
    caches a PIL image goes through processing_utils.save_pil_to_cache, so this one function covers them."""

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        bytes_data = processing_utils.encode_pil_to_bytes(img, format)
        path = Path(cache_dir) / processing_utils.hash_bytes(bytes_data) / f"{name}.{format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
        with os.fdopen(handle, "wb") as file:
            file.write(bytes_data)
        os.replace(temporary, path)
        return str(path.resolve())

    processing_utils.save_pil_to_cache = save_pil_to_cache
