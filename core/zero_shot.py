"""Zero-shot classification and label maps with CLIP (open_clip or transformers): any labels, prompt templates,
models and text embeddings cached."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, NamedTuple, Sequence

import torch
from huggingface_hub import try_to_load_from_cache
from tqdm.auto import tqdm

# Imported at module level for the reason core.models gives: transformers resolves names lazily, and two
# Gradio threads doing it at once can see a half-initialised module.
from transformers import AutoConfig, AutoProcessor, CLIPModel

from . import hub
from .attention import _check_drawing, grad_rollout, overlay
from .clip_maps import image_tower_pass

# _from_pretrained is core.models' loader proper: local folder or hub cache first, the Hub only when reachable,
# safetensors only, its errors already in one voice with the other tabs'.
from .gpu import gpu_work
from .hub import HubFailure, hub_failure
from .images import ImageInput, load_image, load_images
from .models import (
    ModelCache,
    ModelLoadError,
    _from_pretrained,
    local_path,
    log,
    may_load_from,
    path_exists,
    pick_device,
    pick_dtype,
)
from .settings import current_settings
from .types import LabelMap, OnLoad, OnRun, Prediction, run_since

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_HF_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
MAX_LABELS = 1000
TEMPLATE_SETS = ("openai", "simple")

# A CLIP ViT-B/32 costs ~600 MB in fp32; two lets a user compare models without reloading.
MODEL_CACHE_SIZE = current_settings().clip_cache_size  # read once, at import
# Each entry is (templates, labels, dim) floats: 80 templates x 1000 labels x 512 is 160 MB at worst,
# a few labels x one template is a few KB, which is the common case.
TEXT_CACHE_SIZE = 32
TEXT_BATCH_SIZE = 256

# open_clip's names for "the whole model in this dtype"; its plain "bf16" keeps some layers in fp32 but then
# needs inputs in a per-tower dtype, which timm towers do not expose uniformly.
_OPEN_CLIP_PRECISION = {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}
_SCHEMAS = ("hf-hub:", "local-dir:")
# 'org/name' as the Hub spells ids; anything else that is not an open_clip name or a folder is a typo.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

Backend = Literal["open_clip", "transformers"]


@dataclass(frozen=True)
class LoadedClip:
    """A CLIP model behind open_clip's calls (encode_image, encode_text, logit_scale) with its image transform
    (PIL -> (3, H, W) tensor) and tokenizer (texts -> tokens with .to()); `key` identifies it in the text cache."""

    key: tuple
    name: str
    backend: Backend
    model: Any
    preprocess: Any
    tokenizer: Any
    encode_text: Callable[[Any], torch.Tensor]  # tokens -> text features; the model's own, or a faster equal one
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


def _preload_clip_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """The CLIP model a zero-shot call will use, loaded into the cache (see core.gpu)."""
    load_clip(call["model"], call["pretrained"], device=call["device"], precision=call["precision"], on_load=on_load)


def _preload_eager_clip_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """zero_shot_map's CLIP model, with the attention its label maps need."""
    load_clip(
        call["model"],
        call["pretrained"],
        device=call["device"],
        precision=call["precision"],
        attention="eager",
        on_load=on_load,
    )


@gpu_work(preload=_preload_clip_for)
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
    on_load: OnLoad = None,
    on_run: OnRun = None,
) -> list[Prediction] | list[list[Prediction]]:
    """Every label scored for each image, best first, scores summing to 1. One image in gives one list;
    a list in gives a list of lists. `on_load` hears the model's name before a load that may download;
    `on_run` hears what the call ran on."""
    single = not isinstance(images, (list, tuple))
    label_list = check_labels(labels)
    template_list = resolve_templates(templates)
    pil_images = load_images(images)
    loaded = load_clip(model, pretrained, device=device, precision=precision, on_load=on_load)
    started = time.perf_counter()
    text = ensemble(text_embeddings(loaded, label_list, template_list))
    probabilities = label_probabilities(loaded, encode_images(loaded, pil_images, batch_size), text)
    results = [ranked(row, label_list) for row in probabilities]
    if on_run is not None:
        on_run(run_since(loaded, started))
    return results[0] if single else results


