"""The Train tab's webcam section (Teachable Machine style): collect pictures per class, watch a run predict live."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from training import class_samples, collection_batch_size, read_collection, remove_class, save_sample, zip_collection
from ui.gradio_common import output_folder, remove_older_than, teacher_note, user_errors
from ui.shared import train_widgets as widgets
from ui.shared.training_data import collection_summary, collection_thumbnails

# Each page's collected images live in a folder of their own under this one, removed when the app stops, or when
# nobody has added a picture to it for KEEP_COLLECTION_S (a shared app's visitors come and go).
_COLLECTIONS = tempfile.TemporaryDirectory(prefix="vit-studio-webcam-")
KEEP_COLLECTION_S = 3 * 3600


@dataclass(frozen=True)
class CollectBoxes:
    """The collecting controls, drawn inside the data tabs."""

    folder: gr.State  # this page's collection folder (None until the first picture)
    class_name: gr.Textbox
    camera: gr.Image  # the webcam, streaming its frames while it records
    latest: gr.State  # the camera's latest frame, which "Add a picture" saves
    add: gr.Button
    capture: gr.Image  # a picture pasted or uploaded
    summary: gr.Markdown
    gallery: gr.Gallery
    remove_choice: gr.Dropdown
    remove: gr.Button
    train: gr.Button


@dataclass(frozen=True)
class LiveBoxes:
    """The live webcam and what the trained model says about it."""

    camera: gr.Image
    prediction: gr.Label


def collect_section() -> CollectBoxes:
    gr.Markdown(widgets.WEBCAM_INTRO)
    folder = gr.State(None)
    class_name = gr.Textbox(
        label=widgets.CLASS_NAME_LABEL, placeholder=widgets.CLASS_NAME_PLACEHOLDER, elem_id="webcam-class"
    )
    # The webcam streams while it records, and each press of the button keeps its latest frame: one click a
    # picture, the camera staying live (a webcam gr.Image that captures must be reopened after each picture).
    camera = gr.Image(
        sources=["webcam"],
        streaming=True,
        type="numpy",
        label=widgets.CAMERA_LABEL,
        height=260,
        elem_id="webcam-camera",
    )
    latest = gr.State(None)
    add = gr.Button(widgets.ADD_PICTURE_BUTTON, variant="secondary", elem_id="webcam-add")
    capture = gr.Image(
        sources=["upload", "clipboard"],
        type="numpy",
        label=widgets.CAPTURE_LABEL,
        height=160,
        elem_id="webcam-capture",
    )
    summary = gr.Markdown(widgets.NOTHING_COLLECTED, elem_id="webcam-summary")
    gallery = gr.Gallery(label=widgets.COLLECTED_LABEL, columns=4, height=200, elem_id="webcam-gallery")
    with gr.Row(equal_height=True):
        remove_choice = gr.Dropdown([], label=widgets.REMOVE_CLASS_LABEL, scale=2, elem_id="webcam-remove-class")
        remove = gr.Button(widgets.REMOVE_CLASS_BUTTON, scale=1, elem_id="webcam-remove")
    train = gr.Button(widgets.TRAIN_COLLECTED_BUTTON, variant="primary", elem_id="webcam-train")
    boxes = CollectBoxes(
        folder, class_name, camera, latest, add, capture, summary, gallery, remove_choice, remove, train
    )
    shown = [folder, summary, gallery, remove_choice]
    camera.stream(
        lambda frame: frame,
        inputs=[camera],
        outputs=[latest],
        stream_every=widgets.CAMERA_EVERY_S,
        time_limit=widgets.CAMERA_LIMIT_S,
        concurrency_limit=8,
        api_visibility="private",
    )
    add.click(add_frame, inputs=[folder, class_name, latest], outputs=shown, api_visibility="private")
    # A pasted or uploaded picture goes into the class at once and the box is emptied for the next one.
    capture.change(add_picture, inputs=[folder, class_name, capture], outputs=[*shown, capture], api_name="collect")
    remove.click(drop_class, inputs=[folder, remove_choice], outputs=shown, api_name="remove_class")
    return boxes


def live_section() -> LiveBoxes:
    gr.Markdown(f"#### {widgets.LIVE_SECTION}")
    with gr.Row(equal_height=False):
        camera = gr.Image(
            sources=["webcam"], streaming=True, type="numpy", label=widgets.LIVE_CAMERA_LABEL, elem_id="webcam-live"
        )
        prediction = gr.Label(num_top_classes=3, label=widgets.LIVE_PREDICTION_LABEL, elem_id="webcam-prediction")
    teacher_note("webcam-live")
    return LiveBoxes(camera, prediction)


def add_picture(folder: str | None, class_name: str, picture):
    """Save the picture into the class (a new page gets its collection folder here); the box is cleared."""
    if picture is None:  # the box was just cleared
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if folder and Path(folder).is_dir():
        root = Path(folder)
    else:  # a new page, or one whose collection was tidied away after hours unused
        remove_older_than(Path(_COLLECTIONS.name), KEEP_COLLECTION_S)
        root = Path(tempfile.mkdtemp(dir=_COLLECTIONS.name))
    with user_errors():
        save_sample(root, class_name, picture)
    os.utime(root)  # in use: the tidying goes by this folder's time
    return (str(root), *collection_view(root), None)


def add_frame(folder: str | None, class_name: str, frame):
    """Save the webcam's latest frame into the class."""
    if frame is None:
        raise gr.Error(widgets.CAMERA_NOT_RECORDING)
    root, *view, _ = add_picture(folder, class_name, frame)
    return (root, *view)


def drop_class(folder: str | None, class_name: str | None):
    if not folder:
        raise gr.Error("Nothing is collected yet: type a class name and take a picture first.")
    with user_errors():
        remove_class(folder, class_name)
    return (folder, *collection_view(Path(folder)))


def collection_view(root: Path) -> tuple:
    """The counts line, the thumbnails, and the classes to remove (the first picked)."""
    collected = read_collection(root)
    pictures = collection_thumbnails([(name, class_samples(root, name)) for name in collected.classes])
    choices = list(collected.classes)
    return (
        collection_summary(collected.classes, collected.counts),
        pictures,
        gr.update(choices=choices, value=choices[0] if choices else None),
    )


def collection_zip(folder: str | None) -> tuple[Path, int]:
    """The collection as a zip of class folders, checked to be enough to train on (training.zip_collection), and
    the batch size a run on it accepts."""
    if not folder:
        raise gr.Error("Nothing is collected yet: type a class name and take a picture first.")
    with user_errors():
        archive = zip_collection(folder, output_folder())
    return archive, collection_batch_size(read_collection(folder), int(widgets.BATCH_SIZE.default))
