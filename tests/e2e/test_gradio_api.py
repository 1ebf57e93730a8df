"""The Classify tab end to end: the real app, called through gradio_client as any script would."""

from __future__ import annotations

import csv
import zipfile

import pytest
from gradio_client import Client, handle_file

from core import classify


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def test_named_endpoints_are_listed(client):
    endpoints = client.view_api(return_format="dict")["named_endpoints"]
    assert {"/classify", "/classify_batch"} <= set(endpoints)


def test_classify_endpoint_gives_the_engines_labels(client, tiny_vit_dir, photo_path):
    label_output, run_info = client.predict(handle_file(str(photo_path)), str(tiny_vit_dir), 3, api_name="/classify")
    expected = classify(photo_path, model=str(tiny_vit_dir), top_k=3)
    shown = [item["label"] for item in label_output["confidences"]]
    assert shown == [p.label for p in expected]
    assert label_output["label"] == expected[0].label
    scores = [item["confidence"] for item in label_output["confidences"]]
    assert scores == sorted(scores, reverse=True)
    assert str(tiny_vit_dir) in run_info


def test_a_bad_upload_gets_the_engines_message(client, tiny_vit_dir, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are my notes, not a photo")
    with pytest.raises(Exception, match="notes.jpg.*not an image"):
        client.predict(handle_file(str(not_an_image)), str(tiny_vit_dir), 3, api_name="/classify")


def test_an_unknown_model_folder_is_named_in_the_message(client, photo_path):
    with pytest.raises(Exception, match="'./no-such-run' is neither a model id on the Hub nor a model folder"):
        client.predict(handle_file(str(photo_path)), "./no-such-run", 3, api_name="/classify")


def test_batch_reports_bad_files_in_their_own_row_and_writes_a_csv(client, tiny_vit_dir, photo_path, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_path.read_bytes()[:200])  # a truncated PNG
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(photo_path, "cats/one.png")
        zipped.write(photo_path, "cats/two.png")
    table, csv_path, summary = client.predict(
        [handle_file(str(photo_path)), handle_file(str(broken)), handle_file(str(archive))],
        str(tiny_vit_dir),
        2,
        api_name="/classify_batch",
    )
    rows = table["data"]
    assert [row[0] for row in rows] == [photo_path.name, "broken.png", "more.zip/cats/one.png", "more.zip/cats/two.png"]
    top1 = classify(photo_path, model=str(tiny_vit_dir), top_k=1)[0].label
    assert [row[1] for row in rows] == [top1, "", top1, top1]
    assert "broken.png" in rows[1][4] and rows[0][4] == ""
    assert "**3** images classified" in summary and "**1** could not be read" in summary
    with open(csv_path, newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["file", "top1", "score", "top_k", "error"]
    assert [row[0] for row in written[1:]] == [row[0] for row in rows]
