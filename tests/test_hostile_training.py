"""Hostile or damaged input to the training engine and the model boxes: sizes that would exhaust memory, run folders
with garbage in their files, paths that must not reveal what the server holds. Every one gets a sentence, never a
traceback or a MemoryError."""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from training.events import Finished, Started, Step, Stopped, from_json, read_events, to_json
from training.examples import write_shapes
from training.finetune import MAX_BATCH_PIXELS, MAX_IMAGE_SIZE, FinetuneConfig, check_config, finetune, resume_config
from ui.shared.training import describe_progress, form_config

ROOT = Path(__file__).resolve().parents[1]
DAMAGED = "This checkpoint is damaged: {}; start a new run or pick another."
GARBAGE = b"\x00not what was saved here\xff" * 40


# ---- sizes: a bound with a sentence instead of a MemoryError ----------------------------------------------------


def settings(**changes) -> FinetuneConfig:
    return FinetuneConfig(**{"train_dir": "data", "output_dir": "run", **changes})


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(image_size=30000), f"image size is 30000 pixels a side; at most {MAX_IMAGE_SIZE} can be trained"),
        (dict(image_size=MAX_IMAGE_SIZE + 1), "leave it unset to use the model's own"),
        (
            dict(image_size=4096, per_device_train_batch_size=17),
            r"lower the batch size to 16 or less, or the image size",
        ),
        (dict(image_size=1024, per_device_train_batch_size=4096), "lower the batch size to 256 or less"),
        (dict(dataloader_num_workers=10**6), "data loader workers must be a whole number from 0 to"),
        (dict(dataloader_num_workers=-1), "data loader workers must be a whole number from 0 to"),
    ],
)
def test_sizes_past_what_any_device_holds_are_refused_by_the_settings_check(changes, message):
    with pytest.raises(ValueError, match=message):
        check_config(settings(**changes))


def test_the_bounds_leave_room_for_big_real_runs():
    # The largest side with a batch, batches far past what a ViT-B trains on a 141 GB GPU, and head-only mode, whose
    # training batches are feature vectors (and whose evaluation batch is fitted, not refused).
    check_config(settings(image_size=MAX_IMAGE_SIZE, per_device_train_batch_size=16))
    check_config(settings(image_size=224, per_device_train_batch_size=4096, per_device_eval_batch_size=4096))
    check_config(settings(image_size=518, per_device_train_batch_size=512))
    check_config(settings(image_size=2048, mode="head", per_device_train_batch_size=100_000))
    assert 16 * MAX_IMAGE_SIZE**2 == MAX_BATCH_PIXELS


@pytest.mark.parametrize(
    "field, value",
    [
        ("image size", 30000.0),
        ("image size", float("inf")),
        ("image size", float("nan")),
        ("seed", float("inf")),
        ("batch size", float("inf")),
    ],
)
def test_the_train_forms_numbers_get_a_sentence(field, value):
    """Both Train forms go through form_config, then check_config (start_new_run): each must be a ValueError,
    which the forms show, never an OverflowError or a MemoryError."""
    numbers = {"image size": 0, "seed": 42, "batch size": 16, field: value}
    with pytest.raises(ValueError, match=f"The {field}"):
        check_config(
            form_config(
                "data",
                "vit-small-scratch",
                mode="full",
                epochs=3,
                learning_rate=5e-5,
                batch_size=numbers["batch size"],
                weight_decay=0.0,
                warmup_ratio=0.0,
                image_size=numbers["image size"],
                augment=True,
                seed=numbers["seed"],
                precision="auto",
            )
        )


