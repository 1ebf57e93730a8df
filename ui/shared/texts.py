"""What the front ends say: teaching paragraphs, titles, buttons, labels and messages, so both tell one story."""

APP_TAGLINE = (
    "See what Vision Transformers do: classify a photo, see where the model looks, caption it, and ask CLIP about "
    "it with your own labels."
)

# Shown once at the top when the Hub cannot be reached at start (no wifi in class): what still works, and how to
# get a model without a download.
OFFLINE_BANNER = (
    "**Offline: the Hugging Face Hub can't be reached**, so only models already on this machine work — your "
    "training runs and models downloaded before; the others are marked *needs the Hub*. No model yet? Open "
    "**Train**, start from `vit-small-scratch` on the example set (a minute or two), then press **Use this model**."
)

CLASSIFY_INTRO = """
A Vision Transformer cuts the photo into 16x16-pixel patches, turns each patch into a token,
adds a special **CLS** token, and lets every token attend to every other one through a stack of layers.
The label comes from the CLS token at the end. ([Dosovitskiy et al., 2020](https://arxiv.org/abs/2010.11929))
"""

ATTENTION_INTRO = """
Every layer mixes the tokens by attention. **Rollout** multiplies the layers' attention matrices
(each averaged with the identity, for the skip connections) to trace how much each patch flows into the
CLS token by the end ([Abnar & Zuidema, 2020](https://arxiv.org/abs/2005.00928)). **Gradient rollout**
weights each attention by its gradient for one class, so it shows where the evidence for *that* class is
([Chefer et al., 2021](https://arxiv.org/abs/2103.15679)). **Raw attention** shows one layer and head as it is.
"""

METHOD_CHOICES = [
    ("Rollout", "rollout"),
    ("Gradient rollout (one class)", "grad_rollout"),
    ("Raw attention", "attention"),
]
COLORMAPS = ["jet", "turbo", "viridis", "inferno", "magma", "plasma", "gray"]

MODEL_INFO = "Pick one, or type any Hugging Face image-classification id or the path of a local save_pretrained folder."

CAPTION_INTRO = """
A captioner pairs a ViT **encoder** (the photo as patch tokens) with a text **decoder** that writes one word at
a time. At each word the decoder looks back at the patches through **cross-attention**, so every word has a map
of where it came from. ([ViT-GPT2](https://huggingface.co/nlpconnect/vit-gpt2-image-captioning),
[BLIP, Li et al., 2022](https://arxiv.org/abs/2201.12086))
"""

CAPTION_MODEL_INFO = (
    "ViT-GPT2 or BLIP captioners: pick one, or type a Hugging Face id or a local save_pretrained folder."
)
PROMPT_INFO = {
    True: "BLIP continues your text, e.g. 'a photograph of'.",
    False: "This model has no text input (ViT-GPT2): pick a BLIP model to start the caption with your words.",
    None: "Only BLIP models take a prompt; ViT-GPT2 captions from the image alone.",
}

ZERO_SHOT_INTRO = """
CLIP learned from image-caption pairs to put a photo and a sentence describing it near each other. To classify
with **your own labels**, each label becomes a sentence ("a photo of a cat."), both towers turn image and
sentences into vectors, and the labels are ranked by cosine similarity, scaled and softmaxed. No training is
needed. ([Radford et al., 2021](https://arxiv.org/abs/2103.00020), [open_clip](https://github.com/mlfoundations/open_clip))
The map shows where the chosen label is in the photo ([Chefer et al., 2021](https://arxiv.org/abs/2103.15679)).
"""

CLIP_MODEL_INFO = (
    "An open_clip model name (with its pretrained weights on the right), a Hugging Face CLIP id "
    "such as openai/clip-vit-base-patch32, or local-dir:/path/to/open_clip/folder."
)
PRETRAINED_INFO = {
    True: "open_clip's weights for this model: a tag from its list, or the path of a checkpoint file.",
    False: "Not needed: this model brings its own weights.",
}
SINGLE_TEMPLATE = "single"  # the template mode whose template is the edited one; the others name a template set
TEMPLATE_CHOICES = [
    ("One template (edit it below)", SINGLE_TEMPLATE),
    ("OpenAI's 80 ImageNet templates", "openai"),
    ("open_clip's 7 simple templates", "simple"),
]

# ---- the names, buttons and labels both front ends draw -------------------------------------------------------

APP_TITLE = "ViT Studio"
CLASSIFY_TITLE = "Classify"
ATTENTION_TITLE = "Attention"
CAPTION_TITLE = "Caption"
ZERO_SHOT_TITLE = "Zero-shot"
TRAIN_TITLE = "Train"

ONE_IMAGE_TAB = "One image"
MANY_IMAGES_TAB = "Many images"
PHOTO_LABEL = "Photo"
MODEL_LABEL = "Model"
COLORMAP_LABEL = "Colormap"

CLASSIFY_BUTTON = "Classify"
CLASSIFY_ALL_BUTTON = "Classify all"
TOP_LABELS_TITLE = "Top labels"

METHOD_LABEL = "Method"
HEAD_FUSION_LABEL = "Head fusion"
EXPLAIN_BUTTON = "Explain"
OVERLAY_LABEL = "Where the model looks"
PREDICTIONS_LABEL = "Predictions"
PATCH_GRID_LABEL = "Patch grid"
MODEL_RIGHT_LABEL = "Model (right)"
METHOD_RIGHT_LABEL = "Method (right)"
COMPARE_BUTTON = "Compare"
SIDES = ("Left", "Right")  # the two sides of a comparison, as their pictures are captioned
EXTRACT_BUTTON = "Extract features"

