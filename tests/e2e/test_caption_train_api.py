"""The Train tab's captioner through gradio_client: check the example set, train a tiny captioner on a small zip
while the view streams, then read its captions and find it listed as a captioner."""

from __future__ import annotations

import zipfile

import pytest
from gradio_client import Client, handle_file

from training import write_captioned_shapes_zip

# base, encoder, decoder, mode, epochs, learning rate, batch, warmup, weight decay, max target length,
# label smoothing, beams, max new tokens, seed, precision, run name
TINY_RUN = ["vit-gpt2-scratch", "", "", "full", 1, 1e-3, 8, 0.0, 0.0, 16, 0.0, 1, 0, 0, "auto", "captioner-api"]
# zip, image column, caption column (server path: not offered on this app)
NO_COLUMNS = ["", ""]


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def _counts(table) -> dict:
    return {row[0]: row[1] for row in table["data"]}


def test_the_example_set_checks_as_1200_images(client):
    example = client.predict(api_name="/caption_example")
    summary, counts, histogram, note, thumbnails, skipped = client.predict(
        handle_file(example), *NO_COLUMNS, "vit-gpt2-scratch", "", "", 32, api_name="/check_captions"
    )
    assert summary.startswith("1200 pairs on 1200 images: 1080 to train on, 120 to validate")
    counts = _counts(counts)
    assert (counts["images"], counts["training images"], counts["validation images"]) == (1200, 1080, 120)
    assert histogram["type"] == "matplotlib" and histogram["plot"].startswith("data:image/")
    assert "tokens" in note and len(thumbnails) == 6 and all(tile["caption"] for tile in thumbnails)


def test_a_zip_without_captions_is_a_clear_message(client, tmp_path):
    archive = tmp_path / "photos-only.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("readme.txt", "photos, but no captions file")
    with pytest.raises(Exception, match="No caption file found in photos-only.zip"):
        client.predict(
            handle_file(str(archive)), *NO_COLUMNS, "vit-gpt2-scratch", "", "", 32, api_name="/check_captions"
        )


@pytest.fixture(scope="module")
def api_run(client, tmp_path_factory):
    """One tiny captioner run through /train_captioner: its streamed updates and its last output."""
    archive = write_captioned_shapes_zip(tmp_path_factory.mktemp("captions"), count=40)
    job = client.submit(handle_file(str(archive)), *NO_COLUMNS, *TINY_RUN, api_name="/train_captioner")
    updates = list(job)
    return updates, job.outputs()[-1]


def test_a_tiny_run_streams_then_shows_its_captions(api_run, app_runs_dir):
    updates, last = api_run
    run_dir, progress, figure, scores, examples, predictions, picker, runs, bases = last
    assert run_dir == "captioner-api" and progress.startswith("Finished") and "ROUGE-L" in progress
    assert figure["type"] == "matplotlib" and scores.startswith("epoch 1: ROUGE-1")
    assert predictions["headers"] == ["image", "reference", "generated", "ROUGE-L"]
    assert len(predictions["data"]) == 4  # 10% of 40 images held out
    assert len(picker["choices"]) == 4
    assert any(label.startswith("captioner-api (finished") and "captioner" in label for label, _ in runs["choices"])
    assert str(app_runs_dir / "captioner-api") in [value for value, _ in bases["choices"]]
    assert len(updates) >= 2, "the progress did not stream"


def test_the_run_shows_again_and_lists_as_a_captioner(client, api_run):
    run_dir, progress, figure, scores, examples, predictions, *_ = client.predict(
        "captioner-api", api_name="/show_caption_run"
    )
    assert run_dir == "captioner-api" and progress.startswith("Finished") and len(predictions["data"]) == 4
    box = client.predict(run_dir, api_name="/use_captioner")  # the Caption tab's box (the tab switch is no output)
    assert box["value"].endswith("/captioner-api")
    assert any(value == box["value"] and label == "captioner-api (your run)" for label, value in box["choices"])
