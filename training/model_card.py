"""The model card a run takes to the Hugging Face Hub: its README.md, with YAML front matter.

The one place in training/ that writes Markdown: it is the file format the Hub renders, not a page of ours."""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoints import RUN_CONFIG, read_split
from .events import read_events
from .finetune import RESULTS
from .runs import CONFUSION_PNG, CURVES_PNG, EVENTS_LOG, last_evaluation


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
    lines = [
        *front,
        "---",
        "",
        f"# {run_dir.name}",
        "",
        f"A ViT image classifier fine-tuned with ViT Studio on {len(split.train)} images of "
        f"{len(split.classes)} classes ({', '.join(split.classes)})"
        + (f", starting from `{base}`." if base else ", trained from scratch."),
        "",
        "## Results on the validation images",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in metrics.items()
    ]
    if evaluation is not None:
        lines += ["", "| class | accuracy |", "| --- | --- |"]
        lines += [f"| {name} | {accuracy:.3f} |" for name, accuracy in zip(split.classes, evaluation.per_class)]
        lines += [
            "",
            "Confusion matrix (rows: true class, columns: predicted):",
            "",
            "| | " + " | ".join(split.classes) + " |",
            "|---" * (len(split.classes) + 1) + "|",
        ]
        lines += [
            f"| **{name}** | " + " | ".join(str(count) for count in row) + " |"
            for name, row in zip(split.classes, evaluation.confusion)
        ]
    if (run_dir / CURVES_PNG).is_file():
        lines += ["", f"![Training curves]({CURVES_PNG})"]
    if (run_dir / CONFUSION_PNG).is_file():
        lines += ["", f"![Confusion matrix]({CONFUSION_PNG})"]
    return "\n".join(lines) + "\n"
