"""core.models: local folders and hub ids, clear load errors, the LRU cache, device and precision choices."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from core import ModelLoadError, configure, current_settings, models
from core.models import load_classifier, pick_device, pick_dtype

CPU = torch.device("cpu")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def parameter_dtype(loaded) -> torch.dtype:
    return next(loaded.model.parameters()).dtype


# --- what loads ---------------------------------------------------------------------------------------------


def test_local_vit_folder_loads_with_its_processor(tiny_vit_dir, tiny_labels):
    loaded = load_classifier(str(tiny_vit_dir), precision="fp32")
    assert type(loaded.model).__name__ == "ViTForImageClassification"
    assert not loaded.model.training
    assert loaded.processor.size == {"height": 32, "width": 32}
    assert [loaded.model.config.id2label[index] for index in range(len(tiny_labels))] == list(tiny_labels)
    assert loaded.name == str(tiny_vit_dir.resolve()) and loaded.device == CPU


def test_distilled_deit_folder_loads_through_the_same_call(tiny_deit_dir):
    loaded = load_classifier(str(tiny_deit_dir), precision="fp32")
    assert type(loaded.model).__name__ == "DeiTForImageClassificationWithTeacher"


def test_relative_and_absolute_paths_share_one_cache_entry(tiny_vit_dir, monkeypatch, empty_model_cache):
    first = load_classifier(str(tiny_vit_dir), precision="fp32")
    monkeypatch.chdir(tiny_vit_dir.parent)
    assert load_classifier(f"./{tiny_vit_dir.name}", precision="fp32") is first
    assert load_classifier(f"  {tiny_vit_dir}  ", precision="fp32") is first


# --- what is refused, and how it is explained ---------------------------------------------------------------


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_unknown_local_path_is_a_model_load_error_naming_it(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    missing = "./no-such-model" if relative else str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError) as caught:
        load_classifier(missing)
    assert isinstance(caught.value, ValueError)
    assert missing in str(caught.value)


@pytest.mark.parametrize("name", ["", "   ", None])
def test_no_model_name_is_a_model_load_error(name):
    with pytest.raises(ModelLoadError, match="No model given"):
        load_classifier(name)


def test_folder_without_a_model_is_a_model_load_error_naming_it(tmp_path):
    folder = tmp_path / "holiday-photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="holiday-photos"):
        load_classifier(str(folder))


def test_uncached_hub_id_while_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "vit-studio-tests/never-downloaded-vit"
    with pytest.raises(ModelLoadError) as caught:
        load_classifier(name)
    message = str(caught.value)
    assert name in message and "HF_HUB_OFFLINE" in message and "local folder" in message


def test_uncached_hub_id_with_the_hub_unreachable_says_so_quickly(unreachable_hub):
    name = "vit-studio-tests/never-downloaded-vit"
    with pytest.raises(ModelLoadError) as caught:
        load_classifier(name)
    message = str(caught.value)
    assert name in message and "cannot be reached" in message and "local folder" in message


def test_folder_with_only_pickled_weights_is_refused_for_safetensors(tiny_vit_dir, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled-vit"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(tiny_vit_dir / name, folder / name)
    # transformers 5 ignores save_pretrained(safe_serialization=False), so write the legacy file by hand
    torch.save(load_file(tiny_vit_dir / "model.safetensors"), folder / "pytorch_model.bin")

    with pytest.raises(ModelLoadError) as caught:
        load_classifier(str(folder))
    message = str(caught.value)
    assert str(folder) in message and "safetensors" in message
    assert not in_memory(str(folder))


def test_text_config_folder_is_refused_as_not_an_image_classifier(tmp_path):
    from transformers import BertConfig

    folder = tmp_path / "a-text-model"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="a-text-model.*does not hold a model"):
        load_classifier(str(folder))


# --- the cache ----------------------------------------------------------------------------------------------


def in_memory(folder: str) -> bool:
    """Whether some variant of the model in this folder is in the engine's cache (keys start with the resolved path)."""
    resolved = str(Path(folder).resolve())
    return any(key[0] == resolved for key in models._cache.keys())


def test_second_load_returns_the_same_object(tiny_vit_dir, empty_model_cache):
    assert not in_memory(str(tiny_vit_dir))
    first = load_classifier(str(tiny_vit_dir), precision="fp32")
    assert in_memory(str(tiny_vit_dir))
    assert load_classifier(str(tiny_vit_dir), precision="fp32") is first
    assert load_classifier(str(tiny_vit_dir), precision="bf16") is not first  # another variant, another entry


def test_on_load_hears_the_resolved_name_once_on_a_miss_and_never_on_a_hit(
    tiny_vit_dir, empty_model_cache, monkeypatch
):
    monkeypatch.chdir(tiny_vit_dir.parent)
    heard: list[str] = []
    first = load_classifier(f"./{tiny_vit_dir.name}", precision="fp32", on_load=heard.append)
    assert heard == [str(tiny_vit_dir.resolve())]  # the resolved name, not the relative one typed
    assert load_classifier(str(tiny_vit_dir), precision="fp32", on_load=heard.append) is first
    assert len(heard) == 1  # a hit says nothing
    load_classifier(str(tiny_vit_dir), precision="bf16", on_load=heard.append)  # another variant: a real load
    assert heard == [str(tiny_vit_dir.resolve())] * 2


