"""A Space's runs folder stays within its disk budget; on one's own machine runs stay, and show their size."""

from __future__ import annotations

import os
import time

import pytest

from training.access import claim_run, visitor
from training.disk import DiskBudget, room_for_new_run, tidy_runs, trim_finished_run
from training.examples import write_shapes_zip
from training.finetune import FinetuneConfig, finetune
from training.runs import folder_bytes, list_runs
from ui.shared.training import run_label

HOUR = 3600.0


@pytest.fixture(scope="module")
def finished_run(tiny_vit_dir, tmp_path_factory):
    """A full fine-tuning run of one epoch on the shapes zip: a checkpoint, training and validation images."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    shapes_zip = write_shapes_zip(tmp_path_factory.mktemp("shapes"), per_class=8)
    events = list(
        finetune(
            FinetuneConfig(
                train_dir=shapes_zip,
                output_dir=folder,
                model_name_or_path=str(tiny_vit_dir),
                mode="full",
                num_train_epochs=1,
                per_device_train_batch_size=8,
            )
        )
    )
    assert type(events[-1]).__name__ == "Finished"
    return folder


def _copy_run(source, destination, owner_id=None, age_s=0.0):
    import shutil

    shutil.copytree(source, destination, symlinks=True)
    if owner_id:
        claim_run(destination, visitor(owner_id, shared=True))
    stamp = time.time() - age_s
    os.utime(destination / "events.jsonl", (stamp, stamp))
    return destination


def test_old_visitor_runs_go_examples_and_fresh_runs_stay(finished_run, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    old = _copy_run(finished_run, root / "old", owner_id="visitor-a", age_s=7 * HOUR)
    fresh = _copy_run(finished_run, root / "fresh", owner_id="visitor-b", age_s=1 * HOUR)
    example = _copy_run(finished_run, root / "example", age_s=100 * HOUR)  # nobody's: the Space owner's
    running = _copy_run(finished_run, root / "running", owner_id="visitor-c", age_s=7 * HOUR)
    before = folder_bytes(root)
    tidied = tidy_runs(DiskBudget(keep_runs_s=6 * HOUR, quota_bytes=10**12), root, running=[running])
    assert tidied.removed == ("old",) and not old.exists()
    assert example.is_dir() and running.is_dir() and (example / "checkpoint").is_dir()
    # The fresh finished run shed its checkpoint and its training images, and kept what review needs.
    assert tidied.trimmed == ("fresh",) and not (fresh / "checkpoint").exists()
    assert (fresh / "model.safetensors").is_file() and (fresh / "config.json").is_file()
    assert tidied.freed_bytes == before - folder_bytes(root) > 0


def test_a_trimmed_run_keeps_its_validation_images_for_the_confusion_views(finished_run, tmp_path):
    import json

    from training.review import cell_overlays

    run = _copy_run(finished_run, tmp_path / "run")
    split = json.loads((run / "split.json").read_text())
    # split.json names the files by the path they were trained from; a copy must point into itself.
    text = (run / "split.json").read_text().replace(str(finished_run), str(run))
    (run / "split.json").write_text(text)
    split = json.loads(text)
    assert trim_finished_run(run) > 0
    assert all(os.path.isfile(path) for path, _ in split["val"])
    assert not any(os.path.isfile(path) for path, _ in split["train"])
    classes = split["classes"]
    shown = [picture for true in classes for predicted in classes for picture in cell_overlays(run, true, predicted)]
    assert len(shown) == len(split["val"])


def test_a_full_runs_folder_refuses_a_new_run_and_caps_the_next_runs_data(finished_run, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    _copy_run(finished_run, root / "a", owner_id="visitor-a")
    used = folder_bytes(root)
    assert room_for_new_run(DiskBudget(keep_runs_s=HOUR, quota_bytes=used + 1000), root) == 1000
    with pytest.raises(ValueError, match=r"This Space's runs folder is full .* Try again later"):
        room_for_new_run(DiskBudget(keep_runs_s=HOUR, quota_bytes=used), root)


def test_on_a_space_a_run_whose_data_outgrows_the_room_left_is_refused(tiny_vit_dir, tmp_path, monkeypatch):
    from training.jobs import start_new_run

    monkeypatch.setenv("SPACE_ID", "someone/vit-studio")
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ballast.bin").write_bytes(b"\0" * 300_000)
    monkeypatch.setenv("VIT_STUDIO_RUNS_QUOTA_GB", str(350_000 / 1024**3))  # 50 KB left: the shapes are more
    shapes_zip = write_shapes_zip(tmp_path, per_class=8)
    job = start_new_run(
        FinetuneConfig(
            train_dir=shapes_zip,
            output_dir="ignored",
            model_name_or_path=str(tiny_vit_dir),
            mode="head",
            num_train_epochs=1,
        ),
        "big",
        visitor=visitor("visitor-a"),
    )
    state = job.wait(60)
    assert not state.running, "the refused run was still preparing its data after 60 s"
    assert state.error and "the limit is" in state.error
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["ballast.bin"]  # no folder left behind


def test_on_ones_own_machine_runs_stay_and_the_list_shows_their_size(finished_run, tiny_vit_dir, tmp_path, monkeypatch):
    from training.jobs import start_new_run

    monkeypatch.delenv("SPACE_ID", raising=False)
    root = tmp_path / "runs"
    root.mkdir()
    _copy_run(finished_run, root / "old", age_s=1000 * HOUR)
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(root))
    shapes_zip = write_shapes_zip(tmp_path, per_class=8)
    job = start_new_run(
        FinetuneConfig(
            train_dir=shapes_zip,
            output_dir="ignored",
            model_name_or_path=str(tiny_vit_dir),
            mode="head",
            num_train_epochs=1,
        ),
        "new",
    )
    assert not job.wait(120).error
    summaries = {summary.name: summary for summary in list_runs(root)}
    assert set(summaries) == {"old", "new"} and (root / "old" / "checkpoint").is_dir()
    old = summaries["old"]
    assert old.size_bytes == folder_bytes(root / "old") > 0
    assert run_label(old).endswith(f"{old.size_bytes / 1024**2:.0f} MB)") or run_label(old).endswith("KB)")
