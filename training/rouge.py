"""Scores of generated captions against their references: ROUGE-1/2/L (rouge-score) and BLEU (sacrebleu), in percent."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class CaptionScores:
    """Corpus scores in percent (0-100); per_image_rougeL in the order the captions were given."""

    rouge1: float
    rouge2: float
    rougeL: float
    bleu: float
    per_image_rougeL: tuple[float, ...]


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    # Stemming as the transformers summarization/captioning examples do (evaluate's rouge uses the same scorer).
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_of(generated: str, references: Sequence[str]) -> dict[str, float]:
    """The F-measure of each ROUGE type in percent against the best-matching reference (the usual way with several
    references: an image is not penalised for differing from the captions it does not echo)."""
    if not references:
        raise ValueError("A generated caption needs at least one reference caption to be scored against.")
    best = dict.fromkeys(ROUGE_TYPES, 0.0)
    for reference in references:
        scores = _scorer().score(reference, generated)
        for name in ROUGE_TYPES:
            best[name] = max(best[name], 100.0 * scores[name].fmeasure)
    return best


def caption_scores(generated: Sequence[str], references: Sequence[Sequence[str]]) -> CaptionScores:
    """ROUGE (mean over images of the best reference's score) and corpus BLEU, for captions aligned with their
    references."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated captions for {len(references)} sets of references.")
    if not generated:
        return CaptionScores(0.0, 0.0, 0.0, 0.0, ())
    per_image = [rouge_of(text, refs) for text, refs in zip(generated, references)]
    means = {name: sum(scores[name] for scores in per_image) / len(per_image) for name in ROUGE_TYPES}
    return CaptionScores(
        rouge1=means["rouge1"],
        rouge2=means["rouge2"],
        rougeL=means["rougeL"],
        bleu=_bleu(generated, references),
        per_image_rougeL=tuple(scores["rougeL"] for scores in per_image),
    )


def _bleu(generated: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    import sacrebleu

    # sacrebleu wants reference streams of equal length: an image with fewer references repeats its first one,
    # which changes nothing (BLEU clips n-gram counts by their maximum over the references).
    streams = max(len(refs) for refs in references)
    reference_streams = [[refs[k] if k < len(refs) else refs[0] for refs in references] for k in range(streams)]
    return float(sacrebleu.corpus_bleu(list(generated), reference_streams).score)
