"""training.finetune on generated shapes and real ant/bee photos: learning, events, stop and resume, bad settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core import classify
from training.data import DataError
from training.events import Evaluated, Finished, Saved, Started, Step, Stopped, read_events
from training.examples import SHAPES, write_shapes
from training.finetune import FinetuneConfig, finetune, resume_config
from training.runs import list_runs, zip_run

ROOT = Path(__file__).resolve().parents[1]
HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera"
needs_hymenoptera = pytest.mark.skipif(not HYMENOPTERA.is_dir(), reason=f"no hymenoptera data at {HYMENOPTERA}")


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), per_class=40)


@pytest.fixture(scope="module")
def scratch_config(tmp_path_factory) -> Path:
    """A tiny ViT config to train from scratch (no weights anywhere)."""
    from transformers import ViTConfig

    folder = tmp_path_factory.mktemp("scratch-config")
    ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128
    ).save_pretrained(folder)
    return folder


def shapes_config(shapes_dir, scratch_config, output_dir, **changes) -> FinetuneConfig:
    settings = dict(
        train_dir=shapes_dir,
        output_dir=output_dir,
        model_name_or_path=None,
        config_name=str(scratch_config),
        num_train_epochs=4,
        learning_rate=1e-3,
        per_device_train_batch_size=16,
        warmup_ratio=0.1,
        augment=False,
        seed=0,
    )
    return FinetuneConfig(**{**settings, **changes})


# ---- real learning -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_run(shapes_dir, scratch_config, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("runs") / "shapes"
    events = list(finetune(shapes_config(shapes_dir, scratch_config, output_dir)))
    return output_dir, events


def test_a_tiny_vit_from_scratch_learns_shapes(shapes_run):
    output_dir, events = shapes_run
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.metrics["eval_accuracy"] >= 0.9
    results = json.loads((output_dir / "all_results.json").read_text())
    assert {"eval_accuracy", "eval_loss", "train_loss", "train_runtime"} <= set(results)
    assert results["eval_accuracy"] == final.metrics["eval_accuracy"]
    losses = [event.loss for event in events if isinstance(event, Step)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, "the training loss did not fall"


def test_events_tell_the_whole_run(shapes_run):
    output_dir, events = shapes_run
    started = events[0]
    assert isinstance(started, Started) and started.classes == tuple(sorted(SHAPES))
    steps = [event for event in events if isinstance(event, Step)]
    assert [event.step for event in steps] == list(range(1, started.total_steps + 1))
    evaluations = [event for event in events if isinstance(event, Evaluated)]
    assert [event.epoch for event in evaluations] == [1, 2, 3, 4]
    last = evaluations[-1]
    assert sum(map(sum, last.confusion)) == started.val_size
    assert len(last.per_class) == len(started.classes)
    assert all(event.images_per_s > 0 for event in steps[1:])
    assert steps[-1].seconds_left == 0
    assert any(isinstance(event, Saved) for event in events)
    # The log on disk is the same story, and a restarted app lists the run.
    assert read_events(output_dir / "events.jsonl") == events
    [summary] = list_runs(output_dir.parent)
    assert summary.status == "finished" and summary.eval_accuracy == last.eval_accuracy
    assert (output_dir / "curves.png").is_file() and (output_dir / "confusion.png").is_file()


def test_the_run_classifies_through_core(shapes_run, shapes_dir):
    output_dir, _ = shapes_run
    files = [(path, shape) for shape in SHAPES for path in sorted((shapes_dir / shape).iterdir())[:5]]
    predictions = classify([path for path, _ in files], model=str(output_dir), top_k=1)
    correct = sum(top[0].label == shape for top, (_, shape) in zip(predictions, files))
    assert correct / len(files) >= 0.9


def test_python_m_training_with_the_example_flags(shapes_dir, scratch_config, tmp_path):
    output_dir = tmp_path / "cli-run"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--train_dir",
            str(shapes_dir),
            "--config_name",
            str(scratch_config),
            "--output_dir",
            str(output_dir),
            "--num_train_epochs",
            "4",
            "--learning_rate",
            "1e-3",
            "--per_device_train_batch_size",
            "16",
            "--warmup_ratio",
            "0.1",
            "--no_augmentation",
            "--seed",
            "0",
            "--do_train",
            "--do_eval",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["eval_accuracy"] >= 0.9
    assert "epoch 4: eval_loss" in completed.stdout and "Training full on" in completed.stdout


def test_cli_bad_flags_get_a_message(shapes_dir, tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--train_dir",
            str(shapes_dir),
            "--output_dir",
            str(tmp_path / "x"),
            "--learning_rate",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "learning rate must be greater than 0" in completed.stderr


# ---- stop and resume ---------------------------------------------------------------------------------------


def run_until(config: FinetuneConfig, stop_after_step: int | None) -> list:
    stop = threading.Event()
    events = []
    for event in finetune(config, stop):
        events.append(event)
        if isinstance(event, Step) and event.step == stop_after_step:
            stop.set()
    return events


def test_stop_saves_a_model_and_resume_continues_the_same_run(shapes_dir, scratch_config, tmp_path):
    config = shapes_config(shapes_dir, scratch_config, tmp_path / "whole", num_train_epochs=2, precision="fp32")
    whole = run_until(config, None)
    whole_losses = {event.step: event.loss for event in whole if isinstance(event, Step)}

    stopped_config = replace(config, output_dir=tmp_path / "stopped")
    first = run_until(stopped_config, stop_after_step=9)  # mid-way through the second epoch (7 steps each)
    assert isinstance(first[-1], Stopped) and first[-1].step == 9
    assert not any(isinstance(event, Finished) for event in first)
    assert classify(shapes_dir / "circle" / "000.png", model=str(tmp_path / "stopped"), top_k=1)
    assert list_runs(tmp_path)[0].status == "stopped" and list_runs(tmp_path)[0].resumable

    second = run_until(replace(stopped_config, resume=True), None)
    assert isinstance(second[0], Started) and second[0].start_step == 9
    resumed_steps = [event.step for event in second if isinstance(event, Step)]
    assert resumed_steps == list(range(10, second[0].total_steps + 1))
    assert isinstance(second[-1], Finished)
    # Same data order, same weights and optimizer state: the resumed steps are the uninterrupted run's steps.
    for event in second:
        if isinstance(event, Step):
            assert event.loss == pytest.approx(whole_losses[event.step], rel=1e-4, abs=1e-5)
    assert read_events(tmp_path / "stopped" / "events.jsonl") == first + second


# ---- head-only ---------------------------------------------------------------------------------------------


def test_head_only_trains_the_classifier_and_nothing_else(tiny_vit_dir, shapes_dir, tmp_path):
    from transformers import ViTForImageClassification

    output_dir = tmp_path / "head"
    events = list(
        finetune(
            FinetuneConfig(
                train_dir=shapes_dir,
                output_dir=output_dir,
                model_name_or_path=str(tiny_vit_dir),
                mode="head",
                num_train_epochs=3,
                learning_rate=1e-2,
                per_device_train_batch_size=16,
                seed=0,
            )
        )
    )
    assert isinstance(events[-1], Finished)
    assert sum(isinstance(event, Saved) for event in events) == 1  # once, at the end
    base = ViTForImageClassification.from_pretrained(tiny_vit_dir)
    trained = ViTForImageClassification.from_pretrained(output_dir)
    assert trained.config.id2label == {0: "circle", 1: "square", 2: "triangle"}
    for name, parameter in trained.vit.state_dict().items():
        assert torch.equal(parameter, base.vit.state_dict()[name]), f"{name} changed in head-only mode"
    assert trained.classifier.weight.shape == (3, base.config.hidden_size)


def test_head_only_stop_during_the_feature_pass_saves_and_resumes(tiny_vit_dir, shapes_dir, tmp_path):
    """The feature pass over a large data set takes minutes: Stop does not wait for its end."""
    output_dir = tmp_path / "head"
    config = FinetuneConfig(
        train_dir=shapes_dir,
        output_dir=output_dir,
        model_name_or_path=str(tiny_vit_dir),
        mode="head",
        num_train_epochs=2,
        learning_rate=1e-2,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=8,
        seed=0,
    )
    stop, events = threading.Event(), []
    for event in finetune(config, stop):
        events.append(event)
        stop.set()  # at Started, before the first batch of features
    assert [type(event) for event in events] == [Started, Saved, Stopped] and events[-1].step == 0
    assert list_runs(tmp_path)[0].status == "stopped" and list_runs(tmp_path)[0].resumable
    resumed = list(finetune(resume_config(output_dir)))
    assert isinstance(resumed[-1], Finished) and resumed[0].start_step == 0
    assert [event.step for event in resumed if isinstance(event, Step)] == list(range(1, 2 * 7 + 1))


# ---- real photos -------------------------------------------------------------------------------------------


@needs_hymenoptera
@pytest.mark.parametrize("packed", ["zip", "folder"])
def test_ants_and_bees(tiny_vit_dir, tmp_path, packed):
    """A subset of the real data set, as a user zips it or points at it, through the data check and a short
    training."""
    subset = tmp_path / "hymenoptera"
    for split in ("train", "val"):
        for insect in ("ants", "bees"):
            (subset / split / insect).mkdir(parents=True)
            for path in sorted((HYMENOPTERA / split / insect).iterdir())[:8]:
                (subset / split / insect / path.name).write_bytes(path.read_bytes())
    source = subset if packed == "folder" else Path(shutil.make_archive(str(subset), "zip", tmp_path, "hymenoptera"))
    events = list(
        finetune(
            FinetuneConfig(
                train_dir=source,
                output_dir=tmp_path / "run",
                model_name_or_path=str(tiny_vit_dir),
                num_train_epochs=1,
                per_device_train_batch_size=4,
                learning_rate=1e-4,
            )
        )
    )
    started, final = events[0], events[-1]
    assert started.classes == ("ants", "bees") and started.train_size == 16 and started.val_size == 16
    assert isinstance(final, Finished)
    first_ant = sorted((subset / "val" / "ants").iterdir())[0]
    assert classify(first_ant, model=str(tmp_path / "run"), top_k=2)[0].label in ("ants", "bees")
    shared = zip_run(tmp_path / "run", tmp_path)
    names = zipfile.ZipFile(shared).namelist()
    assert "run/model.safetensors" in names and "run/events.jsonl" in names
    assert not any(name.startswith(("run/checkpoint", "run/data")) for name in names)


# ---- bad settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(learning_rate=0), "learning rate must be greater than 0"),
        (dict(learning_rate=-1e-3), "learning rate must be greater than 0"),
        (dict(num_train_epochs=0), "epochs must be a whole number of at least 1"),
        (dict(per_device_train_batch_size=500), r"batch size \(500\) is larger than the training set"),
        (dict(mode="lora"), "Unknown mode 'lora'"),
        (dict(warmup_ratio=1.0), "warmup ratio must be from 0"),
        (dict(model_name_or_path=None, config_name=None), "No model to start from"),
        (dict(seed=-1), "seed must be a whole number from 0"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(shapes_dir, scratch_config, tmp_path, changes, message):
    output_dir = tmp_path / "never"
    with pytest.raises(ValueError, match=message):
        next(finetune(shapes_config(shapes_dir, scratch_config, output_dir, **changes)))
    assert not (output_dir / "events.jsonl").exists()


def test_one_class_is_refused(scratch_config, tmp_path):
    write_shapes(tmp_path / "data", per_class=5)
    for shape in SHAPES[1:]:
        for path in (tmp_path / "data" / shape).iterdir():
            path.unlink()
        (tmp_path / "data" / shape).rmdir()
    with pytest.raises(DataError, match="class"):
        next(
            finetune(
                FinetuneConfig(
                    train_dir=tmp_path / "data",
                    output_dir=tmp_path / "run",
                    model_name_or_path=None,
                    config_name=str(scratch_config),
                )
            )
        )


def test_a_base_model_that_is_not_here_gets_the_loaders_message(shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="someone/not-downloaded-vit"):
        next(
            finetune(
                FinetuneConfig(
                    train_dir=shapes_dir, output_dir=tmp_path / "run", model_name_or_path="someone/not-downloaded-vit"
                )
            )
        )


def test_resume_from_the_run_folder_alone(shapes_dir, scratch_config, tmp_path):
    """What the Train tab does after an app restart: the run's own files are enough to continue it."""
    from training.checkpoints import read_split
    from training.finetune import resume_config

    output_dir = tmp_path / "restarted"
    first = run_until(shapes_config(shapes_dir, scratch_config, output_dir, num_train_epochs=2), stop_after_step=3)
    assert isinstance(first[-1], Stopped)
    config = resume_config(output_dir)
    assert config.resume and config.num_train_epochs == 2 and config.learning_rate == 1e-3
    assert config.train_dir.val == read_split(output_dir).val and len(config.train_dir.val) == first[0].val_size
    second = list(finetune(config))
    assert second[0].start_step == 3 and isinstance(second[-1], Finished)