def test_on_load_is_heard_before_the_load_runs_and_also_for_a_load_that_fails(tmp_path, empty_model_cache):
    cache = models.ModelCache(2)
    events: list[str] = []

    def load() -> str:
        events.append("load")
        return "model"

    assert cache.get_or_load(("a",), load, on_load=lambda: events.append("on_load")) == "model"
    assert cache.get_or_load(("a",), load, on_load=lambda: events.append("on_load")) == "model"
    assert events == ["on_load", "load"]

    folder = tmp_path / "not-loadable"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # a model folder by its config.json, but no model in it
    heard: list[str] = []
    with pytest.raises(ModelLoadError):
        load_classifier(str(folder), on_load=heard.append)
    assert heard == [str(folder.resolve())]


def test_cache_evicts_the_least_recently_used_beyond_cache_size(
    tiny_vit_dir, tiny_deit_dir, monkeypatch, empty_model_cache
):
    monkeypatch.setattr(models._cache, "size", 2)
    vit = load_classifier(str(tiny_vit_dir), precision="fp32")
    deit = load_classifier(str(tiny_deit_dir), precision="fp32")
    assert load_classifier(str(tiny_vit_dir), precision="fp32") is vit  # vit is now the most recently used

    load_classifier(str(tiny_vit_dir), precision="bf16")  # a third entry pushes out the oldest: deit

    assert len(models._cache) == 2
    assert not in_memory(str(tiny_deit_dir))
    assert load_classifier(str(tiny_vit_dir), precision="fp32") is vit
    assert load_classifier(str(tiny_deit_dir), precision="fp32") is not deit  # loaded afresh


def test_clear_cache_forgets_every_model(tiny_vit_dir, empty_model_cache):
    first = load_classifier(str(tiny_vit_dir), precision="fp32")
    models.clear_cache()
    assert not in_memory(str(tiny_vit_dir))
    assert load_classifier(str(tiny_vit_dir), precision="fp32") is not first


# --- device and precision -----------------------------------------------------------------------------------


def test_auto_precision_is_bf16_exactly_when_the_cpu_has_fast_bf16(tiny_vit_dir):
    fast_bf16 = bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})
    expected = torch.bfloat16 if fast_bf16 else torch.float32
    assert pick_dtype("auto", CPU) == expected
    loaded = load_classifier(str(tiny_vit_dir), device="cpu", precision="auto")
    assert loaded.dtype == expected and parameter_dtype(loaded) == expected


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_explicit_precision_sets_the_weights_dtype(tiny_vit_dir, precision, dtype):
    loaded = load_classifier(str(tiny_vit_dir), device="cpu", precision=precision)
    assert loaded.dtype == dtype and parameter_dtype(loaded) == dtype


def test_configured_precision_is_the_default_for_loads(tiny_vit_dir, restore_settings):
    configure(precision="fp32")
    assert parameter_dtype(load_classifier(str(tiny_vit_dir))) == torch.float32
    configure(precision="bf16")
    assert parameter_dtype(load_classifier(str(tiny_vit_dir))) == torch.bfloat16


@pytest.mark.parametrize("precision", ["fp8", "float32", "BF16"])
def test_unknown_precision_is_a_value_error(tiny_vit_dir, restore_settings, precision):
    before = current_settings()
    with pytest.raises(ValueError, match="Unknown precision"):
        load_classifier(str(tiny_vit_dir), precision=precision)
    with pytest.raises(ValueError, match="Unknown precision"):
        pick_dtype(precision, CPU)
    with pytest.raises(ValueError, match="Unknown precision"):
        configure(precision=precision)
    assert current_settings() == before  # a refused configure changes nothing


def test_auto_device_is_cpu_without_an_accelerator():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert pick_device("auto") == CPU
    assert pick_device("cpu") == CPU


@pytest.mark.parametrize("device, words", [("cuda", "no CUDA GPU"), ("banana", "Unknown device 'banana'")])
def test_unusable_device_is_a_value_error(device, words):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ValueError, match=words):
        pick_device(device)


def test_a_folder_without_its_image_processor_says_to_save_it(tiny_vit_dir, tmp_path):
    folder = tmp_path / "no-processor"
    shutil.copytree(tiny_vit_dir, folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ModelLoadError, match="no preprocessor_config.json: save the image processor"):
        load_classifier(str(folder))


def test_concurrent_loads_of_two_variants_keep_their_own_dtypes(tiny_vit_dir, empty_model_cache):
    # from_pretrained sets torch's global default dtype while building; parallel loads must not mix them.
    from concurrent.futures import ThreadPoolExecutor

    from core.models import load_explainable

    with ThreadPoolExecutor(max_workers=2) as pool:
        fp32 = pool.submit(load_classifier, str(tiny_vit_dir), precision="fp32")
        bf16 = pool.submit(load_explainable, str(tiny_vit_dir), precision="bf16")
        fp32_model, bf16_model = fp32.result(), bf16.result()
    assert {p.dtype for p in fp32_model.model.parameters()} == {torch.float32}
    assert {p.dtype for p in bf16_model.model.parameters()} == {torch.bfloat16}
