"""The Train tab as both front ends draw it: sections, buttons, and each widget's range, default, label and help."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NumberBox:
    """A number box: its bounds (None: unbounded on that side), first value and step (None: the widget's own). The
    bounded, labelled kind is ui.shared.widgets.Slider."""

    minimum: float | None
    maximum: float | None
    default: float
    step: float | None = None


# Good starting points offered in the "Start from" box; any id, local folder or earlier run works too.
BASE_CHOICES: tuple[str, ...] = (
    "google/vit-base-patch16-224-in21k",
    "google/vit-base-patch16-224",
    "facebook/deit-small-patch16-224",
    "facebook/deit-tiny-patch16-224",
    "vit-small-scratch",
)
BASE_LABEL = "Start from"
BASE_INFO = "a hub id, a local folder, an earlier run, or vit-small-scratch (offline, from random weights)"

MODE_LABEL = "What learns"
MODE_CHOICES: tuple[tuple[str, str], ...] = (  # (label, value), head first: the fast way to a first result
    ("Head only: the backbone stays frozen (fast)", "head"),
    ("Full fine-tune: every weight learns", "full"),
)
DEFAULT_MODE = "head"
# A frozen backbone leaves a linear layer to learn: a larger step and more (cheap) epochs suit it.
MODE_DEFAULTS: dict[str, dict[str, float]] = {
    "head": dict(learning_rate=1e-3, num_train_epochs=10),
    "full": dict(learning_rate=5e-5, num_train_epochs=3),
}

EPOCHS_LABEL = "Epochs"
EPOCHS = NumberBox(minimum=1, maximum=None, default=MODE_DEFAULTS[DEFAULT_MODE]["num_train_epochs"], step=1)
LEARNING_RATE_LABEL = "Learning rate"
LEARNING_RATE = NumberBox(minimum=None, maximum=None, default=MODE_DEFAULTS[DEFAULT_MODE]["learning_rate"], step=1e-4)
BATCH_SIZE_LABEL = "Batch size"
BATCH_SIZE = NumberBox(minimum=1, maximum=None, default=16, step=1)
WEIGHT_DECAY_LABEL = "Weight decay"
WEIGHT_DECAY = NumberBox(minimum=0.0, maximum=None, default=0.0)
WARMUP_LABEL = "Warmup (share of steps)"
WARMUP = NumberBox(minimum=0.0, maximum=0.5, default=0.1, step=0.05)
IMAGE_SIZE_LABEL = "Image size (0 = the model's)"
IMAGE_SIZE = NumberBox(minimum=0, maximum=None, default=0, step=1)  # 0: the model's own size
SEED_LABEL = "Seed"
SEED = NumberBox(minimum=None, maximum=None, default=42, step=1)
AUGMENT_LABEL = "Random crops and flips"
AUGMENT_INFO = "full fine-tune only; off when a flip changes the class"
PRECISION_LABEL = "Precision"
DEFAULT_PRECISION = "auto"
RUN_NAME_LABEL = "Run name"
RUN_NAME_PLACEHOLDER = "e.g. ants-vs-bees (empty: a timestamp)"

# The page's sections, in order, and the list of runs below them.
DATA_SECTION = "1. Your images"
SETTINGS_SECTION = "2. Settings"
TRAINING_SECTION = "3. Training"
RESULTS_SECTION = "4. What it learnt"
EARLIER_RUNS_SECTION = "Earlier runs"

ZIP_TAB = "Zip"
ZIP_LABEL = "A zip of class folders (optional train/ and val/)"
FOLDER_TAB = "Folder"
FOLDER_LABEL = "A folder with one sub-folder per class"
SERVER_PATH_TAB = "Path on this machine"
SERVER_PATH_LABEL = "Folder or zip on the machine running the app"
SERVER_PATH_PLACEHOLDER = "/data/my-photos"

SKIPPED_HEADERS = ("file", "why it was skipped")
PER_CLASS_HEADERS = ("class", "accuracy", "correct", "validation images")

REPO_LABEL = "Repository"
REPO_PLACEHOLDER = "your-name/ants-vs-bees"
TOKEN_LABEL = "Access token (write)"
TOKEN_INFO = "used for this upload only: never saved or logged"

CHECK_BUTTON = "Check data"
START_BUTTON = "Start training"
STOP_BUTTON = "Stop"
COUNTS_LABEL = "Images per class"
CLASS_AXIS, IMAGES_AXIS = "class", "images"  # the counts chart's axes
SPLIT_KEY = "split"  # the counts chart's colour: which side of the split the bar counts
# Each side's colour in the counts chart, and its key in words under the chart (a chart's own legend is easy to
# miss, or absent at some widths).
SPLIT_COLORS: dict[str, str] = {"train": "#1f77b4", "val": "#ff7f0e"}
COUNTS_KEY = "Blue: training images · orange: validation images (held out to measure accuracy)"
THUMBNAILS_LABEL = "A few of each class"
RUN_LABEL = "Run"  # the run on show
SKIPPED_LABEL = "Skipped files"
PER_CLASS_LABEL = "Accuracy per class"
CONFUSION_CAPTION = "Confusion matrix (rows: true class)"
TRUE_CLASS_LABEL = "True class"
PREDICTED_LABEL = "Predicted as"
SHOW_CELL_BUTTON = "Show these validation images"
COMPARE_SECTION = "Base model and trained model side by side"
BASE_MODEL_LABEL = "Base model"
TRAINED_MODEL_LABEL = "Trained model"
USE_BUTTON = "Use this model in Classify, Attention and Step by step"
PUSH_SECTION = "Push to the Hugging Face Hub"
PRIVATE_LABEL = "Private"
PUSH_BUTTON = "Push"
SHOW_RUN_BUTTON = "Show"
RESUME_BUTTON = "Resume"

# ---- offline start ------------------------------------------------------------------------------------------------

OFFLINE_BASE = "vit-small-scratch"  # the scratch preset: trains with nothing downloaded


def default_base(hub_available: bool) -> str:
    """What "Start from" holds when the page opens: a pretrained Hub model, or the scratch preset when the Hub
    could not be reached at start (a model that needs downloading would fail at the first click)."""
    return BASE_CHOICES[0] if hub_available else OFFLINE_BASE


# ---- webcam training (Teachable Machine style) ----------------------------------------------------------------------

WEBCAM_TAB = "Webcam"
WEBCAM_INTRO = (
    "Type a class name, start the webcam, and press Add a picture for each picture of it (or paste or upload "
    "pictures). Do the same for a second class, and more. Then train the head on what you collected and watch "
    "the model predict the webcam live."
)
CLASS_NAME_LABEL = "Class name"
CLASS_NAME_PLACEHOLDER = "e.g. thumbs up"
CAMERA_LABEL = "Webcam: press Record, then Add a picture as often as you like"
ADD_PICTURE_BUTTON = "Add a picture to the class"
CAMERA_NOT_RECORDING = "The webcam is not recording yet: open it and press Record, then add pictures."
CAMERA_EVERY_S = 0.25  # how often the collecting webcam sends a frame (the one "Add a picture" keeps)
CAMERA_LIMIT_S = 600  # a recording webcam stops after this long (press Record again to go on)
SNAPSHOT_COLLECT_LABEL = "Take a picture: it goes into the class named above"
CAPTURE_LABEL = "Or paste / upload a picture: it goes into the class named above"
COLLECTED_LABEL = "Collected images"
REMOVE_CLASS_LABEL = "Class to remove"
REMOVE_CLASS_BUTTON = "Remove this class"
TRAIN_COLLECTED_BUTTON = "Train head-only on these"
NOTHING_COLLECTED = "No images yet: type a class name and take a picture."
LIVE_SECTION = "Watch it predict, live"
LIVE_CAMERA_LABEL = "Webcam"
LIVE_PREDICTION_LABEL = "The trained model says"
SNAPSHOT_LABEL = "Take a picture for the trained model"
WEBCAM_RUN_NAME = "webcam"
LIVE_EVERY_S = 0.5  # how often a live webcam frame is classified: twice a second keeps up on a CPU

# ---- ONNX export ------------------------------------------------------------------------------------------------

EXPORT_ONNX_BUTTON = "Export to ONNX"
ONNX_FILE_LABEL = "The model as ONNX (.onnx)"
MORE_SETTINGS = "More settings"