@gpu_work(preload=_preload_clip_for)
def template_scores(
    image: ImageInput,
    labels: str | Sequence[str],
    model: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    templates: str | Sequence[str] | None = "openai",
    *,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
    on_run: OnRun = None,
) -> dict[str, list[Prediction]]:
    """For one image, the labels' scores under each template on its own (template -> best-first list),
    to show which prompts sway an ensemble."""
    label_list = check_labels(labels)
    template_list = resolve_templates(templates)
    loaded = load_clip(model, pretrained, device=device, precision=precision, on_load=on_load)
    started = time.perf_counter()
    per_template = text_embeddings(loaded, label_list, template_list)
    image_embedding = encode_images(loaded, load_images(image), batch_size=1)
    scores = {
        template: ranked(label_probabilities(loaded, image_embedding, per_template[index])[0], label_list)
        for index, template in enumerate(template_list)
    }
    if on_run is not None:
        on_run(run_since(loaded, started))
    return scores


@gpu_work(preload=_preload_eager_clip_for)
def zero_shot_map(
    image: ImageInput,
    label: str,
    labels: str | Sequence[str],
    model: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    templates: str | Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    device: str | None = None,
    precision: str | None = None,
    from_layer: int = 1,
    on_load: OnLoad = None,
) -> LabelMap:
    """Where `label` is in the image: gradient-weighted attention rollout on CLIP's image transformer for that
    label's logit against all `labels` (Chefer et al. 2021, their CLIP notebook). `from_layer` (1-based) starts
    the rollout at a later block, as the notebook's start_layer does; the predictions are every label, ranked.

    It runs in the app's precision, like zero_shot, so one loaded open_clip model serves both: bf16 maps
    matched fp32 ones (Pearson r >= 0.9996 over 12 image/label pairs, largest cell difference 0.008 of the
    peak, on random-weight ViT-B/32-sized open_clip and transformers CLIPs, the first with CLIP's trained logit
    scale of 100). Trained weights could not be measured offline. A bf16 backward was no faster than fp32 on
    an AVX512-BF16 CPU, so the gain there is memory, not speed. The result's `run` says what ran and how long.
    """
    label_list = check_labels(labels)
    target = check_target_label(label, label_list)
    template_list = resolve_templates(templates)
    _check_drawing(alpha, cmap)  # before the forward and backward passes, so a typo costs nothing
    picture = load_image(image)
    loaded = load_clip(model, pretrained, device=device, precision=precision, attention="eager", on_load=on_load)
    started = time.perf_counter()
    text = ensemble(text_embeddings(loaded, label_list, template_list))
    pixels = torch.stack([loaded.preprocess(picture)]).to(loaded.device, loaded.dtype)
    # The weights are frozen, so the graph the gradients need starts at the input.
    pixels.requires_grad_(True)
    with torch.enable_grad():
        tower = image_tower_pass(loaded, pixels)
        logits = label_logits(loaded.model, torch.nn.functional.normalize(tower.features.float(), dim=-1), text)
        gradients = torch.autograd.grad(logits[0, label_list.index(target)], tower.probabilities)
    start = check_from_layer(from_layer, len(tower.probabilities)) - 1
    heatmap = grad_rollout(
        tower.probabilities[start:], gradients[start:], num_prefix_tokens=1, grid_size=tower.grid_size
    )
    drawn = overlay(picture, heatmap, alpha=alpha, cmap=cmap)
    return LabelMap(
        label=target,
        heatmap=heatmap,
        overlay=drawn,
        predictions=tuple(ranked(logits.detach().softmax(dim=-1)[0].cpu(), label_list)),
        grid_size=tower.grid_size,
        model=loaded.name,
        run=run_since(loaded, started),
    )


def check_target_label(label: str, labels: Sequence[str]) -> str:
    """The label to map, which must be one of the labels (compared without surrounding spaces)."""
    target = str(label).strip() if label is not None else ""
    if target not in labels:
        shown = ", ".join(f"'{name}'" for name in labels[:5]) + (", ..." if len(labels) > 5 else "")
        if not target:
            raise ValueError(f"No label chosen to map: pick one of the labels ({shown}).")
        raise ValueError(f"'{target}' is not one of the labels ({shown}): pick the label to map from them.")
    return target


