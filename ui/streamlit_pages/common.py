"""What every Streamlit page shares: settings, engine errors as messages, load notices, uploads, sliders."""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import pandas as pd
import streamlit as st
from PIL import Image

from core import (
    IMAGE_SUFFIXES,
    Prediction,
    current_settings,
    environment_settings,
    example_images,
    hub_available,
    loads_offline,
    preload_classifier,
    use_settings,
)
from training import shared_model_folders, visible_runs, visitor
from ui.shared.models import model_box_choices
from ui.shared.notes import note_markdown
from ui.shared.texts import PHOTO_LABEL, loading_text
from ui.shared.widgets import Slider

T = TypeVar("T")

# Session-state keys of the model boxes that the Train page's "Use this model" fills in.
CLASSIFY_MODEL_KEY = "classify_model"
SESSION = "train_session"  # this browser tab's id (browser_session)
# Session-state keys of the sidebar toggles every page reads.
TEACHER_NOTES_KEY = "teacher_notes"
PRESENTATION_KEY = "presentation_mode"
ATTENTION_MODEL_KEY = "attention_model"
WALKTHROUGH_MODEL_KEY = "walkthrough_model"
CAPTION_MODEL_KEY = "caption_model"  # the Caption page's box, which "Use this model" of a captioner run fills in

IMAGE_TYPES = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
NO_EXAMPLE = "(none)"

# Files the app writes for the engine (uploads it needs as paths) and for downloads live under one folder
# that is removed when the server process exits.
_WORK_ROOT = tempfile.TemporaryDirectory(prefix="vit-studio-streamlit-")


@dataclass(frozen=True)
class Photo:
    """One image as the user gave it: its file name (for captions and messages) and its undecoded bytes, which
    the engine reads and checks itself (so a damaged file gets the engine's message)."""

    name: str
    data: bytes


# ---- settings (app.py passes its flags to `streamlit run` as VIT_STUDIO_* variables) ------------------------


@st.cache_resource(show_spinner=False)
def hub_at_start() -> bool:
    """Whether the Hub answered when the server first asked: once per server process, not on every rerun."""
    return hub_available()


def browser_session() -> str:
    """This browser tab's id for run ownership: Streamlit keeps session state per tab until a reload."""
    return st.session_state.setdefault(SESSION, uuid.uuid4().hex)


def default_classifier() -> str:
    return current_settings().default_model


def server_paths_allowed() -> bool:
    """A path box reads any file the server can: only on one's own machine, never on a public Space."""
    return current_settings().allow_server_paths


def configure_engine_from_environment() -> None:
    """Device, precision and remote code come from the environment (`streamlit run` starts a process of its own);
    on a shared app (VIT_STUDIO_SHARED, or a Space) models load by path only from the app's own folders."""
    launch = environment_settings()  # this process's flags are its environment
    model_folders = shared_model_folders(launch.default_model, launch.runs_dir) if launch.shared else None
    # Put in place whole, in one step: sessions run their pages in parallel threads, and none may see the settings
    # without their model folders (which would let a model box load from any path).
    use_settings(replace(launch, model_folders=model_folders))


@st.cache_resource(show_spinner=False)
def start_preloading(model: str) -> threading.Thread:
    """Load the default classifier in the background once per server process, so the first click does not wait.
    st.cache_resource only makes this run once; the model itself lives in the engine's cache, not here."""
    thread = threading.Thread(target=preload_classifier, args=(model,), daemon=True, name="preload")
    thread.start()
    return thread


# ---- engine calls ----------------------------------------------------------------------------------------


def shown_errors(call: Callable[[], T]) -> T | None:
    """Run an engine call; a ValueError (the engine's way of saying what the user should change) becomes
    st.error with its message, never a traceback, and the call gives None."""
    try:
        return call()
    except ValueError as error:
        st.error(str(error))
        return None


@contextmanager
def load_notice() -> Iterator[Callable[[str], None]]:
    """An on_load for the engine calls inside the block: a notice that a model is loading (the first use may
    download it) appears only when the engine really loads one, and goes when the block ends."""
    notice = st.empty()
    try:
        yield lambda name: notice.info(loading_text(name))
    finally:
        notice.empty()


# ---- files ------------------------------------------------------------------------------------------------


def work_folder() -> Path:
    """A fresh folder for one request's files."""
    return Path(tempfile.mkdtemp(dir=_WORK_ROOT.name))


def saved_uploads(files: Sequence, folder: Path | None = None) -> list[tuple[str, Path]]:
    """Uploaded files (st.file_uploader's UploadedFile) written to disk for engine calls that take paths, as
    (name as uploaded, path) pairs. Each file gets its own folder, so its base name survives (batch tables show
    it) and two files of one name never collide; the uploaded name, which a folder upload makes a relative path,
    is never used as a path here (training.data checks it). `folder` defaults to a fresh work folder."""
    folder = folder or work_folder()
    saved = []
    for index, upload in enumerate(files):
        target = folder / str(index) / (Path(upload.name).name or "upload")
        target.parent.mkdir(parents=True)
        target.write_bytes(upload.getvalue())
        saved.append((upload.name, target))
    return saved


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- widgets ------------------------------------------------------------------------------------------------


