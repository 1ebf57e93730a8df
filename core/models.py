"""Load Hugging Face models once: hub id or local folder, chosen device and precision, a small LRU cache."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable

import torch

# Imported here, once, in the importing thread: transformers resolves these names lazily, and two Gradio
# worker threads resolving them at the same moment can see a half-initialised module
# ("cannot import name 'AutoImageProcessor'").
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from . import hub
from .hub import HubFailure, hub_failure, in_local_cache
from .settings import PRECISIONS, current_settings

log = logging.getLogger("vit_studio")

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class ModelLoadError(ValueError):
    """A model that could not be loaded; the message says which one and what to do about it."""


def pick_device(requested: str | None = None) -> torch.device:
    """cuda > mps > cpu for 'auto'; an explicit name is checked so a typo fails early."""
    name = requested or current_settings().device
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device '{name}' was asked for, but no CUDA GPU is available here; use --device cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"Device '{name}' does not exist: this machine has {torch.cuda.device_count()} GPU(s), "
            "numbered from cuda:0."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device '{name}' was asked for, but Apple MPS is not available here; use --device cpu.")
    return device


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16: bf16 runs ViT-B about 2x fp32 with AVX512-BF16 alone, more with AMX."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(precision: str | None, device: torch.device) -> torch.dtype:
    """Resolve 'auto' to bf16 where the hardware runs it fast, fp32 elsewhere."""
    precision = precision or current_settings().precision
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return _DTYPES[precision]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference together with what it needs to be fed."""

    name: str
    model: Any
    processor: Any
    device: torch.device
    dtype: torch.dtype


# Loads run one at a time across every engine cache: from_pretrained (and open_clip) set torch's global
# default dtype while they build a model, so two loads in parallel threads can leave one with weights in
# the other's dtype.
_LOAD_LOCK = threading.Lock()


class ModelCache:
    """A small LRU of loaded models. Hits never wait behind a load (a download can take minutes);
    misses load one at a time, and a second thread asking for the same model gets the first one's."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries; never held during a load

    def get_or_load(self, key: tuple, load: Callable[[], Any], *, on_load: Callable[[], None] | None = None) -> Any:
        """The entry for `key`, loaded by `load` on a miss. `on_load` runs once on a miss, before the wait for other
        loads (so a caller queued behind a download hears at once that it will wait); a hit never calls it."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        if on_load is not None:
            on_load()
        with _LOAD_LOCK:
            with self._lock:
                if key in self._entries:  # another thread loaded it while this one waited
                    return self._entries[key]
            loaded = load()
            with self._lock:
                self._entries[key] = loaded
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return loaded

    def discard(self, stale: Callable[[tuple], bool]) -> None:
        """Forget the entries whose key `stale` picks (their memory is freed once no caller holds them)."""
        with self._lock:
            for key in [key for key in self._entries if stale(key)]:
                del self._entries[key]

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self.keys())


_cache = ModelCache(current_settings().model_cache_size)  # sized once, at import


def load_classifier(
    name: str,
    device: str | None = None,
    precision: str | None = None,
    attn_implementation: str = "sdpa",
    *,
    on_load: Callable[[str], None] | None = None,
) -> LoadedModel:
    """An image-classification model and its image processor, from the cache after the first call (`on_load`
    hears the name just before a load that is not a cache hit)."""
    return _load(
        name,
        AutoModelForImageClassification,
        AutoImageProcessor,
        device,
        precision,
        attn_implementation,
        on_load=on_load,
    )


def load_explainable(
    name: str,
    device: str | None = None,
    precision: str | None = None,
    *,
    on_load: Callable[[str], None] | None = None,
) -> LoadedModel:
    """A ViT-family model with eager attention (SDPA returns no attention maps): the classifier when the
    checkpoint has a head, else the bare backbone (e.g. facebook/dino-vits16)."""
    return _load(name, ClassifierOrBackbone, AutoImageProcessor, device, precision, "eager", on_load=on_load)


class ClassifierOrBackbone:
    """A from_pretrained that picks the Auto class from the checkpoint's own architectures list.

    AutoModelForImageClassification would put a random head on a backbone-only checkpoint and
    report its noise as predictions; a backbone gets AutoModel instead.
    """

    @staticmethod
    def from_pretrained(name: str, **kwargs: Any):
        config = AutoConfig.from_pretrained(
            name,
            local_files_only=kwargs.get("local_files_only", False),
            trust_remote_code=kwargs.get("trust_remote_code", False),
        )
        architectures = getattr(config, "architectures", None) or []
        has_head = any("ForImageClassification" in architecture for architecture in architectures)
        auto_class = AutoModelForImageClassification if has_head else AutoModel
        return auto_class.from_pretrained(name, **kwargs)