def check_from_layer(from_layer: int, num_layers: int) -> int:
    if isinstance(from_layer, bool) or not isinstance(from_layer, int) or not 1 <= from_layer <= num_layers:
        raise ValueError(f"from_layer {from_layer!r} is out of range: this image tower has blocks 1 to {num_layers}.")
    return from_layer


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
        raise ValueError(f"Only one label ('{label_list[0]}'): zero-shot needs at least two labels to choose between.")
    if len(label_list) > MAX_LABELS:
        raise ValueError(f"{len(label_list)} labels given; at most {MAX_LABELS} are allowed.")
    duplicates = [label for label, count in Counter(label_list).items() if count > 1]  # in order of first use
    if duplicates:
        names = ", ".join(f"'{label}'" for label in duplicates)
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
        raise ValueError(
            "No templates given: pass None for the default 'a photo of a {}.', or at least one "
            "template containing '{}'."
        )
    for template in template_list:
        if "{}" not in template:
            raise ValueError(f"Template '{template}' has no '{{}}' where the label goes, e.g. 'a photo of a {{}}.'.")
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


def takes_pretrained(model: str) -> bool:
    """Whether the pretrained box means anything for this model: only open_clip's own names take a tag or a
    checkpoint file; transformers models, 'hf-hub:'/'local-dir:' names and open_clip folders bring their
    weights. Never raises."""
    try:
        backend, name = resolve_model(model)
    except ValueError:
        return False
    return backend == "open_clip" and not name.startswith(_SCHEMAS)


def pretrained_tags(model: str) -> list[str]:
    """open_clip's pretrained tags for a model name, for a UI's choices; [] for the transformers backend,
    'hf-hub:'/'local-dir:' names (their weights come with them) and names that resolve to nothing."""
    import open_clip

    if not takes_pretrained(model):
        return []
    return list(open_clip.list_pretrained_tags_by_model(model.strip().replace("/", "-")))


def resolve_model(name: str) -> tuple[Backend, str]:
    """Which backend runs a model name, and the name as that backend takes it.

    open_clip: its own names (open_clip.list_models()), 'hf-hub:' and 'local-dir:' names, and folders with an
    open_clip_config.json (given 'local-dir:' for the user). transformers: folders with a config.json (from
    save_pretrained) and Hub ids 'org/name'.
    """
    import open_clip

    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "No model given: type an open_clip name such as ViT-B-32, or a Hugging Face CLIP id "
            f"such as {DEFAULT_HF_CLIP}."
        )
    name = name.strip()
    if name.startswith("local-dir:"):
        return "open_clip", "local-dir:" + str(_open_clip_folder(name[len("local-dir:") :], name))
    if name.startswith(_SCHEMAS) or name.replace("/", "-") in open_clip.list_models():
        return "open_clip", name
    folder = local_path(name)
    if may_load_from(folder) and _has_file(folder, "open_clip_config.json"):
        return "open_clip", "local-dir:" + str(folder.resolve())
    if may_load_from(folder) and _has_file(folder, "config.json"):
        return "transformers", str(folder.resolve())
    # Any other path gets one answer whether it exists or not, so the box cannot map the server's files.
    if path_exists(folder) or name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(not_a_clip_model(name))
    if _HUB_ID.fullmatch(name):
        return "transformers", name
    known = open_clip.list_models()
    examples = ", ".join(m for m in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "convnext_base_w") if m in known)
    raise ValueError(
        f"Unknown open_clip model '{name}'. Try one of {examples} ({len(known)} names in "
        f"open_clip.list_models()), a Hugging Face CLIP id such as {DEFAULT_HF_CLIP}, "
        "or 'hf-hub:org/repo'."
    )


def not_a_clip_model(name: str) -> str:
    """The one answer for a model name that is no CLIP model here, the same whether a path by that name exists."""
    return (
        f"'{name}' is neither a model id on the Hub nor a model folder the app can read: type an open_clip "
        f"name such as ViT-B-32, a Hugging Face CLIP id such as {DEFAULT_HF_CLIP}, or a folder with a "
        "config.json (transformers) or an open_clip_config.json (open_clip)."
    )


def _has_file(folder: Path, name: str) -> bool:
    try:
        return folder.is_dir() and (folder / name).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte, a folder we may not look into
        return False


