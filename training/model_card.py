"""The model card a run takes to the Hugging Face Hub: its README.md, with YAML front matter.

The one place in training/ that writes Markdown: it is the file format the Hub renders, not a page of ours."""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoints import RUN_CONFIG, read_split
from .events import read_events
from .finetune import RESULTS
from .runs import CONFUSION_PNG, CURVES_PNG, EVENTS_LOG, last_evaluation, run_task


def base_model(run_dir: str | Path) -> str | None:
    """The model a run started from (None when it was trained from scratch)."""
    config_path = Path(run_dir) / RUN_CONFIG
    if not config_path.is_file():
        return None
    settings = json.loads(config_path.read_text(encoding="utf-8"))
    if settings.get("task") == "caption":  # a captioner keeps config_name set while it continues another
        return settings.get("model_name_or_path") or None
    return None if settings.get("config_name") else settings.get("model_name_or_path")


def model_card(run_dir: str | Path, *, repo_id: str | None = None) -> str:
    """A README.md for the Hub: what was trained on what, the metrics, per-class accuracy, the confusion matrix (a
    classifier), or ROUGE and example captions (a captioner)."""
    run_dir = Path(run_dir)
    if run_task(run_dir, ()) == "caption":
        return caption_model_card(run_dir, repo_id=repo_id)
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


# (results key, how the card names it): a captioner's scores first, in the units the run wrote them (percent).
_CAPTION_METRICS = (
    ("eval_rouge1", "ROUGE-1"),
    ("eval_rouge2", "ROUGE-2"),
    ("eval_rougeL", "ROUGE-L"),
    ("eval_bleu", "BLEU"),
    ("eval_loss", "validation loss"),
    ("train_loss", "training loss"),
    ("train_runtime", "training time (s)"),
)
EXAMPLE_CAPTIONS = 5


def caption_model_card(run_dir: Path, *, repo_id: str | None = None) -> str:
    """A captioner's README.md: its start, data size and settings, ROUGE (also as model-index results, which the
    Hub shows in the model's sidebar), and a few validation captions beside their references."""
    settings = json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / RESULTS).read_text()) if (run_dir / RESULTS).is_file() else {}
    base = base_model(run_dir)
    encoder, decoder = settings.get("encoder_model_name_or_path"), settings.get("decoder_model_name_or_path")
    split = json.loads((run_dir / "split.json").read_text(encoding="utf-8"))
    train_images, val_images = len(split.get("train", ())), len(split.get("val", ()))
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-to-text",
        "tags:",
        "- vit-studio",
        "- image-captioning",
    ]
    if base:
        front.append(f"base_model: {base}")
    scored = [(key, name) for key, name in _CAPTION_METRICS[:4] if isinstance(metrics.get(key), (int, float))]
    if scored:
        front += ["model-index:", f"- name: {run_dir.name}", "  results:", "  - task:", "      type: image-to-text"]
        front += ["    dataset:", "      name: validation images", "      type: imagefolder", "    metrics:"]
        for key, name in scored:
            front += [
                f"    - type: {key.removeprefix('eval_').lower()}",
                f"      name: {name}",
                f"      value: {metrics[key]}",
            ]
    if base:
        start = f"continuing `{base}`"
    elif encoder and decoder:
        start = f"built from the image encoder `{encoder}` and the text decoder `{decoder}`"
    else:
        start = f"from scratch (`{settings.get('config_name')}`, a tokenizer trained on the captions)"
    lines = [
        *front,
        "---",
        "",
        f"# {run_dir.name}",
        "",
        f"An image captioner (a ViT encoder and a GPT-2 decoder) trained with ViT Studio on {train_images} images, "
        f"{start}; scored on {val_images} held-out images with captions it generated "
        f"({settings.get('num_beams', 1)} beam(s)).",
        "",
        f"Settings: {settings.get('num_train_epochs')} epochs, learning rate {settings.get('learning_rate')}, batch "
        f"size {settings.get('per_device_train_batch_size')}, mode `{settings.get('mode')}`.",
        "",
        "## Results on the validation images",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [
        f"| {name} | {metrics[key]:.2f} |"
        for key, name in _CAPTION_METRICS
        if isinstance(metrics.get(key), (int, float))
    ]
    examples = _example_captions(run_dir)
    if examples:
        lines += ["", "## Example captions", "", "| reference | generated | ROUGE-L |", "| --- | --- | --- |"]
        lines += [
            f"| {_cell(reference)} | {_cell(generated)} | {rouge:.1f} |" for reference, generated, rouge in examples
        ]
    if (run_dir / CURVES_PNG).is_file():
        lines += ["", f"![Training curves]({CURVES_PNG})"]
    lines += [
        "",
        "## Use it",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'captioner = pipeline("image-to-text", model="{repo_id or run_dir.name}")',
        'captioner("photo.jpg")',
        "```",
    ]
    return "\n".join(lines) + "\n"


def _example_captions(run_dir: Path) -> list[tuple[str, str, float]]:
    path = run_dir / "predictions.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:EXAMPLE_CAPTIONS]]
    return [(row["reference"], row["generated"], float(row["rougeL"])) for row in rows]


def _cell(text: str) -> str:
    """Caption text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
