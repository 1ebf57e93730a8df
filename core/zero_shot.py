"""Zero-shot classification with open_clip: any labels, prompt templates, models and text embeddings cached."""
from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
from tqdm.auto import tqdm

from .images import ImageInput, load_images
from .models import ModelCache, ModelLoadError, log, pick_device, pick_dtype
from .types import Prediction

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
MAX_LABELS = 1000
TEMPLATE_SETS = ("openai", "simple")

# A CLIP ViT-B/32 costs ~600 MB in fp32; two lets a user compare models without reloading.
MODEL_CACHE_SIZE = int(os.environ.get("VIT_STUDIO_CLIP_CACHE", 2))
# Each entry is (templates, labels, dim) floats: 80 templates x 1000 labels x 512 is 160 MB at worst,
# a few labels x one template is a few KB, which is the common case.
TEXT_CACHE_SIZE = 32
TEXT_BATCH_SIZE = 256

# open_clip's names for "the whole model in this dtype"; its plain "bf16" keeps some layers in fp32 but then
# needs inputs in a per-tower dtype, which timm towers do not expose uniformly.
_OPEN_CLIP_PRECISION = {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}
_SCHEMAS = ("hf-hub:", "local-dir:")


@dataclass(frozen=True)
class LoadedClip:
    """An open_clip model with its inference transform and tokenizer; `key` identifies it in the caches."""

    key: tuple
    model: Any
    preprocess: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    currsize: int
    maxsize: int


_models = ModelCache(MODEL_CACHE_SIZE)
_text: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_text_lock = threading.Lock()
_text_stats = {"hits": 0, "misses": 0}


def zero_shot(
    images: ImageInput | list[ImageInput],
    labels: str | Sequence[str],
    model: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    templates: str | Sequence[str] | None = None,
    *,
    batch_size: int = 16,
    device: str | None = None,
    precision: str | None = None,
) -> list[Prediction] | list[list[Prediction]]:
    """Every label scored for each image, best first, scores summing to 1. One image in gives one list;
    a list in gives a list of lists."""
    single = not isinstance(images, (list, tuple))
    label_list = check_labels(labels)
    template_list = resolve_templates(templates)
    pil_images = load_images(images)
    loaded = load_clip(model, pretrained, device=device, precision=precision)
    text = ensemble(text_embeddings(loaded, label_list, template_list))
    probabilities = label_probabilities(loaded, encode_images(loaded, pil_images, batch_size), text)
    results = [ranked(row, label_list) for row in probabilities]
    return results[0] if single else results


def template_scores(
    image: ImageInput,
    labels: str | Sequence[str],
    model: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    templates: str | Sequence[str] | None = "openai",
    *,
    device: str | None = None,
    precision: str | None = None,
) -> dict[str, list[Prediction]]:
    """For one image, the labels' scores under each template on its own (template -> best-first list),
    to show which prompts sway an ensemble."""
    label_list = check_labels(labels)
    template_list = resolve_templates(templates)
    loaded = load_clip(model, pretrained, device=device, precision=precision)
    per_template = text_embeddings(loaded, label_list, template_list)
    image_embedding = encode_images(loaded, load_images(image), batch_size=1)
    return {
        template: ranked(label_probabilities(loaded, image_embedding, per_template[index])[0], label_list)
        for index, template in enumerate(template_list)
    }


# ---- labels and templates -------------------------------------------------------------------------------

def parse_labels(text: str) -> list[str]:
    """Labels from one string, separated by commas or newlines; surrounding spaces and empty items dropped."""
    return [part.strip() for part in re.split(r"[,\n\r]", text) if part.strip()]


