"""A run's files on disk, checked before a resume trusts them: settings, split, training state, weights, optimizer."""

from __future__ import annotations

import json
import math
import random
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import DataReport, PreparedData, Sample

CHECKPOINT = "checkpoint"
TRAINER_STATE = "trainer_state.json"
ACCELERATE_STATE = "accelerate"  # accelerate's save_state folder inside the checkpoint
RUN_CONFIG = "run_config.json"
SPLIT = "split.json"

# The settings every run_config.json has held; without them a "resumed" run would train with other settings.
_SAVED_SETTINGS = ("mode", "num_train_epochs", "learning_rate", "per_device_train_batch_size", "seed")


@dataclass(frozen=True)
class TrainingState:
    """Where a run is: enough to resume it and to report its results."""

    step: int = 0
    epoch: int = 0  # epochs completed
    loss_sum: float = 0.0
    eval_loss: float | None = None
    eval_accuracy: float | None = None

    def after_step(self, loss: float) -> "TrainingState":
        return replace(self, step=self.step + 1, loss_sum=self.loss_sum + loss)

    def metrics(self, runtime_s: float, epochs: int, images_seen: int) -> dict[str, float | None]:
        """The example scripts' all_results.json keys; runtime and speed cover this session (after a resume,
        the part since the resume)."""
        return {
            "epoch": float(epochs),
            "train_loss": self.loss_sum / max(self.step, 1),
            "train_runtime": round(runtime_s, 3),
            "train_samples_per_second": round(images_seen / runtime_s, 3) if runtime_s > 0 else 0.0,
            "eval_loss": self.eval_loss,
            "eval_accuracy": self.eval_accuracy,
        }

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "loss_sum": self.loss_sum,
            "eval_loss": self.eval_loss,
            "eval_accuracy": self.eval_accuracy,
        }


def damaged(run_dir: Path, path: Path) -> ValueError:
    """The error for a run file that cannot be used."""
    return ValueError(f"This checkpoint is damaged: {_run_file(run_dir, path)}; start a new run or pick another.")


def _run_file(run_dir: Path, path: Path) -> str:
    """A file of a run as a user knows it: from the run's folder on (run-1/checkpoint/optimizer.bin)."""
    try:
        return (Path(run_dir.name) / path.relative_to(run_dir)).as_posix()
    except ValueError:
        return str(path)


def _read_json(path: Path, run_dir: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    # UnicodeDecodeError and JSONDecodeError are ValueErrors; RecursionError: brackets nested thousands deep.
    except (OSError, ValueError, RecursionError) as error:
        raise damaged(run_dir, path) from error


def read_saved_settings(run_dir: Path) -> dict[str, Any]:
    """run_config.json's settings, holding at least the ones every run has saved; else a ValueError naming it.
    (Whether they make a usable config is for the caller, which knows the config.)"""
    path = run_dir / RUN_CONFIG
    settings = _read_json(path, run_dir)
    if not isinstance(settings, dict) or not all(name in settings for name in _SAVED_SETTINGS):
        raise damaged(run_dir, path)
    return settings


def read_split(output_dir: str | Path) -> PreparedData:
    """A run's data as it was split for training (no files are read again); a damaged split.json is a
    ValueError naming it."""
    output_dir = Path(output_dir)
    split = _read_json(output_dir / SPLIT, output_dir)
    if not _is_split(split):
        raise damaged(output_dir, output_dir / SPLIT)
    classes = tuple(split["classes"])
    train = tuple(Sample(Path(path), label) for path, label in split["train"])
    val = tuple(Sample(Path(path), label) for path, label in split["val"])

    def counts(samples: tuple[Sample, ...]) -> tuple[int, ...]:
        return tuple(sum(sample.label == index for sample in samples) for index in range(len(classes)))

    report = DataReport(
        classes=classes,
        train_counts=counts(train),
        val_counts=counts(val),
        skipped=(),
        warnings=(),
        split="as the run split it",
        examples=(),
    )
    return PreparedData(root=Path(split["root"]), classes=classes, train=train, val=val, report=report)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_split(split: Any) -> bool:
    """split.json as finetune.write_run_files writes it: the root, two or more distinct class names, and [path, label]
    pairs whose labels index the classes (the training part not empty)."""
    if not isinstance(split, dict) or not isinstance(split.get("root"), str):
        return False
    classes = split.get("classes")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(name, str) for name in classes)
        or len(set(classes)) != len(classes)
    ):
        return False

    def samples(part: Any) -> bool:
        return isinstance(part, list) and all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and _is_count(pair[1])
            and pair[1] < len(classes)
            for pair in part
        )

    return samples(split.get("train")) and samples(split.get("val")) and bool(split["train"])


