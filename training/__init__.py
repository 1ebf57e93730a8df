"""Fine-tuning, independent of any front end: data.py checks and splits the data, finetune.py trains, jobs.py runs
one training in the background, runs.py/access.py/disk.py/review.py keep and share the run folders."""

from training.access import (
    SESSIONS,
    Visitor,
    app_is_shared,
    find_run,
    kept_or_new_visitor_id,
    may_see,
    session_visitor,
    shared_model_folders,
    visible_runs,
    visitor,
)
from training.caption_data import CaptionData, CaptionPair, CaptionReport, load_caption_data, sample_pairs
from training.caption_examples import example_caption_zip, write_captioned_shapes, write_captioned_shapes_zip
from training.caption_model import SCRATCH_CAPTIONER, caption_token_lengths, caption_tokenizer
from training.caption_review import (
    CaptionPrediction,
    WordMapsBeforeAfter,
    caption_predictions,
    initial_captioner,
    word_maps_before_after,
)
from training.captioning import CAPTION_MODES, PREDICTIONS, CaptionTrainConfig, train_captioner
from training.collect import (
    MIN_PER_CLASS,
    Collection,
    check_class_name,
    check_ready,
    class_samples,
    collection_batch_size,
    read_collection,
    remove_class,
    save_sample,
    zip_collection,
)
from training.data import (
    DEFAULT_MAX_DATA_BYTES,
    DataError,
    DataReport,
    DataSource,
    ImageClassificationData,
    PathLike,
    PreparedData,
    Sample,
    Skipped,
    check_data,
    image_transforms,
    prepare_data,
)
from training.disk import disk_budget, tidy_runs
from training.events import (
    CaptionEvaluated,
    CaptionEvent,
    Evaluated,
    Event,
    Finished,
    Saved,
    Started,
    Step,
    Stopped,
    read_events,
)
from training.examples import example_data_zip
from training.finetune import TRAINING_PRECISIONS, FinetuneConfig, base_settings, finetune, resume_config
from training.jobs import (
    JobState,
    TrainingJob,
    current_job,
    is_training,
    start_new_run,
    start_training,
    stop_current,
    watch,
)
from training.onnx_export import OnnxExport, export_onnx
from training.review import cell_overlays, compare_base, push_to_hub
from training.rouge import CaptionScores, caption_scores
from training.runs import (
    CONFUSION_PNG,
    EVENTS_LOG,
    RunSummary,
    curves,
    curves_figure,
    format_duration,
    format_size,
    has_saved_model,
    last_evaluation,
    last_started,
    runs_root,
    zip_run,
)

# Submodules a front end may import from directly, beyond the names below, and why. Empty: ui/ imports from
# `training`.
FRONT_END_SUBMODULES: tuple[str, ...] = ()

__all__ = [
    # data
    "DEFAULT_MAX_DATA_BYTES",
    "DataError",
    "DataReport",
    "DataSource",
    "ImageClassificationData",
    "PathLike",
    "PreparedData",
    "Sample",
    "Skipped",
    "check_data",
    "example_data_zip",
    "image_transforms",
    "prepare_data",
    # image + caption pairs (captioner training)
    "CaptionData",
    "CaptionPair",
    "CaptionReport",
    "sample_pairs",
    "example_caption_zip",
    "load_caption_data",
    "write_captioned_shapes",
    "write_captioned_shapes_zip",
    # training
    "TRAINING_PRECISIONS",
    "FinetuneConfig",
    "base_settings",
    "finetune",
    "resume_config",
    # captioner training
    "CAPTION_MODES",
    "PREDICTIONS",
    "SCRATCH_CAPTIONER",
    "CaptionTrainConfig",
    "train_captioner",
    "caption_token_lengths",
    "caption_tokenizer",
    # after a captioner run
    "CaptionPrediction",
    "WordMapsBeforeAfter",
    "caption_predictions",
    "initial_captioner",
    "word_maps_before_after",
    "CaptionEvaluated",
    "CaptionEvent",
    "CaptionScores",
    "caption_scores",
    "Evaluated",
    "Event",
    "Finished",
    "Saved",
    "Started",
    "Step",
    "Stopped",
    # one run in the background
    "JobState",
    "TrainingJob",
    "current_job",
    "is_training",
    "start_new_run",
    "start_training",
    "stop_current",
    "watch",
    # run folders
    "CONFUSION_PNG",
    "EVENTS_LOG",
    "RunSummary",
    "curves",
    "curves_figure",
    "format_duration",
    "format_size",
    "has_saved_model",
    "last_evaluation",
    "last_started",
    "read_events",
    "runs_root",
    "zip_run",
    "disk_budget",
    "tidy_runs",
    # who may see and change a run
    "SESSIONS",
    "Visitor",
    "app_is_shared",
    "find_run",
    "kept_or_new_visitor_id",
    "may_see",
    "session_visitor",
    "shared_model_folders",
    "visible_runs",
    "visitor",
    # after a run
    "cell_overlays",
    "compare_base",
    "push_to_hub",
    "OnnxExport",
    "export_onnx",
    # images collected one at a time (webcam training)
    "MIN_PER_CLASS",
    "Collection",
    "check_class_name",
    "check_ready",
    "class_samples",
    "collection_batch_size",
    "read_collection",
    "remove_class",
    "save_sample",
    "zip_collection",
]