def check_labels(labels: str | Sequence[str]) -> list[str]:
    """The labels as a checked list: at least two, at most MAX_LABELS, no duplicates, no empty ones."""
    if isinstance(labels, str):
        label_list = parse_labels(labels)
    else:
        label_list = [str(label).strip() for label in labels]
        label_list = [label for label in label_list if label]
    if not label_list:
        raise ValueError("No labels given: type the candidate labels, separated by commas or new lines.")
    if len(label_list) == 1:
        raise ValueError(f"Only one label ('{label_list[0]}'): zero-shot needs at least two labels to choose "
                         "between.")
    if len(label_list) > MAX_LABELS:
        raise ValueError(f"{len(label_list)} labels given; at most {MAX_LABELS} are allowed.")
    seen: set[str] = set()
    duplicates = [label for label in label_list if label in seen or seen.add(label)]
    if duplicates:
        names = ", ".join(f"'{label}'" for label in dict.fromkeys(duplicates))
        raise ValueError(f"Duplicate labels: {names}. Give each label once.")
    return label_list


def resolve_templates(templates: str | Sequence[str] | None) -> list[str]:
    """Templates as format strings with a '{}' for the label: None -> the default, 'openai'/'simple' ->
    open_clip's ImageNet sets, a string -> itself, a list -> itself (each checked)."""
    if templates is None:
        return list(DEFAULT_TEMPLATES)
    if isinstance(templates, str):
        if templates.strip().lower() in TEMPLATE_SETS:
            return named_templates(templates.strip().lower())
        templates = [templates]
    template_list = [str(template) for template in templates]
    if not template_list:
        raise ValueError("No templates given: pass None for the default 'a photo of a {}.', or at least one "
                         "template containing '{}'.")
    for template in template_list:
        if "{}" not in template:
            raise ValueError(f"Template '{template}' has no '{{}}' where the label goes, "
                             "e.g. 'a photo of a {}.'.")
    return template_list


def named_templates(name: str) -> list[str]:
    """open_clip's template sets are lambdas; called with '{}' they give back their format strings, which
    are hashable (for the cache) and printable (for template_scores)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    source = OPENAI_IMAGENET_TEMPLATES if name == "openai" else SIMPLE_IMAGENET_TEMPLATES
    return [template("{}") if callable(template) else str(template) for template in source]


def fill(template: str, label: str) -> str:
    # replace, not format: a template with other braces ("{x}") must not raise a KeyError mid-batch.
    return template.replace("{}", label)


# ---- models -----------------------------------------------------------------------------------------------

def load_clip(
    name: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
    device: str | None = None, precision: str | None = None,
) -> LoadedClip:
    """An open_clip model, its transform and tokenizer, from the cache after the first call."""
    check_model_name(name)
    source = weights_source(name, pretrained)
    torch_device = pick_device(device)
    dtype = pick_dtype(precision, torch_device)
    key = (name, source, str(torch_device), str(dtype))
    return _models.get_or_load(key, lambda: _create(name, pretrained, key, torch_device, dtype))


def _create(name: str, pretrained: str | None, key: tuple, device: torch.device, dtype: torch.dtype) -> LoadedClip:
    import open_clip

    log.info("Loading open_clip %s (weights: %s) on %s in %s", name, pretrained or "random", device,
             str(dtype).replace("torch.", ""))
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None, precision=_OPEN_CLIP_PRECISION[dtype], device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as error:  # open_clip raises RuntimeError/OSError/... for every kind of failure
        raise ModelLoadError(load_error_message(name, pretrained, error)) from error
    model.eval()
    return LoadedClip(key=key, model=model, preprocess=preprocess, tokenizer=tokenizer, device=device, dtype=dtype)


def check_model_name(name: str) -> None:
    import open_clip

    if name.startswith(_SCHEMAS):
        return
    known = open_clip.list_models()
    if name.replace("/", "-") not in known:
        examples = ", ".join(m for m in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "convnext_base_w") if m in known)
        raise ValueError(f"Unknown open_clip model '{name}'. Try one of {examples} "
                         f"({len(known)} names in open_clip.list_models()), or 'hf-hub:org/repo'.")


def weights_source(name: str, pretrained: str | None) -> str:
    """What identifies the weights in the cache key: the tag, or a file's absolute path and mtime (so a
    checkpoint rewritten by a fine-tuning run is loaded afresh)."""
    if not pretrained or name.startswith(_SCHEMAS):
        return "" if not pretrained else str(pretrained)
    if os.path.isfile(pretrained):
        return f"{os.path.abspath(pretrained)}@{os.path.getmtime(pretrained)}"
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name.replace("/", "-"))
    if pretrained not in tags and pretrained.lower() not in tags:
        shown = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "") if tags else "none"
        raise ValueError(f"'{pretrained}' is neither a pretrained tag of {name} (tags: {shown}) nor an existing "
                         "checkpoint file.")
    return pretrained


def load_error_message(name: str, pretrained: str | None, error: Exception) -> str:
    text = str(error)
    if pretrained and not os.path.isfile(pretrained) and ("download" in text.lower() or "offline" in text.lower()
                                                         or isinstance(error, OSError)):
        return (f"Could not fetch the '{pretrained}' weights for {name} (no internet, or not downloaded yet); "
                "pass the path of a local checkpoint file as pretrained instead.")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"Could not load open_clip model '{name}' with weights '{pretrained}': {first}"


def clear_cache() -> None:
    """Forget every loaded model and cached text embedding."""
    _models.clear()
    with _text_lock:
        _text.clear()
        _text_stats.update(hits=0, misses=0)


# ---- embeddings and scores ------------------------------------------------------------------------------

def text_embeddings(loaded: LoadedClip, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Normalised text embeddings, (templates, labels, dim) in fp32, cached per (model, labels, templates) so
    a second image with the same labels costs only its own encoding."""
    key = (loaded.key, tuple(labels), tuple(templates))
    with _text_lock:
        if key in _text:
            _text_stats["hits"] += 1
            _text.move_to_end(key)
            return _text[key]
        _text_stats["misses"] += 1
    embeddings = encode_texts(loaded, labels, templates)
    with _text_lock:
        _text[key] = embeddings
        while len(_text) > TEXT_CACHE_SIZE:
            _text.popitem(last=False)
    return embeddings


