"""The Zero-shot tab's glue, for both front ends: the template choice, the pretrained box, per-template tables."""

from __future__ import annotations

from typing import Any, Sequence

from core import Prediction, pretrained_tags, takes_pretrained, template_scores
from ui.shared.texts import SINGLE_TEMPLATE
from ui.shared.widgets import BAR_CHART_LABELS

TEMPLATE_TABLE_LABELS = 8  # columns of a per-template table: the overall top labels
CHART_X, CHART_Y = "label", "probability"  # the bar chart's columns, named on its axes


def chosen_templates(mode: str, template: str) -> str:
    """What zero_shot's `templates` gets from a front end's choice: SINGLE_TEMPLATE means the edited template, any
    other mode names a template set ('openai', 'simple')."""
    return template if template_box_editable(mode) else mode


def template_box_editable(mode: str) -> bool:
    """Whether the single-template box takes typing: only when it is what is used (an ensemble brings its own)."""
    return mode == SINGLE_TEMPLATE


def pretrained_weights(model: str, pretrained: str | None) -> str | None:
    """The pretrained weights to load for what the boxes hold (an empty box is None); an open_clip name without
    them would score with random weights, so that is refused with the tags to pick from."""
    if pretrained or not takes_pretrained(model):
        return pretrained or None
    examples = ", ".join(pretrained_tags(model)[:3]) or "a checkpoint file"
    raise ValueError(
        f"Pick the pretrained weights for {model} (e.g. {examples}): without them CLIP's scores would be noise."
    )


def chart_columns(predictions: Sequence[Prediction]) -> dict[str, list]:
    """The bar chart's columns: the best BAR_CHART_LABELS labels and their probabilities."""
    shown = predictions[:BAR_CHART_LABELS]
    return {CHART_X: [p.label for p in shown], CHART_Y: [p.score for p in shown]}


def template_table(
    image: Any,
    labels: str | Sequence[str],
    *,
    model: str,
    pretrained: str | None,
    templates: str | Sequence[str] | None,
    predictions: Sequence[Prediction],
    top: int = TEMPLATE_TABLE_LABELS,
) -> tuple[list[str], list[list]]:
    """(columns, rows) of a table with one row per template: the probability it alone gives each of the
    overall best `top` labels (`predictions` is zero_shot's ranking for the same question)."""
    shown = [p.label for p in predictions[:top]]
    per_template = template_scores(image, labels, model=model, pretrained=pretrained, templates=templates)
    rows = []
    for text, ranking in per_template.items():
        scores = {p.label: p.score for p in ranking}
        rows.append([text, *(round(scores[label], 4) for label in shown)])
    return ["template", *shown], rows
