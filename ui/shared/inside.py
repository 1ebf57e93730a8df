"""The Inside tab as both front ends show it: each idea's plain introduction with its paper, and the weights warning."""

from __future__ import annotations

from pathlib import Path

INSIDE_TITLE = "Inside"
INSIDE_INTRO = (
    "Three ideas from past plain ViTs, each on your own photo: a ViT that learns by filling in hidden patches, "
    "features learnt without labels, and a ViT that gets faster by merging tokens as it goes deeper."
)

MAE_TITLE = "Masked autoencoding"
MAE_PAPER = "https://arxiv.org/abs/2111.06377"
MAE_INTRO = (
    "A masked autoencoder hides most of the patches (three in four by default) and learns to paint them back from "
    "the few it sees. The encoder only ever reads the visible patches, which makes pretraining cheap, and what it "
    "learns transfers to other tasks. He et al., 2021: "
    f"[Masked Autoencoders Are Scalable Vision Learners]({MAE_PAPER})."
)

FEATURES_TITLE = "Self-supervised features"
DINO_PAPER = "https://arxiv.org/abs/2104.14294"
DINOV2_PAPER = "https://arxiv.org/abs/2304.07193"
FEATURES_INTRO = (
    "DINO and DINOv2 learn patch features with no labels at all, by matching a student to a teacher across crops. "
    "Squeeze each patch's features to three numbers (PCA) and show them as colours: patches of the same part of an "
    "object get the same colour, and the first component alone separates object from background. Click a patch to "
    f"see which others the model thinks are alike. Caron et al., 2021: [DINO]({DINO_PAPER}); Oquab et al., 2023: "
    f"[DINOv2]({DINOV2_PAPER})."
)

MERGING_TITLE = "Token merging"
TOME_PAPER = "https://arxiv.org/abs/2210.09461"
MERGING_INTRO = (
    "A ViT spends the same work on every patch, sky or face. Token merging (ToMe) pairs up the most alike tokens "
    "after each layer's attention and averages r of them away, so deeper layers read fewer tokens and the model runs "
    f"faster, with no retraining. Bolya et al., 2023: [Token Merging: Your ViT But Faster]({TOME_PAPER})."
)

RANDOM_WEIGHTS_NOTE = (
    "This model's weights are not ones we recognise as trained (a local folder that is not a training run): if they "
    "are random, the pictures show the machinery working, not what a trained model has learnt."
)


def weights_note(model: str) -> str:
    """RANDOM_WEIGHTS_NOTE for a local folder that is neither a finished training run nor a downloaded Hub snapshot,
    else ''. A Hub id is taken as trained: that is what people publish."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return ""
    trained_here = (folder / "all_results.json").is_file() or (folder / "events.jsonl").is_file()
    from_the_hub = "snapshots" in folder.parts  # a folder inside the Hugging Face cache
    return "" if trained_here or from_the_hub else RANDOM_WEIGHTS_NOTE