def clear_cache() -> None:
    _cache.clear()


def _load(
    name,
    model_class,
    processor_class,
    device,
    precision,
    attn_implementation,
    *,
    on_load: Callable[[str], None] | None = None,
) -> LoadedModel:
    resolved = _resolve_name(name)
    torch_device = pick_device(device)
    dtype = pick_dtype(precision, torch_device)
    variant = (resolved, model_class.__name__, str(torch_device), str(dtype), attn_implementation)
    key = (*variant, _folder_version(resolved))
    # A training run saves into the same folder again: the copy loaded before that is stale, not a hit.
    _cache.discard(lambda cached: cached[: len(variant)] == variant and cached != key)

    def load() -> LoadedModel:
        log.info("Loading %s (%s, %s) ...", resolved, torch_device, str(dtype).replace("torch.", ""))
        return _from_pretrained(resolved, model_class, processor_class, torch_device, dtype, attn_implementation)

    return _cache.get_or_load(key, load, on_load=partial(on_load, resolved) if on_load is not None else None)


def _folder_version(resolved: str) -> int:
    """When a local model folder last changed (its newest file); 0 for a hub id, whose files do not change
    under the same revision."""
    folder = Path(resolved)
    if not folder.is_dir():
        return 0
    return max((path.stat().st_mtime_ns for path in folder.iterdir() if path.is_file()), default=0)


def _resolve_name(name: str) -> str:
    """Validate a model name; local model folders become absolute paths so the cache key is stable.

    A folder counts as a model folder when it has a config.json (what save_pretrained writes first); only then
    do later messages describe what is wrong with it. Any other path, whether it exists or not, gets the same
    sentence, so a model box cannot be used to find out which folders and files the server has.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError("No model given: type a Hugging Face model id or the path of a local folder.")
    name = name.strip()
    expanded = local_path(name)
    if may_load_from(expanded) and is_model_folder(expanded):
        return str(expanded.resolve())
    if _looks_like_path(name) or path_exists(expanded) or not _HUB_ID.fullmatch(name):
        raise ModelLoadError(not_a_model(name))
    return name


def loads_offline(name: str) -> bool:
    """Whether `name` loads with the Hub out of reach: a model folder this app may read, or a Hub id whose files
    were downloaded before. Never raises: a name that is no model at all does not load offline either."""
    try:
        resolved = _resolve_name(name)
    except ModelLoadError:
        return False
    return Path(resolved).is_dir() or in_local_cache(resolved)


def may_load_from(path: Path) -> bool:
    """Whether models may be loaded from this path: anywhere on an app only this machine reaches, else only inside
    the app's own model folders (Settings.model_folders), links resolved first."""
    model_folders = current_settings().model_folders
    if model_folders is None:
        return True
    try:
        resolved = path.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, too long a name, a loop of links
        return False
    return any(resolved.is_relative_to(Path(folder).resolve()) for folder in model_folders)


# A Hub repo id as huggingface_hub validates it: an optional owner, a name of at most 96 characters.
_HUB_ID = re.compile(r"(?:[\w.-]+/)?[\w.-]{1,96}")


def local_path(name: str) -> Path:
    """The path a name would be on this machine, '~' expanded where it names a user this machine has."""
    try:
        return Path(name).expanduser()
    except RuntimeError:  # '~someone' for a user this machine does not have: a path to nothing
        return Path(name)


def path_exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: nothing is there
        return False


def is_model_folder(path: Path) -> bool:
    """A folder with a config.json: one save_pretrained wrote, or meant to."""
    try:
        return path.is_dir() and (path / "config.json").is_file()
    except (OSError, ValueError):  # too long a name, a NUL byte, a folder we may not look into: not a model folder
        return False


def not_a_model(name: str) -> str:
    """The one answer for a name that is no model here, the same whether a path by that name exists or not."""
    return (
        f"'{name}' is neither a model id on the Hub nor a model folder the app can read: give a Hugging Face "
        "model id, or the path of a folder written by save_pretrained (with its config.json)."
    )


def _looks_like_path(name: str) -> bool:
    # Hub ids are 'name' or 'owner/name'; anything with more parts, a drive, '~' or a leading dot is a path.
    return name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or "\\" in name or ":" in name


