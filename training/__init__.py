"""Fine-tuning, independent of any front end: data.py checks and splits the data, finetune.py trains."""
from training.data import (
    DataError,
    DataReport,
    ImageClassificationData,
    PreparedData,
    Sample,
    Skipped,
    check_data,
    image_transforms,
    prepare_data,
)

__all__ = [
    "DataError",
    "DataReport",
    "ImageClassificationData",
    "PreparedData",
    "Sample",
    "Skipped",
    "check_data",
    "image_transforms",
    "prepare_data",
]