def model_box(
    label: str,
    choices: Sequence[str],
    key: str,
    default: str,
    help: str | None = None,
    *,
    with_runs: bool = False,
    task: str = "classify",
) -> str:
    """A model chooser that also takes any typed id or folder. Its value lives in session state under `key` for
    the whole session (another page may set it: Train's "Use this model"), and is always one of the options.
    `with_runs` also offers the finished training runs of `task` ("classify" or "caption"); offline, those and the
    models on this machine come first and the box starts on one that loads."""
    labels: dict[str, str] = {}
    if with_runs:
        offered = model_box_choices(
            default,
            choices,
            visible_runs(visitor(browser_session())),
            hub_up=hub_at_start(),
            loads_offline=loads_offline,
            task=task,
        )
        labels = {value: shown for shown, value in offered.choices}
        choices, default = offered.values, offered.start
    if key not in st.session_state:
        st.session_state[key] = default
    options = list(dict.fromkeys([default, *choices, st.session_state[key]]))
    return st.selectbox(
        label,
        options,
        key=key,
        accept_new_options=True,
        help=help,
        persist_state="session",
        format_func=lambda value: labels.get(value, value),
    )


def slider(spec: Slider, key: str, container: Any = st) -> Any:
    """A st.slider from the shared spec, drawn in `container` (a column, or the page)."""
    return container.slider(
        spec.label, spec.minimum, spec.maximum, spec.default, spec.step, key=key, help=spec.info or None
    )


def photo_input(key: str) -> Photo | None:
    """An uploaded photo, a camera shot, or one of the example photos (in that order of preference)."""
    upload = st.file_uploader(
        PHOTO_LABEL,
        type=IMAGE_TYPES,
        key=f"{key}_upload",
        help="Any image file; EXIF rotation is applied, and large images are refused.",
    )
    # The camera widget only appears on request: it asks the browser for camera access as soon as it is drawn.
    use_camera = st.toggle("Use the camera", key=f"{key}_use_camera")
    shot = st.camera_input("Take a photo", key=f"{key}_camera") if use_camera else None
    examples = {path.stem: path for path in example_images()}
    example = st.selectbox("... or an example photo", [NO_EXAMPLE, *examples], index=1, key=f"{key}_example")
    if upload is not None:
        photo = Photo(upload.name, upload.getvalue())
    elif shot is not None:
        photo = Photo("camera.jpg", shot.getvalue())
    elif example != NO_EXAMPLE:
        photo = Photo(examples[example].name, examples[example].read_bytes())
    else:
        return None
    _preview(photo)
    return photo


def _preview(photo: Photo) -> None:
    # The engine decodes the photo for real; a file it cannot read is named here and explained on Run.
    try:
        st.image(photo.data, caption=photo.name, width=320)
    except Exception:  # noqa: BLE001 - a preview is a courtesy; the engine's check gives the message
        st.caption(f"{photo.name}: no preview (the file may not be an image).")


def predictions_table(predictions: Sequence[Prediction], key: str) -> None:
    """Labels with confidence bars, best first."""
    frame = pd.DataFrame({"label": [p.label for p in predictions], "score": [p.score for p in predictions]})
    st.dataframe(
        frame,
        hide_index=True,
        key=key,
        width="stretch",
        column_config={
            "label": st.column_config.TextColumn("label"),
            "score": st.column_config.ProgressColumn(
                "confidence", format="percent", min_value=0.0, max_value=1.0, width="medium"
            ),
        },
    )


def csv_download(label: str, path: Path, key: str) -> None:
    st.download_button(label, path.read_bytes(), file_name=path.name, mime="text/csv", key=key, on_click="ignore")


def teacher_note(key: str) -> None:
    """The "what to notice" under a picture, unless the sidebar's Teacher notes toggle is off."""
    if st.session_state.get(TEACHER_NOTES_KEY, True):
        st.caption(note_markdown(key))


def forget_when_changed(result_keys: Sequence[str], *made_from: object, marker: str) -> None:
    """Drop the results kept under `result_keys` when what makes them (the model, the photo, the files) is not
    what it was on the last rerun, so a page never shows one model's labels under another model's name."""
    source = tuple(_fingerprint(value) for value in made_from)
    if st.session_state.get(marker) != source:
        for key in result_keys:
            st.session_state.pop(key, None)
        st.session_state[marker] = source


def _fingerprint(value: object) -> object:
    if isinstance(value, Photo):
        return value.name, hashlib.sha1(value.data).hexdigest()
    if isinstance(value, (list, tuple)):
        return tuple(_fingerprint(item) for item in value)
    return getattr(value, "file_id", value)  # an UploadedFile: Streamlit's id for that upload