def _open_clip_folder(path: str, name: str) -> Path:
    folder = local_path(path)
    if not may_load_from(folder):
        raise ValueError(not_a_clip_model(name))
    if _has_file(folder, "open_clip_config.json"):
        return folder.resolve()
    if _has_file(folder, "config.json"):  # a model folder, so saying what it is tells nothing new
        raise ValueError(
            f"The folder '{path}' has no open_clip_config.json, which 'local-dir:' needs; a "
            "transformers CLIP folder is given by its path alone, without 'local-dir:'."
        )
    raise ValueError(not_a_clip_model(name))


def load_clip(
    name: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: str | None = None,
    precision: str | None = None,
    *,
    attention: str = "sdpa",
    on_load: OnLoad = None,
) -> LoadedClip:
    """A CLIP model, its transform and tokenizer, from the cache after the first call. `attention` matters to
    the transformers backend only: label maps need "eager" (SDPA returns no attention probabilities).
    `on_load` hears the resolved name just before a load that is not a cache hit (it may download)."""
    backend, resolved = resolve_model(name)
    announce = partial(on_load, resolved) if on_load is not None else None
    torch_device = pick_device(device)
    dtype = pick_dtype(precision, torch_device)
    if backend == "transformers":
        # The text cache key leaves out the attention kernel: SDPA and eager give the same text embeddings.
        key = (resolved, "", str(torch_device), str(dtype))
        return _models.get_or_load(
            key + (attention,),
            lambda: _create_transformers(resolved, key, torch_device, dtype, attention),
            on_load=announce,
        )
    # 'hf-hub:'/'local-dir:' names carry their weights; open_clip ignores (and warns about) a tag with them.
    tag = None if resolved.startswith(_SCHEMAS) else pretrained
    key = (resolved, weights_source(resolved, tag), str(torch_device), str(dtype))
    return _models.get_or_load(key, lambda: _create(resolved, tag, key, torch_device, dtype), on_load=announce)


# ---- weights already on this machine -----------------------------------------------------------------------
# open_clip downloads a tag's weights (and an hf-hub: model's files) through huggingface_hub, which retries an
# unreachable Hub five times a file: 47 s before a classroom without wifi hears it is offline. So the engine looks
# in the local caches first, loads what it finds from there, and asks the Hub only when it can be reached.

_OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # what an hf-hub: repo holds
_OPEN_CLIP_CONFIG = "open_clip_config.json"


def cached_tag_weights(name: str, tag: str) -> str | None:
    """The file a pretrained tag's weights were downloaded to on this machine (the Hub's cache, or open_clip's
    folder for weights it fetches by URL), or None."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name.replace("/", "-"), tag) or {}
    repo_id, filename = os.path.split(cfg.get("hf_hub", ""))
    if repo_id:
        names = _OPEN_CLIP_WEIGHTS if not filename else (filename.rsplit(".", 1)[0] + ".safetensors", filename)
        for candidate in names:
            found = try_to_load_from_cache(repo_id, candidate)
            if isinstance(found, str):
                return found
    url_file = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(cfg.get("url", "")))
    return url_file if cfg.get("url") and os.path.isfile(url_file) else None


def tag_preprocessing(name: str, tag: str) -> dict[str, Any]:
    """The image preprocessing a tag asks for (open_clip applies it only when it loads the weights by their tag)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name.replace("/", "-"), tag) or {}
    return {key: cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in cfg}


def cached_hub_folder(name: str) -> str | None:
    """The local snapshot folder of an 'hf-hub:' model whose config and weights are both cached, or None."""
    repo_id = name.removeprefix("hf-hub:")
    config = try_to_load_from_cache(repo_id, _OPEN_CLIP_CONFIG)
    if not isinstance(config, str):
        return None
    folder = os.path.dirname(config)
    return folder if any(os.path.isfile(os.path.join(folder, weights)) for weights in _OPEN_CLIP_WEIGHTS) else None


@dataclass(frozen=True)
class OpenClipSource:
    """What open_clip is asked to load: a model name (a 'local-dir:' folder for a cached hf-hub: model), the
    weights (a tag, or the cached file of one), and the tag's preprocessing when its file is given instead."""

    model: str
    pretrained: str | None
    preprocess: dict[str, Any] = field(default_factory=dict)  # mean, std, interpolation, resize_mode