def test_a_train_form_reads_into_the_engines_config():
    """The forms' numbers arrive as floats (Gradio) or ints (Streamlit); 0 as the image size means the model's own,
    and the scratch preset in "Start from" trains from a config rather than loading a model."""
    config = form_config(
        "shapes.zip",
        "vit-small-scratch",
        mode="head",
        epochs=10.0,
        learning_rate=1e-3,
        batch_size=16.0,
        weight_decay=None,
        warmup_ratio=0.1,
        image_size=0.0,
        augment=True,
        seed=42.0,
        precision="bf16",
    )
    assert (config.num_train_epochs, config.per_device_train_batch_size, config.seed) == (10, 16, 42)
    assert all(
        type(value) is int for value in (config.num_train_epochs, config.per_device_train_batch_size, config.seed)
    )
    assert config.image_size is None and config.weight_decay == 0.0 and config.precision == "bf16"
    assert (config.model_name_or_path, config.config_name) == (None, "vit-small-scratch")
    from_model = form_config(
        "shapes.zip",
        " google/vit-base-patch16-224 ",
        mode="full",
        epochs=3,
        learning_rate=5e-5,
        batch_size=8,
        weight_decay=0.01,
        warmup_ratio=0.0,
        image_size=384,
        augment=False,
        seed=7,
        precision="auto",
    )
    assert (from_model.model_name_or_path, from_model.config_name, from_model.image_size) == (
        "google/vit-base-patch16-224",
        None,
        384,
    )
    check_config(config)
    check_config(from_model)
    with pytest.raises(ValueError, match="The epochs must be a whole number, not 2.5"):
        form_config(
            "shapes.zip",
            "vit-small-scratch",
            mode="head",
            epochs=2.5,
            learning_rate=1e-3,
            batch_size=16,
            weight_decay=0,
            warmup_ratio=0,
            image_size=0,
            augment=True,
            seed=42,
            precision="auto",
        )


def test_cli_image_size_30000_is_one_line_and_no_traceback(tmp_path):
    output_dir = tmp_path / "never"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--train_dir",
            str(tmp_path),
            "--output_dir",
            str(output_dir),
            "--image_size",
            "30000",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"error: The image size is 30000 pixels a side; at most {MAX_IMAGE_SIZE} can be trained: leave it unset to "
        "use the model's own, or pick one such as 224 or 384."
    ]
    assert not output_dir.exists()


