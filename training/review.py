"""After a run: its validation images with their predictions, per cell of the confusion matrix, and sharing."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, cast

from core import Prediction, classify
from core.images import ImageInput

from .checkpoints import read_split
from .model_card import base_model, model_card
from .runs import _NOT_SHARED, EVENTS_LOG

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ValPrediction:
    """One validation image as the trained model sees it."""

    path: Path
    true: str
    predicted: str
    score: float  # the model's confidence in `predicted`

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


def validation_predictions(run_dir: str | Path, batch_size: int = 32) -> list[ValPrediction]:
    """Every validation image of the run, classified by the run's saved model (in the app's precision)."""
    split = read_split(run_dir)
    paths = [sample.path for sample in split.val]
    if not paths:
        return []
    images: list[ImageInput] = list(paths)
    tops = cast(
        list[list[Prediction]],  # a list in gives one list of predictions per image
        classify(images, model=str(Path(run_dir).resolve()), top_k=1, batch_size=batch_size),
    )
    return [
        ValPrediction(path, split.classes[sample.label], top[0].label, top[0].score)
        for path, sample, top in zip(paths, split.val, tops)
    ]


def cell(predictions: Sequence[ValPrediction], true: str, predicted: str) -> list[ValPrediction]:
    """The images of one cell of the confusion matrix, most confident first."""
    chosen = [p for p in predictions if p.true == true and p.predicted == predicted]
    return sorted(chosen, key=lambda p: p.score, reverse=True)


# ---- the Hugging Face Hub ---------------------------------------------------------------------------------


def push_to_hub(run_dir: str | Path, repo_id: str, token: str, *, private: bool = True) -> str:
    """Upload the run's model, processor, results and a model card; returns the model's URL. The token is
    only handed to huggingface_hub for this call: never written to disk or to a log."""
    from huggingface_hub import HfApi

    if not repo_id or "/" not in repo_id.strip():
        raise ValueError("Give the repository as user/name (or org/name), e.g. 'me/ants-vs-bees'.")
    check_repo_name(repo_id.strip())
    if not token or not token.strip():
        raise ValueError("Paste a Hugging Face access token with write permission (huggingface.co/settings/tokens).")
    run_dir = Path(run_dir)
    api = HfApi(token=token.strip())
    with tempfile.TemporaryDirectory() as staging:
        folder = Path(staging) / run_dir.name
        # Left out: resume state, and the files that name paths on this machine (the split, the settings, the
        # event log); the model card carries the results instead.
        shutil.copytree(
            run_dir,
            folder,
            ignore=shutil.ignore_patterns(*_NOT_SHARED, "*.tmp", "split.json", "run_config.json", EVENTS_LOG),
        )
        (folder / "README.md").write_text(model_card(run_dir, repo_id=repo_id.strip()), encoding="utf-8")
        try:
            url = api.create_repo(repo_id.strip(), private=private, exist_ok=True, repo_type="model")
            api.upload_folder(
                repo_id=repo_id.strip(),
                folder_path=folder,
                repo_type="model",
                commit_message=f"Upload {run_dir.name} from ViT Studio",
            )
        except Exception as error:  # noqa: BLE001 - network, permission, name: one sentence for the user
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"Could not push to {repo_id}: {first}") from error
    return str(url)


def check_repo_name(repo_id: str) -> None:
    """Refuse a repository name the Hub would refuse, saying what a valid one looks like (huggingface_hub's own
    message speaks of regular expressions and chars)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ValueError(
            f"'{repo_id}' is not a valid repository name. Use user/name (or org/name): letters, digits, '-', '_' "
            "and '.', no spaces, not starting or ending with '-' or '.', no '--' or '..', at most 96 characters; "
            "e.g. 'me/ants-vs-bees'."
        ) from None


# ---- a confusion cell as pictures ---------------------------------------------------------------------------

CELL_IMAGES = 12  # overlays are an explain() each; a dozen answers "what does it confuse" without a wait


def cell_overlays(
    run_dir: str | Path, true: str, predicted: str, limit: int = CELL_IMAGES
) -> list[tuple["Image.Image", str]]:
    """The validation images of one confusion-matrix cell, most confident first, each with the trained
    model's attention rollout and a caption 'file: predicted (score)'. Empty when the cell is."""
    from core import explain

    model = str(Path(run_dir).resolve())
    chosen = cell(validation_predictions(run_dir), true, predicted)[:limit]
    return [
        (explain(item.path, model=model).overlay, f"{item.path.name}: {item.predicted} ({item.score:.0%})")
        for item in chosen
    ]


def compare_base(run_dir: str | Path, true: str, predicted: str) -> tuple["Image.Image", "Image.Image"]:
    """The base model's and the trained model's attention rollout on the first image of a cell."""
    from core import explain

    base = base_model(run_dir)
    if base is None:
        raise ValueError("This run was trained from scratch: there is no base model to compare with.")
    chosen = cell(validation_predictions(run_dir), true, predicted)
    if not chosen:
        raise ValueError("That cell is empty: pick a true class and a prediction that occur together.")
    trained = str(Path(run_dir).resolve())
    return explain(chosen[0].path, model=base).overlay, explain(chosen[0].path, model=trained).overlay