def text_cache_info() -> CacheInfo:
    with _text_lock:
        return CacheInfo(_text_stats["hits"], _text_stats["misses"], len(_text), TEXT_CACHE_SIZE)


def encode_texts(loaded: LoadedClip, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    texts = [fill(template, label) for template in templates for label in labels]
    starts = range(0, len(texts), TEXT_BATCH_SIZE)
    chunks = []
    for start in tqdm(starts, desc="Encoding labels", unit="batch", disable=len(starts) < 2, leave=False):
        tokens = loaded.tokenizer(texts[start:start + TEXT_BATCH_SIZE]).to(loaded.device)
        with torch.inference_mode():
            # Normalise in fp32: in bf16 the norms alone carry ~0.4% error.
            chunks.append(torch.nn.functional.normalize(loaded.model.encode_text(tokens).float(), dim=-1))
    return torch.cat(chunks).reshape(len(templates), len(labels), -1)


def ensemble(per_template: torch.Tensor) -> torch.Tensor:
    """One embedding per label: the mean over templates, renormalised (open_clip's build_zero_shot_classifier)."""
    return torch.nn.functional.normalize(per_template.mean(dim=0), dim=-1)


def encode_images(loaded: LoadedClip, images: Sequence, batch_size: int = 16) -> torch.Tensor:
    """Normalised image embeddings, one row per image, in fp32."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, not {batch_size!r}.")
    rows = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([loaded.preprocess(image) for image in images[start:start + batch_size]])
        with torch.inference_mode():
            features = loaded.model.encode_image(pixels.to(loaded.device, loaded.dtype)).float()
        rows.append(torch.nn.functional.normalize(features, dim=-1))
    return torch.cat(rows)


def label_probabilities(loaded: LoadedClip, image_embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Softmax over labels of the scaled cosine similarities, in fp32 (bf16 softmax over 1,000 labels rounds
    small scores to 0)."""
    scale = loaded.model.logit_scale.detach().float().exp()
    logits = scale * image_embeddings @ text.to(image_embeddings.device).T
    return logits.softmax(dim=-1).cpu()


def ranked(probabilities: torch.Tensor, labels: Sequence[str]) -> list[Prediction]:
    order = torch.argsort(probabilities, descending=True, stable=True).tolist()
    return [Prediction(label=labels[index], score=float(probabilities[index])) for index in order]