def test_resume_without_a_checkpoint_says_so(shapes_dir, scratch_config, tmp_path):
    from training.finetune import resume_config

    (tmp_path / "empty-run").mkdir()
    (tmp_path / "empty-run" / "run_config.json").write_text("{}")  # a run that stopped before its first save
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        resume_config(tmp_path / "empty-run")


def ended(job, within_s: float = 60):
    """The job's last state once it has ended; the test fails, saying so, when it still runs after within_s."""
    state = job.wait(timeout_s=within_s)
    assert not state.running, f"the run {job.output_dir.name} was still training after {within_s} s"
    return state


def first_step(job, within_s: float = 60) -> None:
    """Wait until the job has taken a training step; the test fails, saying so, when none came within_s."""
    deadline = time.monotonic() + within_s
    while not any(isinstance(event, Step) for event in job.state().events):
        assert job.running, f"the run ended before its first step: {job.state().error}"
        assert time.monotonic() < deadline, f"the run took no training step within {within_s} s"
        job.wait(timeout_s=0.05)


class PageClock:
    """training.jobs's clock, moved by hand: whether an owner's page counts as gone must not depend on how long a
    loaded machine takes between two lines of a test."""

    def __init__(self):
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)


def test_one_training_at_a_time(shapes_dir, scratch_config, tmp_path):
    from training.jobs import start_training, watch

    # Long enough that it is still training whatever the machine's speed, until it is stopped.
    job = start_training(shapes_config(shapes_dir, scratch_config, tmp_path / "a", num_train_epochs=200))
    with pytest.raises(ValueError, match="A training is already running \\(a\\)"):
        start_training(shapes_config(shapes_dir, scratch_config, tmp_path / "b"))
    job.stop()
    states = list(watch(job, every_s=0.05))
    assert not states[-1].running and states[-1].ended_well and isinstance(states[-1].events[-1], Stopped)
    # Bad data surfaces as the job's error, not as a hang or a traceback.
    (tmp_path / "nothing").mkdir()
    failed = ended(start_training(shapes_config(tmp_path / "nothing", scratch_config, tmp_path / "c")))
    assert failed.error and "no images" in failed.error.lower()


