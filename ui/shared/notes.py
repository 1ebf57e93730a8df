"""Teacher notes: one short "what to notice" per picture, shown under it in both front ends (and hideable)."""

from __future__ import annotations

NOTES_TOGGLE_LABEL = "Teacher notes (what to notice)"
NOTES_TOGGLE_INFO = "Show a short “what to notice” under each picture."
PRESENTATION_TOGGLE_LABEL = "Presentation mode (large type)"
PRESENTATION_TOGGLE_INFO = "Large type for a projector."
NOTE_PREFIX = "What to notice:"

# Keyed by the picture they sit under. A key that is not here fails loudly (KeyError) when the page is built,
# so a typo never shows an empty note to a class.
NOTES: dict[str, str] = {
    "classify-labels": (
        "the scores add up to 1 over all the model's classes, so a confident model puts almost everything on one "
        "label. A photo of something the model was never trained on still gets labels — from its own list."
    ),
    "attention-overlay": (
        "rollout follows attention from the CLS token back through every layer. Warm colours are the patches "
        "that fed the answer most; they often sit on the object, but sometimes on the background that gives it away."
    ),
    "patch-grid": (
        "this is all the model ever sees: a grid of small square patches, each flattened into one token. "
        "Nothing tells it which patch is next to which except the position embeddings it learned."
    ),
    "layer-strip": (
        "early layers attend broadly or to neighbours; later layers gather onto the few patches that decide the "
        "class. Compare the first and last tile."
    ),
    "head-grid": (
        "heads in the same layer look at different things: some stay local, some attend to the whole image. "
        "Min–max scaling stretches each tile, so read the value range before comparing colours."
    ),
    "patch-click": (
        "a patch's row (where it looks) is often its own neighbourhood in early layers and the object in later "
        "ones; its column (who looks at it) shows whether the rest of the image uses it."
    ),
    "caption-words": (
        "each word has its own map: nouns usually light up their object, while small words (a, of, the) spread "
        "out or look at the whole image."
    ),
    "zero-shot": (
        "CLIP was never trained on your labels. It compares the photo with each sentence you typed, so wording "
        "matters: try “a photo of a cat” against “cat”."
    ),
    "train-curve": (
        "training loss should fall step by step; validation accuracy is measured on photos the model never "
        "trains on. If training loss falls while validation gets worse, the model is memorising."
    ),
    "webcam-live": (
        "the model only knows the classes you gave it, so it always picks one of them — even for something "
        "it has never seen. Show it a new object and watch which class it chooses."
    ),
}


def note(key: str) -> str:
    """The "what to notice" sentence for one picture."""
    return NOTES[key]


def note_markdown(key: str) -> str:
    return f"**{NOTE_PREFIX}** {note(key)}"