def read_trainer_state(run_dir: Path) -> TrainingState:
    """checkpoint/trainer_state.json as a TrainingState; a damaged one is a ValueError naming it."""
    path = run_dir / CHECKPOINT / TRAINER_STATE
    fields = _read_json(path, run_dir)
    try:
        state = TrainingState(**fields)
    except TypeError as error:  # not an object, or other keys
        raise damaged(run_dir, path) from error
    if not (
        _is_count(state.step)
        and _is_count(state.epoch)
        and _is_number(state.loss_sum)
        and all(value is None or _is_number(value) for value in (state.eval_loss, state.eval_accuracy))
    ):
        raise damaged(run_dir, path)
    return state


def check_checkpoint(run_dir: Path) -> None:
    """Every file a resume loads from run_dir/checkpoint, checked before a model is built from them: the training
    state, the model's config, processor and weights, and accelerate's weights, optimizer and schedule. (The
    random state is not: one that cannot be restored is a warning when it is loaded, not a reason to stop.)"""
    checkpoint = run_dir / CHECKPOINT
    read_trainer_state(run_dir)
    for name in ("config.json", "preprocessor_config.json"):
        if not isinstance(_read_json(checkpoint / name, run_dir), dict):
            raise damaged(run_dir, checkpoint / name)
    # save_pretrained writes one weights file, or shards and their index.
    if not any((checkpoint / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        raise damaged(run_dir, checkpoint / "model.safetensors")
    states = checkpoint / ACCELERATE_STATE
    for name in ("model.safetensors", "optimizer.bin", "scheduler.bin"):
        if not (states / name).is_file():
            raise damaged(run_dir, states / name)
    for folder in (checkpoint, states):
        for path in sorted(folder.iterdir()):
            if path.suffix == ".safetensors" and not _readable_safetensors(path):
                raise damaged(run_dir, path)
            if path.suffix == ".bin" and not _whole_torch_file(path):
                raise damaged(run_dir, path)


def _readable_safetensors(path: Path) -> bool:
    """A safetensors file whose header parses and covers the whole file (a cut-off or overwritten file fails),
    holding at least one tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            return bool(list(weights.keys()))
    except Exception:  # noqa: BLE001 - SafetensorError, OSError, ...: unreadable either way
        return False


def _whole_torch_file(path: Path) -> bool:
    """A torch.save zip archive (with its pickle) whose every member matches its CRC: torch.load itself reads
    overwritten bytes back as other numbers without a word."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist()) and archive.testzip() is None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False


# ---- after accelerate has loaded the checkpoint ----------------------------------------------------------------


def damaged_states(run_dir: Path, states: Path) -> ValueError:
    """The error for accelerate's files in `states` that passed check_checkpoint yet did not load together: it
    names the first file that does not load on its own, else the folder."""
    return damaged(run_dir, _unloadable_file(states) or states)


def random_state_note(run_dir: Path, states: Path, process_index: int) -> str | None:
    """The sentence for a user when this process's random state was not restored from `states` (None when it was):
    accelerate skips one it cannot use with only an info line."""
    if _random_state_restored(states, process_index):
        return None
    return (
        f"The random state in {_run_file(run_dir, states / f'random_states_{process_index}.pkl')} could not be "
        "restored, so the random crops, flips and dropout after the resume differ from an uninterrupted run's "
        "(the data order does not)."
    )


def _unloadable_file(states: Path) -> Path | None:
    """The first of accelerate's files in `states` that does not load on its own (None: each does)."""
    from accelerate.utils import load
    from safetensors.torch import load_file

    for path in sorted(states.iterdir()):
        try:
            if path.suffix == ".safetensors":
                load_file(path)
            elif path.suffix == ".bin":
                load(path, map_location="cpu")
        except Exception:  # noqa: BLE001 - whatever the loader raises, this file is the damaged one
            return path
    return None


def _random_state_restored(states: Path, process_index: int) -> bool:
    """Whether this process's Python, numpy and torch random states are now the ones saved in `states`."""
    from accelerate.utils import load

    try:
        saved = load(states / f"random_states_{process_index}.pkl")
        now = {
            "random_state": random.getstate(),
            "numpy_random_seed": np.random.get_state(),
            "torch_manual_seed": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            now["torch_cuda_manual_seed"] = torch.cuda.get_rng_state_all()
        return all(_same_state(value, saved[name]) for name, value in now.items())
    except Exception:  # noqa: BLE001 - no file, not a pickle, other keys: not restored
        return False


def _same_state(one: Any, other: Any) -> bool:
    if isinstance(one, torch.Tensor) or isinstance(other, torch.Tensor):
        return isinstance(one, torch.Tensor) and isinstance(other, torch.Tensor) and torch.equal(one, other)
    if hasattr(one, "shape") or hasattr(other, "shape"):  # numpy arrays
        return bool(np.array_equal(one, other))
    if isinstance(one, (tuple, list)) and isinstance(other, (tuple, list)):
        return len(one) == len(other) and all(_same_state(a, b) for a, b in zip(one, other))
    return one == other