@pytest.mark.parametrize("shared_by", ["SPACE_ID", "VIT_STUDIO_SHARED"])
def test_on_a_shared_app_only_the_visitor_who_started_a_run_can_stop_it_while_open(
    shared_by, shapes_dir, scratch_config, tmp_path, monkeypatch
):
    from training import jobs
    from training.access import visitor
    from training.jobs import OWNER_AWAY_S, run_owner, start_training, stop_current

    for name in ("SPACE_ID", "VIT_STUDIO_SHARED"):
        monkeypatch.delenv(name, raising=False)
    assert run_owner(visitor("tab-a")) is None  # on your own machine a reloaded page is still you: anyone may stop
    # A Space, or a classroom server (app.py sets VIT_STUDIO_SHARED for --host 0.0.0.0 and --share).
    monkeypatch.setenv(shared_by, "someone/vit-studio" if shared_by == "SPACE_ID" else "1")
    alice, bob = visitor("visitor-a"), visitor("visitor-b")
    clock = PageClock()
    monkeypatch.setattr(jobs, "time", clock)
    job = start_training(shapes_config(shapes_dir, scratch_config, tmp_path / "a", num_train_epochs=200), visitor=alice)
    for _ in range(4):  # the owner's page redraws for longer than OWNER_AWAY_S: it is still there
        job.watched_by(alice)
        job.watched_by(bob)  # another page watching changes nothing
        clock.now += 0.8 * OWNER_AWAY_S
        with pytest.raises(ValueError, match="started by another visitor, whose page is still open"):
            stop_current(visitor=bob)
    assert job.running
    clock.now += 0.4 * OWNER_AWAY_S  # the owner's page is gone: anyone may stop the run now
    assert stop_current(visitor=bob) is True
    assert isinstance(ended(job).events[-1], Stopped)
    assert stop_current(visitor=bob) is False  # nothing is training