def open_clip_source(name: str, pretrained: str | None) -> OpenClipSource:
    """The local copy of what a model needs when this machine has it; else the Hub, but only when it can be reached:
    otherwise a ModelLoadError at once, not after huggingface_hub's retries."""
    if name.startswith("hf-hub:"):
        folder = cached_hub_folder(name)
        if folder is not None:
            return OpenClipSource(f"local-dir:{folder}", None)
        _require_hub(f"Could not fetch '{name}'", "use a 'local-dir:' folder or a local checkpoint file instead.")
        return OpenClipSource(name, None)
    if pretrained and not name.startswith("local-dir:") and not readable_checkpoint(pretrained):
        weights = cached_tag_weights(name, pretrained)
        if weights is not None:
            return OpenClipSource(name, weights, tag_preprocessing(name, pretrained))
        _require_hub(
            f"Could not fetch the '{pretrained}' weights for {name}",
            "download them once while online, or pass the path of a local checkpoint file as pretrained.",
        )
    return OpenClipSource(name, pretrained)


def _require_hub(what: str, instead: str) -> None:
    if hub.offline():
        raise ModelLoadError(
            f"{what}: offline mode is on (HF_HUB_OFFLINE) and they are not in the local cache; {instead}"
        )
    if not hub.reachable():
        raise ModelLoadError(
            f"{what}: the Hugging Face Hub cannot be reached from here (offline?) and they are not in the local "
            f"cache; {instead}"
        )


def _create(name: str, pretrained: str | None, key: tuple, device: torch.device, dtype: torch.dtype) -> LoadedClip:
    import open_clip

    log.info(
        "Loading open_clip %s (weights: %s) on %s in %s",
        name,
        pretrained or "random",
        device,
        str(dtype).replace("torch.", ""),
    )
    source = open_clip_source(name, pretrained)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            source.model,
            pretrained=source.pretrained or None,
            precision=_OPEN_CLIP_PRECISION[dtype],
            device=device,
            image_mean=source.preprocess.get("mean"),
            image_std=source.preprocess.get("std"),
            image_interpolation=source.preprocess.get("interpolation"),
            image_resize_mode=source.preprocess.get("resize_mode"),
        )
        tokenizer = open_clip.get_tokenizer(source.model)
    except Exception as error:  # open_clip raises RuntimeError/OSError/... for every kind of failure
        raise ModelLoadError(load_error_message(name, pretrained, error)) from error
    # Inference only: label maps take gradients with respect to the input, never the weights.
    model.eval().requires_grad_(False)
    encode_text = partial(_encode_unpadded_text, model) if _can_cut_padding(model, tokenizer) else model.encode_text
    return LoadedClip(
        key=key,
        name=name,
        backend="open_clip",
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        encode_text=encode_text,
        device=device,
        dtype=dtype,
    )


def _can_cut_padding(model: Any, tokenizer: Any) -> bool:
    """Whether the padding after the longest prompt can be left out of the text tower without changing any
    embedding: a causal text transformer (no position sees a later one) pooled at the end-of-text token, and
    open_clip's own tokenizer, which pads with 0."""
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer

    return (
        type(model) is CLIP
        and isinstance(tokenizer, SimpleTokenizer)
        and model.attn_mask is not None
        and model.text_pool_type in ("argmax", "eos")
    )


