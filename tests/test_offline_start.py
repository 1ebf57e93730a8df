"""A classroom without wifi: the app says so once, and every model box starts on something that loads here."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from core import hub_available, loads_offline
from core.hub import forget_reachability, in_local_cache
from training.examples import write_shapes_zip
from training.finetune import FinetuneConfig, finetune
from training.runs import list_runs
from ui.shared.models import NEEDS_HUB, model_box_choices

HUB_ID = "google/vit-base-patch16-224"
OTHER_ID = "facebook/deit-small-patch16-224"


@pytest.fixture(scope="module")
def runs_with_one_finished(tiny_vit_dir, tmp_path_factory) -> Path:
    """A runs folder holding one finished head-only run of the tiny ViT on the shapes set."""
    root = tmp_path_factory.mktemp("offline-runs")
    shapes_zip = write_shapes_zip(tmp_path_factory.mktemp("offline-shapes"), per_class=8)
    events = list(
        finetune(
            FinetuneConfig(
                train_dir=shapes_zip,
                output_dir=root / "shapes-run",
                model_name_or_path=str(tiny_vit_dir),
                mode="head",
                num_train_epochs=1,
                per_device_train_batch_size=8,
            )
        )
    )
    assert type(events[-1]).__name__ == "Finished"
    return root


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache folder in place of the user's."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def cache_config(cache: Path, repo_id: str) -> None:
    """What a download leaves in the cache for a repository's config.json (refs/main -> a snapshot)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")


# ---- what loads without the Hub -----------------------------------------------------------------------------


def test_a_model_folder_and_a_downloaded_hub_id_load_offline(tiny_vit_dir, hub_cache, tmp_path):
    assert loads_offline(str(tiny_vit_dir))
    assert not loads_offline(HUB_ID) and not in_local_cache(HUB_ID)
    cache_config(hub_cache, HUB_ID)
    assert loads_offline(HUB_ID) and in_local_cache(HUB_ID)
    assert not loads_offline(str(tmp_path))  # a folder without a config.json is no model
    assert not loads_offline("not a model id!") and not loads_offline("")


def test_the_hub_is_unavailable_offline_or_unreachable_and_available_when_it_answers(monkeypatch, unreachable_hub):
    assert not hub_available()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        forget_reachability()
        assert hub_available()
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline mode wins even where the Hub answers
        assert not hub_available()


# ---- what a model box offers ----------------------------------------------------------------------------------


def test_online_the_default_and_suggestions_come_first_then_the_runs(runs_with_one_finished):
    runs = list_runs(runs_with_one_finished)
    offered = model_box_choices(HUB_ID, (OTHER_ID, HUB_ID), runs, hub_up=True, loads_offline=lambda name: False)
    run_path = str((runs_with_one_finished / "shapes-run").resolve())
    assert offered.values == (HUB_ID, OTHER_ID, run_path)
    assert offered.start == HUB_ID
    assert offered.choices[-1][0].startswith("shapes-run (your run, val acc ")


def test_offline_the_runs_come_first_and_hub_only_ids_are_marked(runs_with_one_finished, tiny_vit_dir):
    runs = list_runs(runs_with_one_finished)
    loadable = {str(tiny_vit_dir)}
    offered = model_box_choices(
        HUB_ID, (str(tiny_vit_dir), OTHER_ID), runs, hub_up=False, loads_offline=lambda name: name in loadable
    )
    run_path = str((runs_with_one_finished / "shapes-run").resolve())
    assert offered.values == (run_path, str(tiny_vit_dir), HUB_ID, OTHER_ID)
    assert offered.start == run_path  # the default needs the Hub: the newest run instead
    assert dict((value, label) for label, value in offered.choices)[HUB_ID] == f"{HUB_ID} ({NEEDS_HUB})"
    # A default that loads here (downloaded before) stays the default, after the runs in the list.
    loadable.add(HUB_ID)
    again = model_box_choices(HUB_ID, (OTHER_ID,), runs, hub_up=False, loads_offline=lambda name: name in loadable)
    assert again.start == HUB_ID and again.values[0] == run_path


def test_offline_with_no_run_and_nothing_downloaded_the_box_keeps_the_default():
    offered = model_box_choices(HUB_ID, (OTHER_ID,), [], hub_up=False, loads_offline=lambda name: False)
    assert offered.start == HUB_ID
    assert all(label.endswith(f"({NEEDS_HUB})") for label, _ in offered.choices)


def test_unfinished_runs_are_not_offered_as_models(runs_with_one_finished, tmp_path):
    import dataclasses

    (summary,) = list_runs(runs_with_one_finished)
    stopped = dataclasses.replace(summary, status="stopped")
    offered = model_box_choices(HUB_ID, (), [stopped], hub_up=False, loads_offline=lambda name: False)
    assert offered.values == (HUB_ID,)


# ---- the Gradio app built offline -------------------------------------------------------------------------------


def _dropdown(demo, elem_id: str):
    return next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)


def test_gradio_offline_says_so_and_starts_classify_and_attention_on_the_run(
    runs_with_one_finished, monkeypatch, unreachable_hub
):
    from core import configure
    from ui.gradio_app import build_demo

    configure(runs_dir=runs_with_one_finished)
    demo = build_demo()  # the default model is the Hub's, never downloaded here
    run_path = str((runs_with_one_finished / "shapes-run").resolve())
    assert _dropdown(demo, "offline-banner").visible
    for box in ("classify-model", "attention-model"):
        dropdown = _dropdown(demo, box)
        assert dropdown.value == run_path
        assert dropdown.choices[0][1] == run_path
        assert (f"{HUB_ID} ({NEEDS_HUB})", HUB_ID) in dropdown.choices


def test_gradio_online_shows_no_banner_and_keeps_the_hub_default(monkeypatch, tiny_vit_dir):
    from ui.gradio_app import build_demo

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        forget_reachability()
        try:
            demo = build_demo()
        finally:
            forget_reachability()
    assert not _dropdown(demo, "offline-banner").visible
    assert _dropdown(demo, "classify-model").value == HUB_ID


# ---- the Streamlit app offline ----------------------------------------------------------------------------------


def test_streamlit_offline_says_so_and_classify_starts_on_the_run(runs_with_one_finished, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("VIT_STUDIO_MODEL", raising=False)  # the Hub's default model, never downloaded here
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(runs_with_one_finished))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path / "cache"))
    app = str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    assert not at.exception
    assert any("Hub can't be reached" in warning.value for warning in at.warning)
    run_path = str((runs_with_one_finished / "shapes-run").resolve())
    assert at.selectbox(key="classify_model").value == run_path
    assert at.selectbox(key="classify_model").options[0].startswith("shapes-run (your run")