def test_the_owner_stops_at_once(shapes_dir, scratch_config, tmp_path, monkeypatch):
    from training.access import visitor
    from training.jobs import start_training, stop_current

    monkeypatch.setenv("SPACE_ID", "someone/vit-studio")
    job = start_training(
        shapes_config(shapes_dir, scratch_config, tmp_path / "a", num_train_epochs=200), visitor=visitor("visitor-a")
    )
    with pytest.raises(ValueError, match="another visitor"):
        stop_current()
    assert stop_current(visitor=visitor("visitor-a")) is True
    assert isinstance(ended(job).events[-1], Stopped)


def test_a_second_start_is_told_at_once_whose_run_trains_and_when_it_ends(
    shapes_dir, scratch_config, tmp_path, monkeypatch
):
    from training.access import visitor
    from training.jobs import start_new_run, start_training, stop_current

    monkeypatch.setenv("VIT_STUDIO_SHARED", "1")
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    alice, bob = visitor("visitor-a"), visitor("visitor-b")
    job = start_training(shapes_config(shapes_dir, scratch_config, tmp_path / "a", num_train_epochs=200), visitor=alice)
    try:
        first_step(job)
        busy = r"Another visitor's run is training now, and about .+ left \(step \d+/\d+\)"
        with pytest.raises(ValueError, match=busy):
            start_new_run(shapes_config(shapes_dir, scratch_config, tmp_path / "b"), "mine", visitor=bob)
        with pytest.raises(ValueError, match=r"A training is already running \(a\), and about"):
            start_new_run(shapes_config(shapes_dir, scratch_config, tmp_path / "b"), "mine", visitor=alice)
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind
    finally:
        stop_current(visitor=alice)
        ended(job)


