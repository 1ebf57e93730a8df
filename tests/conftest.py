"""Shared fixtures: tiny random ViT-family models saved with save_pretrained, and real photos from skimage.data.

Nothing here (or in any test) reaches the network: the Hub is switched off before transformers is imported,
and every model is built on the fly into a temporary folder and loaded by the engine's real loading code.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub/transformers (they read these once, at import time).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Should some code path still try the Hub, it meets a closed port on this machine, never the internet.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

# Real class names, so tests can tell labels from the config apart from transformers' LABEL_i fallbacks.
TINY_LABELS = ("tabby cat", "astronaut", "coffee cup", "space rocket", "cameraman")
TINY_IMAGE_SIZE = 32

PHOTO_NAMES = ("chelsea", "astronaut", "coffee", "rocket", "camera")


def tiny_config_kwargs() -> dict:
    """The shape of every tiny model in the suite: 32x32 input, 8x8 patches, 2 layers, 5 labels."""
    return dict(
        image_size=TINY_IMAGE_SIZE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(TINY_LABELS),
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: index for index, label in enumerate(TINY_LABELS)},
    )


def save_tiny_model(model, folder: Path) -> Path:
    """save_pretrained the model and a matching 32x32 ViTImageProcessor into folder."""
    from transformers import ViTImageProcessor

    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_labels() -> tuple[str, ...]:
    """The class names of the tiny models, by index (their config's id2label)."""
    return TINY_LABELS


@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory) -> Path:
    """A local folder holding a tiny random ViTForImageClassification, as save_pretrained writes it."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(**tiny_config_kwargs()))
    return save_tiny_model(model, tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="session")
def tiny_deit_dir(tmp_path_factory) -> Path:
    """A tiny random distilled DeiT (two prefix tokens, averaged heads): another ViT-family classifier."""
    import torch
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    torch.manual_seed(1)
    model = DeiTForImageClassificationWithTeacher(DeiTConfig(**tiny_config_kwargs()))
    return save_tiny_model(model, tmp_path_factory.mktemp("tiny-deit"))


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photos that ship with scikit-image: name -> uint8 array (camera is greyscale HxW)."""
    from skimage import data

    return {name: getattr(data, name)() for name in PHOTO_NAMES}


@pytest.fixture(scope="session")
def chelsea(photos) -> np.ndarray:
    """The cat photo, uint8 HxWx3."""
    return photos["chelsea"]


@pytest.fixture(scope="session")
def photo_path(tmp_path_factory, photos) -> Path:
    """chelsea written to a PNG file, for tests that need a path (CLI, uploads, browsers)."""
    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.fromarray(photos["chelsea"]).save(path)
    return path


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory, photos) -> dict[str, Path]:
    """Every photo written to its own file (JPEG for colour, PNG for the greyscale one)."""
    folder = tmp_path_factory.mktemp("photo-files")
    paths = {}
    for name, array in photos.items():
        path = folder / (f"{name}.png" if array.ndim == 2 else f"{name}.jpg")
        Image.fromarray(array).save(path)
        paths[name] = path
    return paths


@pytest.fixture
def empty_model_cache():
    """Start and end with no models in the engine's LRU cache (for tests that count loads)."""
    from core import models

    models.clear_cache()
    yield models
    models.clear_cache()


@pytest.fixture(autouse=True)
def restore_settings():
    """Put the launch settings back after every test: configure() is process-wide, and a Streamlit page run
    in-process (AppTest) configures the engine from the environment a test set. Unconfigured, settings follow the
    environment, which monkeypatch restores."""
    from core import settings as launch

    saved = launch.configured()
    yield launch
    launch.use_settings(saved)


@pytest.fixture(scope="session")
def tiny_config():
    """A factory for the tiny models' config kwargs (a fresh dict each call), for tests that build variants."""
    return tiny_config_kwargs


# ---- tiny CLIP folders (zero-shot engine and its end-to-end tests) -----------------------------------------


@pytest.fixture(scope="session")
def tiny_open_clip_dir(tmp_path_factory) -> Path:
    """A tiny random open_clip ViT CLIP in open_clip's local-dir format: pass model=f"local-dir:{folder}".
    Nothing is registered in this process, so an app started in a subprocess loads it the same way."""
    from tiny_clips import save_tiny_open_clip

    return save_tiny_open_clip(tmp_path_factory.mktemp("tiny-open-clip"))


@pytest.fixture(scope="session")
def tiny_hf_clip_dir(tmp_path_factory) -> Path:
    """A tiny random transformers CLIPModel with its CLIPProcessor (offline-built tokenizer): pass the folder
    as model=str(folder)."""
    from tiny_clips import save_tiny_hf_clip

    return save_tiny_hf_clip(tmp_path_factory.mktemp("tiny-hf-clip"))


# ---- a Hub that cannot be reached ---------------------------------------------------------------------------


@pytest.fixture
def closed_address() -> str:
    """An http address on this machine where nothing listens: a connection is refused at once, no real network."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def unreachable_hub(monkeypatch, closed_address):
    """Online mode, but HF_ENDPOINT is a closed port: what a classroom whose wifi is down sees."""
    from core import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", closed_address)
    hub.forget_reachability()
    yield closed_address
    hub.forget_reachability()