CAPTIONER_LABEL = "Captioner"
DECODING_LABEL = "Decoding"
CAPTION_BUTTON = "Caption"
CAPTION_ALL_BUTTON = "Caption all"
MAP_WORDS_BUTTON = "Map the words"

CLIP_MODEL_LABEL = "CLIP model"
PRETRAINED_LABEL = "Pretrained weights"
LABELS_LABEL = "Labels"
TEMPLATES_LABEL = "Prompt templates"
ASK_CLIP_BUTTON = "Ask CLIP"
BEST_LABELS_TITLE = "Best labels"
LABEL_TO_MAP = "Label to map"
MAP_LABEL_BUTTON = "Map the label"

# ---- said the same way by both front ends --------------------------------------------------------------------

NO_IMAGE = "Upload or take a photo first (or pick an example)."
NO_FILES = "Upload some images or a zip of images first."
FILES_LABEL = "Images or zips of images"


def loading_text(model: str) -> str:
    """What a front end shows while a model that is not in memory yet loads (the engine's on_load)."""
    return f"Loading {model} (the first use may download it) ..."


EXPLAINER_INFO = "Any ViT-family id or local folder; DINO backbones work too."
TARGET_LABEL = "Class to explain (gradient rollout)"
TARGET_INFO = "empty = the top label"
NO_HEAD = "No classifier head (a backbone): maps only."
EMPTY_MAP = (
    "The map is empty: the discard ratio removed every path from the patches to the CLS token. Lower the discard ratio."
)
# How a map's raw values became colours (Explanation.scaling), said under the map and under the head grid.
SCALING_NOTES = {
    "max": "divided by the highest, so the top patch is the top colour.",
    "minmax": "stretched so the lowest is the bottom colour and the highest the top one (small differences show).",
}
HEAD_RANGES_NOTE = {
    "max": "Each head divided by its own highest value; raw attention from {low} to {high} across the heads.",
    "minmax": "Each head stretched from its own lowest to its highest value; raw attention from {low} to {high} "
    "across the heads.",
}
VIT_SEES_TITLE = "How ViT sees this image"
LAYER_STRIP_TITLE = "Rollout, layer by layer"
HEAD_GRID_TITLE = "Every head of the layer (CLS attention)"
SIDE_BY_SIDE_TITLE = "Side by side"
SIDE_BY_SIDE_NOTE = "The same photo through a second model, method or layer (the settings above are the left side)."
FEATURES_TITLE = "Features (the ViT as a feature extractor)"
FEATURES_NOTE = "The CLS embedding and the patch embeddings after the chosen layer (0 above = the last), as .npy."

PROMPT_LABEL = "Prompt (BLIP only)"
PROMPT_PLACEHOLDER = "a photograph of"
PROMPT_LEFT_OUT = f"{PROMPT_INFO[False]} The prompt was left out."
CAPTION_TO_MAP = "Caption to map"
WORD_MAPS_TITLE = "Where each word came from"

LABELS_INFO = "comma- or newline-separated, 2 to 1,000"
DEFAULT_TEMPLATE = "a photo of a {}."
TEMPLATE_LABEL = "Template ({} is the label)"
PER_TEMPLATE_LABEL = "Score under each template"
PER_TEMPLATE_TITLE = "Each template on its own (probability of the overall best labels)"
LABEL_MAP_TITLE = "Where is the label in the photo?"
LABEL_MAP_CAPTION = "Gradient-weighted attention rollout for the label"


def mapping_text(label: str) -> str:
    """What a front end shows while a zero-shot label is mapped."""
    return f"Mapping '{label}' ..."


TRAIN_INTRO = """
Teach a ViT your own classes from a folder of photos (one sub-folder per class). **Head only** keeps the
pretrained backbone frozen and trains just the last layer on its features, computed once: seconds per epoch,
and often enough. **Full fine-tune** lets every weight learn: slower, for data far from what the model has seen.
Training minimises the cross-entropy of the right class with AdamW, a short warmup, then a linear decay.
([Dosovitskiy et al., 2020](https://arxiv.org/abs/2010.11929), section 3.2 on fine-tuning)
"""

# The Train tab's example: generated, so it needs no download; it trains to full accuracy in seconds from scratch.
EXAMPLE_DATA_LABEL = "No photos at hand? The example: coloured shapes"
EXAMPLE_DATA_INFO = "120 generated pictures of circles, squares and triangles (40 of each)"

EMPTY_CAPTION = "(an empty caption: the model stopped at once)"
ZERO_SHOT_EXAMPLE_LABELS = "cat, dog, astronaut, rocket, cup of coffee, camera"


def space_runs_note(keep_runs_s: float) -> str:
    """What a Space visitor should know before training: how long their run stays, and that nobody else sees it."""
    return (
        f"On this Space your runs are yours alone, and each is removed {keep_runs_s / 3600:g} hours after it last "
        "changed (a stopped run can be resumed until then). Download the run's zip to keep the model."
    )


# ---- Train: what both front ends say around a run -------------------------------------------------------------

PICK_A_RUN_TO_RESUME = "Pick a stopped or interrupted run in the list first."
COMPARE_NOTE = (
    "Attention rollout of both models on the first image of the chosen cell. After head-only "
    "training the two are the same: the backbone, where attention lives, did not change."
)


def run_in_use(run_name: str) -> str:
    """After "Use this model": where the trained model now is."""
    return f"Classify, Attention and Step by step now use {run_name}."


def empty_cell(true_class: str, predicted_class: str) -> str:
    """A confusion-matrix cell with no image in it."""
    return f"No validation image of '{true_class}' was predicted as '{predicted_class}'."


def pushed(url: str) -> str:
    """The Hub upload's result, as a Markdown link."""
    return f"Pushed: [{url}]({url})"