# ---- after the run -----------------------------------------------------------------------------------------


def test_validation_predictions_fill_the_confusion_matrix(shapes_run):
    from training.review import cell, validation_predictions

    output_dir, events = shapes_run
    predictions = validation_predictions(output_dir)
    last = [event for event in events if isinstance(event, Evaluated)][-1]
    classes = events[0].classes
    assert len(predictions) == events[0].val_size
    for row, true in enumerate(classes):
        for column, predicted in enumerate(classes):
            # The saved model in the app's precision agrees with the training-time evaluation, cell by cell
            # (a bf16/fp32 flip of a near-tie could move one image; none does on this easy data).
            assert len(cell(predictions, true, predicted)) == last.confusion[row][column]
    assert all(p.path.is_file() and 0 <= p.score <= 1 for p in predictions)


def test_model_card_has_the_metrics_and_the_matrix(shapes_run):
    from training.model_card import model_card

    output_dir, events = shapes_run
    card = model_card(output_dir)
    assert card.startswith("---\nlibrary_name: transformers") and "trained from scratch" in card
    assert "| eval_accuracy |" in card and "| **circle** |" in card and "![Confusion matrix](confusion.png)" in card


def test_push_to_hub_without_a_network_is_a_message_and_keeps_no_token(shapes_run, tmp_path):
    from training.review import push_to_hub

    output_dir, _ = shapes_run
    token = "hf_not_a_real_token_1234567890"
    with pytest.raises(ValueError, match="Could not push to me/shapes"):
        push_to_hub(output_dir, "me/shapes", token)
    for path in output_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".txt"):
            assert token not in path.read_text(errors="ignore")
    with pytest.raises(ValueError, match="user/name"):
        push_to_hub(output_dir, "shapes", token)


