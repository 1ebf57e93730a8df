"""The Train tab end to end through gradio_client: check a zip, train while the events stream, look at the results."""

from __future__ import annotations

import zipfile

import pytest
from gradio_client import Client, handle_file

from core import classify

# base, mode, epochs, learning rate, batch, weight decay, warmup, image size, augment, seed, precision, run name
HEAD_RUN = ["head", 6, 1e-2, 16, 0.0, 0.1, 0, False, 0, "auto"]


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def test_check_data_reports_the_classes(client, shapes_zip):
    summary, table, chart, thumbnails, skipped = client.predict(
        handle_file(str(shapes_zip)), None, "", api_name="/check_data"
    )
    assert summary.startswith("3 classes, ")
    assert [row[0] for row in table["data"]] == ["circle", "square", "triangle"]
    assert all(row[3] == 24 for row in table["data"])
    assert len(thumbnails) == 12 and skipped["data"] in ([], [["", ""]])


def test_a_bad_zip_gets_a_message(client, tmp_path):
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(Exception, match="(?i)no images|empty"):
        client.predict(handle_file(str(empty)), None, "", api_name="/check_data")


def test_bad_settings_are_a_message_and_make_no_run(client, shapes_zip, app_runs_dir):
    before = sorted(app_runs_dir.iterdir())
    with pytest.raises(Exception, match="learning rate must be greater than 0"):
        client.predict(
            handle_file(str(shapes_zip)),
            None,
            "",
            str(app_runs_dir / "x"),
            "head",
            3,
            0,
            16,
            0.0,
            0.1,
            0,
            False,
            0,
            "auto",
            "never",
            api_name="/train",
        )
    assert sorted(app_runs_dir.iterdir()) == before


@pytest.fixture(scope="module")
def api_run(client, shapes_zip, tiny_vit_dir):
    """One head-only training through /train, its streamed updates and its last output."""
    job = client.submit(
        handle_file(str(shapes_zip)), None, "", str(tiny_vit_dir), *HEAD_RUN, "shapes-api", api_name="/train"
    )
    updates = list(job)
    return updates, job.outputs()[-1]


def test_train_streams_progress_then_results(api_run, app_runs_dir):
    updates, last = api_run
    run_dir, progress, figure, per_class, confusion, true_class, predicted, runs, bases = last
    # 6 epochs of 4 batches: 60 training images, 12 held out
    assert progress.startswith("Finished: step 24/24") and "validation accuracy" in progress
    # Head-only steps run on features computed once: their speed would read as thousands of images a second.
    assert "images/s" not in progress
    assert all(row[1].endswith("%") for row in per_class["data"])  # '71%', not 0.7143
    assert str(app_runs_dir / "shapes-api") in [value for value, _ in bases["choices"]], "not under Start from"
    assert run_dir == "shapes-api"  # a run is named, never pathed
    assert figure["type"] == "matplotlib" and figure["plot"].startswith("data:image/")
    assert [row[0] for row in per_class["data"]] == ["circle", "square", "triangle"]
    assert confusion and true_class["choices"][0][0] == "circle"
    assert any(label.startswith("shapes-api (finished") for label, _ in runs["choices"])
    assert len(updates) >= 2, "the progress did not stream"


def test_after_the_run_cells_zip_and_use(client, api_run):
    import json
    from pathlib import Path

    _, (run_dir, _, _, per_class, *_) = api_run
    tiles = client.predict(run_dir, "circle", "circle", api_name="/validation_cell")
    assert len(tiles) == min(per_class["data"][0][2], 12)
    assert all(tile["caption"].endswith("%)") for tile in tiles)
    archive = client.predict(run_dir, api_name="/zip_run")
    assert "shapes-api/model.safetensors" in zipfile.ZipFile(archive).namelist()
    classify_box, attention_box, walkthrough_box = client.predict(run_dir, api_name="/use_run")
    folder = Path(classify_box["value"])
    assert (
        attention_box["value"] == walkthrough_box["value"] == str(folder)
        and folder.name == run_dir
        and (folder / "config.json").is_file()
    )
    first_val_image = json.loads((folder / "split.json").read_text())["val"][0][0]
    assert classify(first_val_image, model=str(folder), top_k=1)[0].label in ("circle", "square", "triangle")


def test_a_finished_run_is_shown_again(client, api_run, app_runs_dir):
    run_dir, progress, figure, per_class, *_ = client.predict("shapes-api", api_name="/show_run")
    assert progress.startswith("Finished") and run_dir == "shapes-api"
    assert figure["type"] == "matplotlib" and [row[0] for row in per_class["data"]] == ["circle", "square", "triangle"]
    with pytest.raises(Exception, match="has finished; to train more, start a new run from it"):
        client.predict("shapes-api", api_name="/resume")


def test_push_without_a_network_is_a_message(client, api_run, app_runs_dir):
    with pytest.raises(Exception, match="Could not push to me/shapes"):
        client.predict("shapes-api", "me/shapes", "hf_dummy_token", True, api_name="/push_to_hub")
    with pytest.raises(Exception, match="'me/my shapes' is not a valid repository name. Use user/name"):
        client.predict("shapes-api", "me/my shapes", "hf_dummy_token", True, api_name="/push_to_hub")


def test_loose_photos_are_told_to_go_in_class_folders(client, tmp_path):
    import io

    from PIL import Image

    archive = tmp_path / "loose.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for index in range(4):
            photo = io.BytesIO()
            Image.new("RGB", (32, 32), (index * 60, 90, 200)).save(photo, format="JPEG")
            packed.writestr(f"IMG_{index}.jpg", photo.getvalue())
        packed.writestr("notes.txt", "my photos")
    with pytest.raises(Exception, match=r"The 4 photo\(s\) .* are not in class folders.*cats/ \(1.jpg"):
        client.predict(handle_file(str(archive)), None, "", api_name="/check_data")


def test_stop_with_nothing_training_says_so(client, api_run):
    from ui.shared.training import NOTHING_TRAINING

    assert client.predict(api_name="/stop_training") == NOTHING_TRAINING
