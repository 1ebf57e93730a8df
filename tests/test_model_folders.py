"""A shared app loads models by path only from its own folders: a model box must not reach the server's other
model files (to classify with them, train on them, then download the run), and says the same for every path."""

from __future__ import annotations

import shutil

import pytest
import torch

from core import ModelLoadError, configure
from core.models import fetch_pretrained, load_classifier, not_a_model
from core.zero_shot import not_a_clip_model, resolve_model, weights_source


@pytest.fixture
def shared_app(restore_settings, tmp_path, tiny_vit_dir, tiny_open_clip_dir):
    """The app's own folder (holding a copy of the tiny ViT and CLIP), and a server folder with the same models."""
    own, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    for folder in (own, elsewhere):
        shutil.copytree(tiny_vit_dir, folder / "vit")
        shutil.copytree(tiny_open_clip_dir, folder / "clip")
    (own / "link").symlink_to(elsewhere / "vit")  # a link in the app's folder must not lead out of it
    configure(model_folders=(str(own),))
    return own, elsewhere


def test_only_the_apps_own_model_folders_load(shared_app, empty_model_cache):
    own, elsewhere = shared_app
    assert load_classifier(str(own / "vit")).model is not None
    for name in (str(elsewhere / "vit"), str(own / "link"), f"{own}/../elsewhere/vit"):
        with pytest.raises(ModelLoadError) as refused:
            load_classifier(name)
        assert str(refused.value) == not_a_model(name)  # word for word what a path to nothing gets
    with pytest.raises(ModelLoadError, match="neither a model id on the Hub nor a model folder"):
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        fetch_pretrained(str(elsewhere / "vit"), AutoModelForImageClassification, AutoImageProcessor)


def test_clip_folders_and_checkpoint_files_only_from_the_apps_folders(shared_app):
    own, elsewhere = shared_app
    assert resolve_model(str(own / "clip"))[0] == "open_clip"
    for name in (str(elsewhere / "clip"), f"local-dir:{elsewhere / 'clip'}"):
        with pytest.raises(ValueError) as refused:
            resolve_model(name)
        assert str(refused.value) == not_a_clip_model(name)
    checkpoint = next((elsewhere / "clip").glob("*.safetensors"), None) or next((elsewhere / "clip").glob("*.bin"))
    with pytest.raises(ValueError, match="nor a checkpoint file the app can read"):
        weights_source("ViT-B-32", str(checkpoint))


def test_on_ones_own_machine_any_folder_loads(restore_settings, tmp_path, tiny_vit_dir, empty_model_cache):
    configure(model_folders=None)
    copy = shutil.copytree(tiny_vit_dir, tmp_path / "anywhere")
    assert isinstance(load_classifier(str(copy)).model, torch.nn.Module)


def test_a_shared_app_opens_its_default_model_and_its_runs_folder(tmp_path, tiny_vit_dir):
    from training.access import shared_model_folders

    folders = shared_model_folders(str(tiny_vit_dir), tmp_path / "runs")
    assert folders == (str((tmp_path / "runs").resolve()), str(tiny_vit_dir.resolve()))
    runs_only = (str((tmp_path / "runs").resolve()),)
    assert shared_model_folders("google/vit-base-patch16-224", tmp_path / "runs") == runs_only