def _from_pretrained(name, model_class, processor_class, device, dtype, attn_implementation) -> LoadedModel:
    """Local folder or hub cache first (no network round trip); the Hub only when it is reachable."""
    if Path(name).is_dir():
        return _load_files(name, model_class, processor_class, device, dtype, attn_implementation, local_only=True)
    try:
        return _load_files(name, model_class, processor_class, device, dtype, attn_implementation, local_only=True)
    except ModelLoadError as error:
        if not _missing_locally(error.__cause__):
            raise  # it is cached but unusable (no safetensors, needs remote code, ...): say that, not "offline"
    if hub.offline():
        raise ModelLoadError(
            f"Could not fetch model '{name}': offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE) and it is "
            "not in the local cache. "
            "Download it once while online, or type the path of a local folder written by save_pretrained."
        )
    if not hub.reachable():
        raise ModelLoadError(
            f"Could not fetch model '{name}': the Hugging Face Hub cannot be reached from here (offline?). "
            "Download it once while online, or type the path of a local folder written by save_pretrained."
        )
    log.info("Downloading %s from the Hugging Face Hub (first use only) ...", name)
    return _load_files(name, model_class, processor_class, device, dtype, attn_implementation, local_only=False)


def _load_files(name, model_class, processor_class, device, dtype, attn_implementation, local_only) -> LoadedModel:
    common = dict(trust_remote_code=current_settings().trust_remote_code, local_files_only=local_only)
    try:
        try:
            model = model_class.from_pretrained(
                name, dtype=dtype, attn_implementation=attn_implementation, use_safetensors=True, **common
            )
        except ValueError as error:
            # Some architectures have no SDPA path; eager always exists.
            if "sdpa" not in str(error).lower() and "attn_implementation" not in str(error):
                raise
            model = model_class.from_pretrained(
                name, dtype=dtype, attn_implementation="eager", use_safetensors=True, **common
            )
        # transformers 5 saves a multi-part processor (BLIP) as processor_config.json alone.
        processor_files = ("preprocessor_config.json", "processor_config.json")
        if Path(name).is_dir() and not any((Path(name) / file).is_file() for file in processor_files):
            raise ModelLoadError(
                f"The folder '{name}' has the model but no preprocessor_config.json: save the image processor "
                "with it (image_processor.save_pretrained(folder))."
            )
        processor = processor_class.from_pretrained(name, **common)
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - every loader failure becomes one clear sentence
        raise ModelLoadError(_explain_load_failure(name, error)) from error
    try:
        # Inference only: no parameter gradients (gradient rollout asks for gradients of the input instead).
        model.to(device).eval().requires_grad_(False)
    except RuntimeError as error:
        raise ModelLoadError(
            f"'{name}' does not fit on {device} ({_first_line(error)}). Try --precision bf16, "
            "a smaller model, or --device cpu."
        ) from error
    return LoadedModel(name=name, model=model, processor=processor, device=device, dtype=dtype)


def _missing_locally(error: BaseException | None) -> bool:
    """Whether a local-files-only load failed because the files are not in the cache (rather than unusable)."""
    return hub_failure(error) is HubFailure.NOT_CACHED


def _explain_load_failure(name: str, error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    if "trust_remote_code" in text:
        return (
            f"'{name}' needs code from its repository to run. Start the app with --trust-remote-code "
            "if you trust that code."
        )
    if is_model_folder(Path(name)):
        if "safetensors" in text:
            return (
                f"The folder '{name}' has no model.safetensors. ViT Studio loads safetensors only "
                "(pickled .bin files can run code); re-save it with save_pretrained(safe_serialization=True)."
            )
        return f"The folder '{name}' does not hold a model this tab can use: {_first_line(error)}"
    failure = hub_failure(error)
    refused = hub.repository_message(failure, name, instead="the path of a local folder written by save_pretrained")
    if refused is not None:
        return refused
    if "safetensors" in text and (failure is HubFailure.NO_SUCH_FILE or "does not appear to have" in text):
        return (
            f"'{name}' has no safetensors weights on the Hub. ViT Studio loads safetensors only "
            "(pickled .bin files can run code); pick another model or convert this one."
        )
    if "Unrecognized configuration class" in text:
        return f"'{name}' is not a model this tab can use: {_first_line(error)}"
    return f"Could not load model '{name}': {_first_line(error)}"


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def preload_classifier(name: str) -> None:
    """Load a classifier ahead of the first click (for a background thread); failures are logged, not raised."""
    try:
        load_classifier(name)
        log.info("Ready: %s", name)
    except ModelLoadError as error:
        log.warning("%s The app keeps running; local models still work.", error)


def fetch_pretrained(
    name: str,
    model_class,
    processor_class,
    *,
    device: str | None = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
) -> LoadedModel:
    """A fresh load outside the cache, with the same lookup and messages as the cached loaders (local files
    first, the Hub only when reachable): for training, which changes the weights it was given."""
    with _LOAD_LOCK:
        return _from_pretrained(
            _resolve_name(name), model_class, processor_class, pick_device(device), dtype, attn_implementation
        )
