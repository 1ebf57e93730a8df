"""Zero-shot without the Hub: open_clip's weights come from the local caches, or the answer "offline" comes at once.

open_clip fetches through huggingface_hub, which retries an unreachable Hub five times a file (47 s for the
default model). The engine must look in the caches first and ask the Hub only when it can be reached."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core import ModelLoadError, zero_shot
from core.zero_shot import clear_cache, load_clip

LABELS = ["cat", "astronaut", "rocket"]


@pytest.fixture(autouse=True)
def fresh_clip_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache that huggingface_hub (and so open_clip and the engine) looks in."""
    from huggingface_hub import constants

    folder = tmp_path / "hub-cache"
    folder.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    return folder


def cache_files(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Put files into the cache as a download of repo_id's main branch would (refs/main -> snapshots/REV/)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    return snapshot


@pytest.fixture
def opened_by_open_clip(monkeypatch):
    """The names open_clip is asked to build (a spy: the real function still runs)."""
    import open_clip

    asked: list[str] = []
    real = open_clip.create_model_and_transforms

    def spy(name, *args, **kwargs):
        asked.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", spy)
    return asked


def test_the_default_model_says_offline_at_once_when_the_hub_is_unreachable(
    unreachable_hub, hub_cache, opened_by_open_clip, chelsea
):
    with pytest.raises(ModelLoadError) as caught:
        zero_shot(chelsea, LABELS)  # ViT-B-32 with laion2b_s34b_b79k, never downloaded here
    message = str(caught.value)
    assert "Could not fetch the 'laion2b_s34b_b79k' weights for ViT-B-32" in message
    assert "cannot be reached" in message and "local checkpoint file" in message
    assert opened_by_open_clip == []  # refused before open_clip (and its retries) were asked


def test_an_hf_hub_model_says_offline_at_once_too(unreachable_hub, hub_cache, opened_by_open_clip, chelsea):
    with pytest.raises(ModelLoadError, match="Could not fetch 'hf-hub:someone/clip'.*cannot be reached.*local-dir:"):
        zero_shot(chelsea, LABELS, model="hf-hub:someone/clip", pretrained=None)
    assert opened_by_open_clip == []


def test_offline_mode_says_so(monkeypatch, hub_cache, opened_by_open_clip, chelsea):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clear_cache()
    with pytest.raises(ModelLoadError, match="offline mode is on"):
        zero_shot(chelsea, LABELS)
    assert opened_by_open_clip == []


def test_a_cached_hf_hub_model_loads_without_the_hub(
    unreachable_hub, hub_cache, opened_by_open_clip, tiny_open_clip_dir, chelsea
):
    files = {name: tiny_open_clip_dir / name for name in ("open_clip_config.json", "open_clip_model.safetensors")}
    snapshot = cache_files(hub_cache, "someone/tiny-clip", files)
    from_cache = zero_shot(chelsea, LABELS, model="hf-hub:someone/tiny-clip", pretrained=None, precision="fp32")
    assert opened_by_open_clip == [f"local-dir:{snapshot}"]
    from_folder = zero_shot(chelsea, LABELS, model=f"local-dir:{tiny_open_clip_dir}", pretrained=None, precision="fp32")
    assert [p.label for p in from_cache] == [p.label for p in from_folder]
    assert np.allclose([p.score for p in from_cache], [p.score for p in from_folder], atol=1e-6)


def test_a_cached_tag_loads_from_its_file_with_the_tags_preprocessing(unreachable_hub, hub_cache, tmp_path):
    """MobileCLIP2-S0's tag normalises with mean 0 and std 1 (not CLIP's): open_clip applies that only when it
    loads by the tag, so the engine must carry it over when it loads the cached file instead."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    random_weights = open_clip.create_model("MobileCLIP2-S0").state_dict()
    weights = tmp_path / "open_clip_model.safetensors"
    save_file({name: tensor.half().contiguous() for name, tensor in random_weights.items()}, weights)
    cache_files(hub_cache, "timm/MobileCLIP2-S0-OpenCLIP", {"open_clip_model.safetensors": weights})

    loaded = load_clip("MobileCLIP2-S0", "dfndr2b", device="cpu", precision="fp32")
    normalize = next(step for step in loaded.preprocess.transforms if type(step).__name__ == "Normalize")
    assert tuple(normalize.mean) == (0.0, 0.0, 0.0) and tuple(normalize.std) == (1.0, 1.0, 1.0)
    name, tensor = next(iter(random_weights.items()))
    assert torch.equal(loaded.model.state_dict()[name], tensor.half().float())  # the cached file's weights
    assert loaded.name == "MobileCLIP2-S0"
