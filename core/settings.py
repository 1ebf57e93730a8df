"""Every launch-time choice in one object, from app.py's flags or from the environment.

The only module in the project that reads ViT Studio's environment variables: a process of its own (such as
`streamlit run`) takes app.py's flags from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")  # what inference may run in (training: fewer)
DEFAULT_CLASSIFIER = "google/vit-base-patch16-224"


@dataclass(frozen=True)
class Settings:
    """What the app was started with. Read it with current_settings(); change it with configure()."""

    # How models run.
    device: str = "auto"  # auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps
    precision: str = "auto"  # one of PRECISIONS; auto is bf16 where the hardware is fast at it
    trust_remote_code: bool = False
    default_model: str = DEFAULT_CLASSIFIER
    # The folders (with what is inside them) a model or checkpoint may be loaded from by its path; None: any, as
    # on one's own machine. A shared app lists only its own (the default model's, the runs folder), so a model
    # box cannot be used to load, train on or download whatever model files the server happens to hold.
    model_folders: tuple[str, ...] | None = None
    # Sizes of the model caches, read once, at import. A ViT-B costs ~350 MB in fp32; three is enough to flip
    # between models in the UI.
    model_cache_size: int = 3
    clip_cache_size: int = 2
    # Larger images are refused before they are decoded (decompression bombs). Read once, at import: PIL's own
    # limit is set from it then.
    max_pixels: int = 50_000_000
    # Where files go.
    runs_dir: Path = Path("runs")
    cache_dir: Path = Path.home() / ".cache" / "vit-studio"  # example photos and data written once
    # Who can reach the app.
    on_space: bool = False  # a Hugging Face Space (it sets SPACE_ID)
    shared: bool = False  # others than this machine's user can reach it: a Space, --share, a classroom --host
    allow_server_paths: bool = False  # the Train tab may read a folder on the server by its path
    # Training data, and a Space's disk.
    max_data_bytes: int = 2 * 1024**3  # a zip of training data or of photos to classify, unpacked
    max_data_files: int = 50_000
    keep_runs_hours: float = 6.0  # on a Space, a visitor's run goes this long after it last changed
    runs_quota_gb: float = 10.0  # on a Space, no new run starts once the runs folder is this big


# The variables each setting is read from. Flags win: app.py passes them to configure() (and to a Streamlit
# process as these variables, since it is a process of its own). Left to their libraries: HF_HUB_OFFLINE and
# HF_ENDPOINT (core.hub reads them), GRADIO_SERVER_PORT, accelerate's RANK and WORLD_SIZE, and SPACES_ZERO_GPU,
# which app.py reads before torch is imported (the spaces package must be imported first).
ENVIRONMENT: dict[str, str] = {
    "device": "VIT_STUDIO_DEVICE",
    "precision": "VIT_STUDIO_PRECISION",
    "trust_remote_code": "VIT_STUDIO_TRUST_REMOTE_CODE",
    "default_model": "VIT_STUDIO_MODEL",
    "model_cache_size": "VIT_STUDIO_MODEL_CACHE",
    "clip_cache_size": "VIT_STUDIO_CLIP_CACHE",
    "max_pixels": "VIT_STUDIO_MAX_PIXELS",
    "runs_dir": "VIT_STUDIO_RUNS",
    "cache_dir": "VIT_STUDIO_CACHE",
    "on_space": "SPACE_ID",
    "shared": "VIT_STUDIO_SHARED",
    "allow_server_paths": "VIT_STUDIO_ALLOW_SERVER_PATHS",
    "max_data_bytes": "VIT_STUDIO_MAX_DATA_BYTES",
    "max_data_files": "VIT_STUDIO_MAX_DATA_FILES",
    "keep_runs_hours": "VIT_STUDIO_KEEP_RUNS_HOURS",
    "runs_quota_gb": "VIT_STUDIO_RUNS_QUOTA_GB",
}
_TRUE = ("1", "t", "true", "yes", "on")


def from_environment(environ: Mapping[str, str]) -> Settings:
    """Settings from environment variables; one that is unset or empty keeps its default, one that is not a number
    where a number belongs is a ValueError naming it."""
    defaults = Settings()
    values: dict[str, Any] = {}
    for field in fields(Settings):
        variable = ENVIRONMENT.get(field.name)
        text = environ.get(variable, "").strip() if variable else ""
        if text:
            values[field.name] = _parsed(text, getattr(defaults, field.name), field.name, variable)
    if values.get("on_space"):
        values["shared"] = True  # a Space is always reachable by others,
        values["allow_server_paths"] = False  # and a path box there would show them the Space's files
    values.pop("model_folders", None)  # never from the environment: a shared app computes its own
    if values.get("precision", "auto") not in PRECISIONS:
        variable = ENVIRONMENT["precision"]
        raise ValueError(f"{variable}={values['precision']!r} is not a precision: use one of {', '.join(PRECISIONS)}.")
    return replace(defaults, **values)


def _parsed(text: str, default: Any, name: str, variable: str | None) -> Any:
    if name == "on_space":
        return True  # SPACE_ID holds the Space's name; being set is what counts
    if isinstance(default, bool):
        return text.lower() in _TRUE
    if isinstance(default, Path):
        return Path(text).expanduser()
    if isinstance(default, str):
        return text
    try:
        return type(default)(text.replace("_", ""))  # 50_000_000 reads as Python writes it
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not a number: set it to e.g. {default}, or unset it.") from None


def environment_settings() -> Settings:
    """The settings this process's environment gives, read now (nothing is put in place)."""
    return from_environment(os.environ)


_configured: Settings | None = None


def current_settings() -> Settings:
    """The launch settings: what configure() set, else the environment as it is now."""
    return _configured if _configured is not None else environment_settings()


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # configure()'s default: leave this setting as it is


def configure(
    *,
    device: str = KEEP,
    precision: str = KEEP,
    trust_remote_code: bool = KEEP,
    default_model: str = KEEP,
    model_folders: tuple[str, ...] | None = KEEP,
    runs_dir: str | Path = KEEP,
    shared: bool = KEEP,
    allow_server_paths: bool = KEEP,
) -> Settings:
    """Fix the settings for this process (app.py's flags, a test); what is not passed stays as it is. Returns the
    new settings."""
    if precision is not KEEP and precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    changes: dict[str, Any] = {
        "device": device,
        "precision": precision,
        "trust_remote_code": trust_remote_code,
        "default_model": default_model,
        "model_folders": model_folders,
        "runs_dir": Path(runs_dir) if runs_dir is not KEEP else KEEP,
        "shared": shared,
        "allow_server_paths": allow_server_paths,
    }
    return use_settings(
        replace(current_settings(), **{name: value for name, value in changes.items() if value is not KEEP})
    )


def use_settings(new: Settings | None) -> Settings:
    """Put a whole Settings in place, or None to read the environment again (a test restores what it found)."""
    global _configured
    _configured = new
    return current_settings()


def configured() -> Settings | None:
    """What configure() set, or None while the settings come from the environment."""
    return _configured