def _encode_unpadded_text(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's CLIP.encode_text on the tokens up to the longest prompt's end. Prompts are padded to 77
    tokens and a label prompt holds about 10, so this is several times faster on a first query; only the
    position embeddings and the causal mask are cut to the same length."""
    from open_clip.transformer import text_global_pool

    if tokens.shape[0] == 0:
        return model.encode_text(tokens)
    length = prompt_length(tokens)
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    hidden = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    hidden = model.ln_final(model.transformer(hidden, attn_mask=model.attn_mask[:length, :length]))
    pooled = text_global_pool(hidden, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(pooled)
    return pooled if model.text_projection is None else pooled @ model.text_projection


def prompt_length(tokens: torch.Tensor) -> int:
    """How many positions the longest of these open_clip prompts fills: up to its last non-zero token. open_clip
    pads with 0, but a bare "!" is token 0 too, so counting non-zero tokens would cut "a photo of a !?" short."""
    positions = torch.arange(1, tokens.shape[-1] + 1, device=tokens.device)
    return int(((tokens != 0) * positions).max()) if tokens.numel() else 0


def _create_transformers(name: str, key: tuple, device: torch.device, dtype: torch.dtype, attention: str) -> LoadedClip:
    log.info(
        "Loading transformers CLIP %s on %s in %s (%s attention)",
        name,
        device,
        str(dtype).replace("torch.", ""),
        attention,
    )
    try:
        loaded = _from_pretrained(name, ClipModelOnly, AutoProcessor, device, dtype, attention)
    except ModelLoadError as error:
        if str(error).startswith("Could not fetch model"):  # core.models' two-sentence offline message
            raise ModelLoadError(
                f"Could not fetch CLIP model '{name}' from the Hugging Face Hub (offline, or not downloaded yet); "
                "type the path of a local folder written by save_pretrained, or pick an open_clip model."
            ) from error
        raise
    text_config = loaded.model.config.text_config
    model = TransformersClip(loaded.model)
    return LoadedClip(
        key=key,
        name=name,
        backend="transformers",
        model=model,
        preprocess=partial(_transformers_pixels, loaded.processor.image_processor),
        # Padded to the longest prompt already: transformers' CLIP takes any length up to its maximum.
        tokenizer=partial(_transformers_tokens, loaded.processor.tokenizer, text_config.max_position_embeddings),
        encode_text=model.encode_text,
        device=device,
        dtype=dtype,
    )


class ClipModelOnly:
    """A from_pretrained for core.models' loader that refuses, in one sentence, anything but a CLIPModel
    (a ViT classifier folder would otherwise load with random CLIP towers and score noise)."""

    @staticmethod
    def from_pretrained(name: str, **kwargs: Any) -> CLIPModel:
        config = AutoConfig.from_pretrained(
            name,
            local_files_only=kwargs.get("local_files_only", False),
            trust_remote_code=kwargs.get("trust_remote_code", False),
        )
        if config.model_type != "clip":
            architectures = ", ".join(getattr(config, "architectures", None) or []) or config.model_type
            raise ModelLoadError(
                f"'{name}' is not a CLIP model (it is a {architectures}); zero-shot needs a "
                f"CLIPModel such as {DEFAULT_HF_CLIP} or an open_clip model such as ViT-B-32."
            )
        return CLIPModel.from_pretrained(name, **kwargs)


class TransformersClip:
    """A transformers CLIPModel behind open_clip's three calls, so embeddings and scores have one code path."""

    def __init__(self, model: CLIPModel):
        self.model = model

    @property
    def logit_scale(self) -> torch.nn.Parameter:
        return self.model.logit_scale

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        # transformers 5 returns a ModelOutput here, with the projected embedding as pooler_output.
        return self.model.get_image_features(pixel_values=pixels).pooler_output

    def encode_text(self, tokens) -> torch.Tensor:
        return self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output


def _transformers_pixels(image_processor, image) -> torch.Tensor:
    return image_processor(images=image, return_tensors="pt")["pixel_values"][0]


def _transformers_tokens(tokenizer, max_length: int, texts: list[str]):
    # Padding with an attention mask leaves each text's embedding as it is alone (CLIP's text tower is causal).
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


def weights_source(name: str, pretrained: str | None) -> str:
    """What identifies the weights in the cache key: the tag, or a file's absolute path and mtime (so a
    checkpoint rewritten by a fine-tuning run is loaded afresh).

    A file is checked (see readable_checkpoint) before open_clip builds the model it would fill, so a file that
    is no checkpoint costs no model build; and it gets the same answer as a path where nothing is, so the box
    cannot tell anyone which files the server has.
    """
    if not pretrained or name.startswith(_SCHEMAS):
        return "" if not pretrained else str(pretrained)
    if readable_checkpoint(pretrained):
        return f"{os.path.abspath(pretrained)}@{os.path.getmtime(pretrained)}"
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name.replace("/", "-"))
    if pretrained not in tags and pretrained.lower() not in tags:
        shown = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "") if tags else "none"
        raise ValueError(
            f"'{pretrained}' is neither a pretrained tag of {name} (tags: {shown}) nor a checkpoint "
            "file the app can read."
        )
    return pretrained


# 3x the largest open_clip weights in fp32 (EVA02-E-14-plus, about 20 GB): a bigger "checkpoint" is something else,
# which torch.load would read whole into memory before finding out.
MAX_CHECKPOINT_BYTES = 64 * 2**30