def test_a_finished_run_is_not_resumed(shapes_run):
    from training.finetune import resume_config

    output_dir, _ = shapes_run
    with pytest.raises(ValueError, match="has finished; to train more, start a new run from it"):
        resume_config(output_dir)


def test_a_run_saved_again_is_loaded_again(shapes_dir, scratch_config, tmp_path):
    """Classify after a stop, then after the resumed run finishes: the second answer comes from the new weights."""
    output_dir = tmp_path / "reloaded"
    config = shapes_config(shapes_dir, scratch_config, output_dir, num_train_epochs=2)
    run_until(config, stop_after_step=2)
    image = shapes_dir / "circle" / "000.png"
    early = classify(image, model=str(output_dir), top_k=3)
    list(finetune(replace(config, resume=True)))
    late = classify(image, model=str(output_dir), top_k=3)
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    processor = AutoImageProcessor.from_pretrained(output_dir)
    pixels = processor(images=Image.open(image).convert("RGB"), return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = model(pixels).logits.softmax(-1)[0]
    assert [p.score for p in late] != [p.score for p in early]
    by_label = {p.label: p.score for p in late}
    for index, label in model.config.id2label.items():
        assert by_label[label] == pytest.approx(float(expected[index]), abs=0.02)  # bf16 in the app, fp32 here


def test_a_resumed_job_starts_its_view_from_the_runs_earlier_log(tmp_path):
    """The live chart of a resumed run starts where its log does, as its saved curves.png does."""
    from training.events import to_json
    from training.jobs import TrainingJob

    folder = tmp_path / "stopped"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "checkpoint" / "trainer_state.json").write_text("{}")
    logged = [
        Started(6, ("a", "b"), 4, 2, 2, "full", "cpu", "fp32"),
        Step(1, 1, 0.9, 1e-3, 8.0, 5.0),
        Step(1, 2, 0.7, 1e-3, 8.0, 4.0),
        Stopped(str(folder), 2),
    ]
    (folder / "events.jsonl").write_text("".join(to_json(event) + "\n" for event in logged))
    config = FinetuneConfig(train_dir=tmp_path, output_dir=folder)
    resumed = TrainingJob(replace(config, resume=True)).state()  # not started: nothing of its own yet
    assert resumed.earlier == tuple(logged) and resumed.events == () and resumed.run_events == tuple(logged)
    assert TrainingJob(config).state().run_events == ()  # a new run in that folder starts its log afresh
    (folder / "checkpoint" / "trainer_state.json").unlink()  # a resume without a checkpoint starts afresh too
    assert TrainingJob(replace(config, resume=True)).state().earlier == ()


def test_push_to_hub_says_what_a_valid_repository_name_looks_like(tmp_path):
    from training.review import push_to_hub

    for bad_name in ("me/ants vs bees", "me/ants--bees", "me/-ants", "me/ants/bees"):
        with pytest.raises(ValueError) as refused:
            push_to_hub(tmp_path, bad_name, "hf_not_a_real_token")
        message = str(refused.value)
        assert message.startswith(f"'{bad_name}' is not a valid repository name. Use user/name"), message
        assert "e.g. 'me/ants-vs-bees'" in message and "Repo id must" not in message and "regex" not in message