def test_cli_batch_of_too_many_pixels_is_one_line(tmp_path, capsys):
    from training.__main__ import main

    code = main(
        [
            "--train_dir",
            str(tmp_path),
            "--output_dir",
            str(tmp_path / "never"),
            "--image_size",
            "2048",
            "--per_device_train_batch_size",
            "128",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: A batch of 128 images of 2048x2048 pixels") and "lower the batch size to 64" in line


# ---- run folders with garbage in them ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), per_class=10)


@pytest.fixture(scope="module")
def stopped_run(tiny_vit_dir, shapes, tmp_path_factory) -> Path:
    """A real head-only run on a tiny ViT, stopped at step 3 of 12: every file a resume reads is in it."""
    output_dir = tmp_path_factory.mktemp("runs") / "stopped"
    config = FinetuneConfig(
        train_dir=shapes,
        output_dir=output_dir,
        model_name_or_path=str(tiny_vit_dir),
        mode="head",
        num_train_epochs=2,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        seed=0,
        precision="fp32",
    )
    stop = threading.Event()
    for event in finetune(config, stop):
        if isinstance(event, Step) and event.step == 3:
            stop.set()
    assert isinstance(event, Stopped)
    return output_dir


@pytest.fixture
def run_copy(stopped_run, tmp_path) -> Path:
    """A fresh copy of the stopped run to damage."""
    return Path(shutil.copytree(stopped_run, tmp_path / "my-run"))


def resumed(run_dir: Path) -> list:
    return list(finetune(resume_config(run_dir)))


RUN_FILES = [
    "run_config.json",
    "split.json",
    "events.jsonl",
    "checkpoint/trainer_state.json",
    "checkpoint/config.json",
    "checkpoint/preprocessor_config.json",
    "checkpoint/model.safetensors",
    "checkpoint/accelerate/model.safetensors",
    "checkpoint/accelerate/optimizer.bin",
    "checkpoint/accelerate/scheduler.bin",
]


@pytest.mark.parametrize("name", RUN_FILES)
def test_a_garbage_file_in_a_run_is_named_before_training_starts(run_copy, name):
    (run_copy / name).write_bytes(GARBAGE)
    log_before = (run_copy / "events.jsonl").read_bytes()
    with pytest.raises(ValueError) as raised:
        resumed(run_copy)
    assert str(raised.value) == DAMAGED.format(f"my-run/{name}")
    assert (run_copy / "events.jsonl").read_bytes() == log_before  # no Started: nothing began


@pytest.mark.parametrize(
    "name, text",
    [
        ("checkpoint/trainer_state.json", "[]"),
        ("checkpoint/trainer_state.json", '{"step": "3", "epoch": 0, "loss_sum": 1.0}'),
        ("checkpoint/trainer_state.json", '{"step": 3, "epoch": 0, "loss_sum": 1.0, "secret": 1}'),
        ("checkpoint/trainer_state.json", "[" * 100_000),
        ("split.json", "{}"),
        ("split.json", '{"root": "/", "classes": ["a", "b"], "train": [["/etc/passwd", 7]], "val": []}'),
        ("run_config.json", "null"),
        ("run_config.json", '{"mode": "head"}'),
        ("checkpoint/config.json", "[1, 2]"),
    ],
)
def test_valid_json_that_is_not_what_was_saved_is_damage_too(run_copy, name, text):
    (run_copy / name).write_text(text)
    with pytest.raises(ValueError) as raised:
        resumed(run_copy)
    assert str(raised.value) == DAMAGED.format(f"my-run/{name}")


def test_settings_a_run_could_not_have_are_damage(run_copy):
    path = run_copy / "run_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "learning_rate": "fast", "image_size": 30000}))
    with pytest.raises(ValueError, match="damaged: my-run/run_config.json;"):
        resume_config(run_copy)


def test_flipped_bytes_inside_the_optimizer_state_are_caught(run_copy):
    """torch.load reads overwritten bytes back as other numbers without a word; the archive's checksums do not."""
    import struct
    import zipfile

    path = run_copy / "checkpoint" / "accelerate" / "optimizer.bin"
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # the largest tensor's bytes, past its member's local header
        member = max(archive.infolist(), key=lambda info: info.file_size)
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    data[start : start + 16] = bytes(byte ^ 0xFF for byte in data[start : start + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged: my-run/checkpoint/accelerate/optimizer.bin;"):
        resumed(run_copy)


def test_a_cut_off_weights_file_is_caught(run_copy):
    path = run_copy / "checkpoint" / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged: my-run/checkpoint/model.safetensors;"):
        resumed(run_copy)


def test_the_cli_resume_says_which_file_is_damaged(run_copy, shapes, tiny_vit_dir, capsys):
    """`--resume_from_checkpoint` reaches the checkpoint without resume_config: finetune checks it itself."""
    from training.__main__ import main

    (run_copy / "checkpoint" / "accelerate" / "optimizer.bin").write_bytes(GARBAGE)
    code = main(
        [
            "--train_dir",
            str(shapes),
            "--output_dir",
            str(run_copy),
            "--model_name_or_path",
            str(tiny_vit_dir),
            "--mode",
            "head",
            "--num_train_epochs",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--resume_from_checkpoint",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    damaged_file = "my-run/checkpoint/accelerate/optimizer.bin"
    assert captured.err.strip().splitlines() == ["error: " + DAMAGED.format(damaged_file)]


def test_a_training_job_reports_the_damage_as_its_error(run_copy):
    from training.jobs import start_training

    (run_copy / "checkpoint" / "accelerate" / "scheduler.bin").write_bytes(GARBAGE)
    state = start_training(resume_config(run_copy)).wait(120)
    assert not state.running and state.events == ()
    assert state.error == DAMAGED.format("my-run/checkpoint/accelerate/scheduler.bin")


# ---- the random state -----------------------------------------------------------------------------------------


def warnings_of(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.name.startswith("vit_studio")
    ]


def test_an_intact_resume_warns_of_nothing(run_copy, caplog):
    with caplog.at_level(logging.WARNING, logger="vit_studio"):
        events = resumed(run_copy)
    assert isinstance(events[0], Started) and events[0].start_step == 3 and isinstance(events[-1], Finished)
    assert warnings_of(caplog) == []
    assert events[0].notes == () and "⚠" not in describe_progress(events, running=False)


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_random_state_that_cannot_be_restored_is_said(run_copy, caplog, damage):
    path = run_copy / "checkpoint" / "accelerate" / "random_states_0.pkl"
    path.write_bytes(GARBAGE) if damage == "garbage" else path.unlink()
    with caplog.at_level(logging.WARNING, logger="vit_studio"):
        events = resumed(run_copy)
    assert isinstance(events[-1], Finished)  # the run goes on: the weights and the data order are intact
    [warning] = warnings_of(caplog)
    assert warning.startswith(
        "The random state in my-run/checkpoint/accelerate/random_states_0.pkl could not be restored"
    )
    # The front ends show what the Started event carries, live and read back from the run's log alike.
    assert isinstance(events[0], Started) and events[0].notes == (warning,)
    logged = read_events(run_copy / "events.jsonl")
    assert [event for event in logged if isinstance(event, Started)][-1] == events[0]
    for shown in (events, logged):
        line = describe_progress(shown, running=False)
        assert line.startswith("Finished: step 12/12") and line.endswith(f"% ⚠ {warning}")
    assert describe_progress(events[:2], running=True).endswith(f" ⚠ {warning}")


def test_a_log_written_before_started_had_notes_still_reads():
    line = (
        '{"event": "Started", "total_steps": 12, "classes": ["circle", "square"], "train_size": 20, '
        '"val_size": 4, "epochs": 2, "mode": "head", "device": "cpu", "precision": "fp32", "start_step": 3}'
    )
    started = from_json(line)
    assert started.notes == () and from_json(to_json(started)) == started
    noted = Started(**{**vars(started), "notes": ("A note.",)})
    assert from_json(to_json(noted)) == noted and describe_progress([noted], running=True).endswith(" ⚠ A note.")


def test_the_cli_prints_the_random_state_warning(run_copy, shapes, tiny_vit_dir):
    (run_copy / "checkpoint" / "accelerate" / "random_states_0.pkl").write_bytes(GARBAGE)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--train_dir",
            str(shapes),
            "--output_dir",
            str(run_copy),
            "--model_name_or_path",
            str(tiny_vit_dir),
            "--mode",
            "head",
            "--num_train_epochs",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--learning_rate",
            "1e-2",
            "--seed",
            "0",
            "--precision",
            "fp32",
            "--resume_from_checkpoint",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 0, completed.stderr
    assert (
        "warning: The random state in my-run/checkpoint/accelerate/random_states_0.pkl could not be restored"
        in completed.stderr
    )
    assert "resuming at step 3" in completed.stdout


# ---- folders that are not runs --------------------------------------------------------------------------------


def test_a_folder_that_is_not_a_run_is_told_so(tmp_path, tiny_vit_dir):
    photos = tmp_path / "holiday"
    photos.mkdir()
    (photos / "notes.txt").write_text("not a run")
    for folder in (photos, tmp_path / "nowhere", tiny_vit_dir, Path("/")):
        with pytest.raises(ValueError) as raised:
            resume_config(folder)
        assert str(raised.value) == (
            f"'{folder.name or folder}' is not a training run (no run_config.json): pick a run from the list."
        )
        assert "Errno" not in str(raised.value)


# ---- model boxes: one answer whether a path exists or not -------------------------------------------------------


@pytest.fixture
def server_paths(tmp_path, photo_path) -> dict[str, str]:
    """Paths a visitor might probe: a folder that exists, a file that exists, and nothing at all."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "notes.txt").write_text("private")
    return {"folder": str(folder), "file": str(photo_path), "missing": str(tmp_path / "no-such-thing")}


def answers(call, paths: dict[str, str]) -> set[str]:
    """What `call` says for each path, with the path itself taken out: one answer means nothing was revealed."""
    said = set()
    for path in paths.values():
        with pytest.raises(ValueError) as raised:
            call(path)
        said.add(str(raised.value).replace(path, "<path>"))
    return said


def test_classifier_box_answers_alike_for_any_non_model_path(server_paths):
    from core.models import load_classifier

    [answer] = answers(load_classifier, server_paths)
    assert answer.startswith("'<path>' is neither a model id on the Hub nor a model folder the app can read")


def test_training_start_from_box_answers_alike(server_paths):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from core.models import fetch_pretrained

    [answer] = answers(
        lambda path: fetch_pretrained(path, AutoModelForImageClassification, AutoImageProcessor), server_paths
    )
    assert "is neither a model id on the Hub nor a model folder" in answer


def test_a_real_model_folder_with_damage_still_gets_its_own_message(tiny_vit_dir, tmp_path):
    from core.models import ModelLoadError, load_classifier

    folder = Path(shutil.copytree(tiny_vit_dir, tmp_path / "my-model"))
    (folder / "model.safetensors").write_bytes(GARBAGE)
    with pytest.raises(ModelLoadError, match=f"The folder '{folder}' does not hold a model this tab can use"):
        load_classifier(str(folder))


def test_zero_shot_model_box_answers_alike(server_paths):
    from core.zero_shot import resolve_model

    [answer] = answers(resolve_model, server_paths)
    assert answer.startswith("'<path>' is neither a model id on the Hub nor a model folder the app can read")
    [answer] = answers(lambda path: resolve_model(f"local-dir:{path}"), server_paths)
    assert "is neither a model id on the Hub nor a model folder" in answer


# ---- zero-shot's pretrained box: a file is checked before a model is built --------------------------------------


TINY_CLIP = "vit-studio-hostile-tiny-clip"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> dict[str, Path]:
    """A tiny CLIP architecture registered with open_clip, and its weights as .pt and .safetensors files."""
    import open_clip
    from safetensors.torch import save_file
    from tiny_clips import TINY_OPEN_CLIP_CFG

    folder = tmp_path_factory.mktemp("tiny-clip")
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    state = open_clip.create_model(TINY_CLIP, pretrained=None).state_dict()
    torch.save(state, folder / "weights.pt")
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, folder / "weights.safetensors")
    return {"pt": folder / "weights.pt", "safetensors": folder / "weights.safetensors"}


@pytest.fixture
def built_models(monkeypatch) -> list[str]:
    """Every open_clip model build, by name (a spy that calls the real function)."""
    import open_clip

    zero_shot_module = importlib.import_module("core.zero_shot")
    zero_shot_module.clear_cache()
    real, builds = open_clip.create_model_and_transforms, []

    def spy(name, *args, **kwargs):
        builds.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", spy)
    yield builds
    zero_shot_module.clear_cache()


def test_a_bogus_checkpoint_file_is_refused_before_any_model_is_built(
    built_models, tiny_clip, tmp_path, chelsea, server_paths
):
    from core.zero_shot import zero_shot

    bogus = {
        "garbage.pt": GARBAGE,
        "garbage.safetensors": GARBAGE,
        "empty.pt": b"",
        "half.safetensors": tiny_clip["safetensors"].read_bytes()[:5000],
        "photo.pt": Path(server_paths["file"]).read_bytes(),
    }
    paths = {name: tmp_path / name for name in bogus}
    for name, data in bogus.items():
        paths[name].write_bytes(data)
    probe = {
        **{name: str(path) for name, path in paths.items()},
        "folder": server_paths["folder"],
        "missing": server_paths["missing"],
    }
    [answer] = answers(
        lambda path: zero_shot(
            chelsea, ["a cat", "a dog"], model=TINY_CLIP, pretrained=path, device="cpu", precision="fp32"
        ),
        probe,
    )
    assert (
        answer == f"'<path>' is neither a pretrained tag of {TINY_CLIP} (tags: none) nor a checkpoint file the "
        "app can read."
    )
    assert built_models == []


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_real_checkpoint_files_still_load(built_models, tiny_clip, chelsea, kind):
    from core.zero_shot import zero_shot

    predictions = zero_shot(
        chelsea, ["a cat", "a dog"], model=TINY_CLIP, pretrained=str(tiny_clip[kind]), device="cpu", precision="fp32"
    )
    assert sorted(p.label for p in predictions) == ["a cat", "a dog"]
    assert built_models == [TINY_CLIP]


@pytest.mark.parametrize("name", ["~no-such-user-here/model", "/" + "a" * 5000, "a" * 5000, "/x\x00y", "my model"])
def test_names_the_file_system_refuses_are_sentences_too(name, chelsea):
    """A '~user' this machine lacks, a name too long for the file system, a NUL byte, a space: each raised a
    RuntimeError, an OSError or a raw message from deep in pathlib or huggingface_hub."""
    from core.models import load_classifier
    from core.zero_shot import resolve_model, zero_shot

    with pytest.raises(ValueError, match="neither a model id on the Hub nor a model folder"):
        load_classifier(name)
    with pytest.raises(ValueError):
        resolve_model(name)
    with pytest.raises(ValueError, match="nor a checkpoint file the app can read"):
        zero_shot(chelsea, ["a cat", "a dog"], model="ViT-B-32", pretrained=name, device="cpu")
