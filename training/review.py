"""After a run: its validation images with their predictions, per cell of the confusion matrix, and sharing."""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from core import classify

from .checkpoints import RUN_CONFIG, read_split
from .events import read_events
from .finetune import RESULTS
from .runs import CONFUSION_PNG, CURVES_PNG, EVENTS_LOG, _NOT_SHARED, last_evaluation

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
    tops = classify(paths, model=str(Path(run_dir).resolve()), top_k=1, batch_size=batch_size)
    return [ValPrediction(path, split.classes[sample.label], top[0].label, top[0].score)
            for path, sample, top in zip(paths, split.val, tops)]


def cell(predictions: Sequence[ValPrediction], true: str, predicted: str) -> list[ValPrediction]:
    """The images of one cell of the confusion matrix, most confident first."""
    chosen = [p for p in predictions if p.true == true and p.predicted == predicted]
    return sorted(chosen, key=lambda p: p.score, reverse=True)


# ---- the Hugging Face Hub ---------------------------------------------------------------------------------


def base_model(run_dir: str | Path) -> str | None:
    """The model a run started from (None when it was trained from scratch)."""
    config_path = Path(run_dir) / RUN_CONFIG
    if not config_path.is_file():
        return None
    settings = json.loads(config_path.read_text(encoding="utf-8"))
    return None if settings.get("config_name") else settings.get("model_name_or_path")


def model_card(run_dir: str | Path) -> str:
    """A README.md for the Hub: what was trained on what, the metrics, per-class accuracy, the confusion matrix."""
    run_dir = Path(run_dir)
    base = base_model(run_dir)
    metrics = json.loads((run_dir / RESULTS).read_text()) if (run_dir / RESULTS).is_file() else {}
    events = read_events(run_dir / EVENTS_LOG)
    evaluation = last_evaluation(events)
    split = read_split(run_dir)
    front = ["---", "library_name: transformers", "pipeline_tag: image-classification", "tags:", "- vit-studio"]
    if base:
        front.append(f"base_model: {base}")
    lines = [*front, "---", "", f"# {run_dir.name}", "",
             f"A ViT image classifier fine-tuned with ViT Studio on {len(split.train)} images of "
             f"{len(split.classes)} classes ({', '.join(split.classes)})"
             + (f", starting from `{base}`." if base else ", trained from scratch."), "",
             "## Results on the validation images", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
              for name, value in metrics.items()]
    if evaluation is not None:
        lines += ["", "| class | accuracy |", "| --- | --- |"]
        lines += [f"| {name} | {accuracy:.3f} |" for name, accuracy in zip(split.classes, evaluation.per_class)]
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
                  "| | " + " | ".join(split.classes) + " |", "|---" * (len(split.classes) + 1) + "|"]
        lines += [f"| **{name}** | " + " | ".join(str(count) for count in row) + " |"
                  for name, row in zip(split.classes, evaluation.confusion)]
    if (run_dir / CURVES_PNG).is_file():
        lines += ["", f"![Training curves]({CURVES_PNG})"]
    if (run_dir / CONFUSION_PNG).is_file():
        lines += ["", f"![Confusion matrix]({CONFUSION_PNG})"]
    return "\n".join(lines) + "\n"


def push_to_hub(run_dir: str | Path, repo_id: str, token: str, *, private: bool = True) -> str:
    """Upload the run's model, processor, results and a model card; returns the model's URL. The token is
    only handed to huggingface_hub for this call: never written to disk or to a log."""
    from huggingface_hub import HfApi

    if not repo_id or "/" not in repo_id.strip():
        raise ValueError("Give the repository as user/name (or org/name), e.g. 'me/ants-vs-bees'.")
    if not token or not token.strip():
        raise ValueError("Paste a Hugging Face access token with write permission (huggingface.co/settings/tokens).")
    run_dir = Path(run_dir)
    api = HfApi(token=token.strip())
    with tempfile.TemporaryDirectory() as staging:
        folder = Path(staging) / run_dir.name
        # Left out: resume state, and the files that name paths on this machine (the split, the settings, the
        # event log); the model card carries the results instead.
        shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns(*_NOT_SHARED, "*.tmp", "split.json",
                                                                        "run_config.json", EVENTS_LOG))
        (folder / "README.md").write_text(model_card(run_dir), encoding="utf-8")
        try:
            url = api.create_repo(repo_id.strip(), private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id.strip(), folder_path=folder, repo_type="model",
                              commit_message=f"Upload {run_dir.name} from ViT Studio")
        except Exception as error:  # noqa: BLE001 - network, permission, name: one sentence for the user
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"Could not push to {repo_id}: {first}") from error
    return str(url)


# ---- a confusion cell as pictures ---------------------------------------------------------------------------

CELL_IMAGES = 12  # overlays are an explain() each; a dozen answers "what does it confuse" without a wait


def cell_overlays(run_dir: str | Path, true: str, predicted: str,
                  limit: int = CELL_IMAGES) -> list[tuple["Image.Image", str]]:
    """The validation images of one confusion-matrix cell, most confident first, each with the trained
    model's attention rollout and a caption 'file: predicted (score)'. Empty when the cell is."""
    from core import explain

    model = str(Path(run_dir).resolve())
    chosen = cell(validation_predictions(run_dir), true, predicted)[:limit]
    return [(explain(item.path, model=model).overlay, f"{item.path.name}: {item.predicted} ({item.score:.0%})")
            for item in chosen]


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