def readable_checkpoint(path: str) -> bool:
    """Whether `path` is a file open_clip can load weights from, told from its size and its first bytes or
    index alone: a safetensors file whose header covers the file, a torch.save zip archive with its pickle (or
    a legacy torch pickle), a numpy .npz/.npy (big_vision weights). Remembered per file version: zero-shot asks
    on every query."""
    import stat

    if not may_load_from(local_path(path)):
        return False
    try:
        found = os.stat(path)
    except (OSError, ValueError):  # no such file, a name the system refuses (a NUL byte, too long)
        return False
    # A regular file only: a device such as /dev/zero would be read without end.
    if not stat.S_ISREG(found.st_mode) or not 0 < found.st_size <= MAX_CHECKPOINT_BYTES:
        return False
    return _checkpoint_format_ok(os.path.abspath(path), found.st_mtime_ns, found.st_size)


@lru_cache(maxsize=64)
def _checkpoint_format_ok(path: str, mtime_ns: int, size: int) -> bool:
    import zipfile

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(path, framework="pt") as weights:
                return bool(list(weights.keys()))
        with open(path, "rb") as file:
            head = file.read(8)
        if suffix == ".npy":
            return head.startswith(b"\x93NUMPY")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            wanted = (".npy",) if suffix == ".npz" else ("data.pkl", "constants.pkl")
            return any(name.endswith(wanted) for name in names)
        # torch.save's format before torch 1.6: a pickle (protocol 2 and up start with 0x80).
        return suffix != ".npz" and head[:1] == b"\x80"
    except Exception:  # noqa: BLE001 - SafetensorError, OSError, BadZipFile: not a checkpoint either way
        return False


def load_error_message(name: str, pretrained: str | None, error: Exception) -> str:
    failure = hub_failure(error)
    # Only an hf-hub: name is a repository; a built-in name's missing weights are its tag's, said below.
    if name.startswith("hf-hub:"):
        instead = "a 'local-dir:' folder or a local checkpoint file"
        refused = hub.repository_message(failure, name.removeprefix("hf-hub:"), instead=instead)
        if refused is not None:
            return refused
    # Weights that open_clip fetches by URL rather than from the Hub fail with urllib's errors, which are OSErrors.
    unreachable = failure is HubFailure.NOT_CACHED or (failure is None and isinstance(error, OSError))
    if name.startswith("hf-hub:") and (unreachable or failure is not None):
        return (
            f"Could not fetch '{name}' from the Hugging Face Hub (no internet, or not downloaded yet); "
            "use a 'local-dir:' folder or a local checkpoint file instead."
        )
    if pretrained and not os.path.isfile(pretrained) and unreachable:
        return (
            f"Could not fetch the '{pretrained}' weights for {name} (no internet, or not downloaded yet); "
            "pass the path of a local checkpoint file as pretrained instead."
        )
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if not pretrained:
        return f"Could not load open_clip model '{name}': {first}"
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
        tokens = loaded.tokenizer(texts[start : start + TEXT_BATCH_SIZE]).to(loaded.device)
        with torch.inference_mode():
            # Normalise in fp32: in bf16 the norms alone carry ~0.4% error.
            chunks.append(torch.nn.functional.normalize(loaded.encode_text(tokens).float(), dim=-1))
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
        pixels = torch.stack([loaded.preprocess(image) for image in images[start : start + batch_size]])
        with torch.inference_mode():
            features = loaded.model.encode_image(pixels.to(loaded.device, loaded.dtype)).float()
        rows.append(torch.nn.functional.normalize(features, dim=-1))
    return torch.cat(rows)


def label_probabilities(loaded: LoadedClip, image_embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Softmax over labels of the scaled cosine similarities, in fp32 (bf16 softmax over 1,000 labels rounds
    small scores to 0)."""
    return label_logits(loaded.model, image_embeddings, text).softmax(dim=-1).cpu()


def label_logits(model: Any, image_embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """CLIP's logits, logit_scale.exp() times the cosine similarities of normalised embeddings: the numbers
    the label map differentiates, computed the same way as the scores (so they agree to the last bit)."""
    scale = model.logit_scale.detach().float().exp()
    return scale * image_embeddings @ text.to(image_embeddings.device).T


def ranked(probabilities: torch.Tensor, labels: Sequence[str]) -> list[Prediction]:
    order = torch.argsort(probabilities, descending=True, stable=True).tolist()
    return [Prediction(label=labels[index], score=float(probabilities[index])) for index in order]
