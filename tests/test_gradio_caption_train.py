"""The Train tab's captioner section, called as Gradio calls it: check a captioned zip, train a tiny captioner
while the view streams, then its captions, word maps before and after, and Use this model."""

from __future__ import annotations

import zipfile

import gradio as gr
import pytest

from training import write_captioned_shapes_zip
from ui.shared.caption_training import CAPTION_REPORT_HEADERS, PREDICTION_HEADERS

# base, encoder, decoder, mode, epochs, learning rate, batch, warmup, weight decay, max target length,
# label smoothing, beams, max new tokens, seed, precision
TINY_RUN = ["vit-gpt2-scratch", "", "", "full", 1, 1e-3, 8, 0.0, 0.0, 16, 0.0, 1, 0, 0, "auto"]


@pytest.fixture
def own_machine(tmp_path, monkeypatch):
    """The app on one's own machine, its runs in a fresh folder; the captioner module, a small zip and a page."""
    from ui import caption_train

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VIT_STUDIO_SHARED", "0")
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    archive = write_captioned_shapes_zip(tmp_path / "data", count=40)
    return caption_train, archive, gr.Request(session_hash="local")


def test_check_shows_counts_histogram_and_thumbnails(own_machine):
    caption_train, archive, _ = own_machine
    summary, counts, histogram, note, thumbnails, skipped = caption_train.check_captions(
        str(archive), "", "", "", "vit-gpt2-scratch", "", "", 32
    )
    assert summary.startswith("40 pairs on 40 images: 36 to train on, 4 to validate")
    assert list(counts.columns) == list(CAPTION_REPORT_HEADERS)
    assert dict(counts.values.tolist())["validation images"] == 4
    assert histogram.axes[0].patches, "the histogram has no bars"
    assert "tokens" in note and len(thumbnails) == 6 and skipped.empty


def test_a_zip_without_captions_is_a_message(own_machine, tmp_path):
    caption_train, _, _ = own_machine
    archive = tmp_path / "no-captions.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("notes.txt", "no captions here")
    with pytest.raises(gr.Error):
        caption_train.check_captions(str(archive), "", "", "", "vit-gpt2-scratch", "", "", 32)
    with pytest.raises(gr.Error, match="Upload a zip"):
        caption_train.check_captions(None, "", "", "", "vit-gpt2-scratch", "", "", 32)


def test_a_tiny_run_streams_then_shows_its_captions_and_is_used(own_machine, tmp_path):
    caption_train, archive, page = own_machine
    updates = list(caption_train.start_caption_run(str(archive), "", "", "", *TINY_RUN, "tiny-captioner", None, page))
    run_name, progress, figure, scores, examples, predictions, picker, runs, bases = updates[-1]
    assert run_name == "tiny-captioner" and progress.startswith("Finished") and "ROUGE-L" in progress
    assert figure is not None and scores.startswith("epoch 1: ROUGE-1")
    assert list(predictions.columns) == list(PREDICTION_HEADERS) and len(predictions) == 4
    assert len(picker["choices"]) == 4 and picker["value"] == picker["choices"][0][1]
    assert [name for _, name in runs["choices"]] == ["tiny-captioner"]
    assert str(tmp_path / "runs" / "tiny-captioner") in bases["choices"]
    assert len(updates) >= 2, "the progress did not stream"

    # The classifier's lists leave the captioner out.
    from ui import train_tab

    classifier_runs, classifier_bases = train_tab.refresh_lists(None, page)
    assert (
        classifier_runs["choices"] == []
        and str(tmp_path / "runs" / "tiny-captioner") not in classifier_bases["choices"]
    )

    shown = caption_train.show_caption_run("tiny-captioner", None, page)
    assert shown[1] == progress and len(shown[5]) == 4

    before, after, line = caption_train.show_word_maps("tiny-captioner", picker["value"], None, page)
    # The maps explain the caption the table shows for that image.
    generated = predictions.set_index("image").loc[picker["value"].rsplit("/", 1)[-1], "generated"]
    assert line.startswith(f"“{generated}”")
    assert (
        len(before) == len(after) > 0 and [c for _, c in before] == [c for _, c in after] and "before training" in line
    )
    with pytest.raises(gr.Error, match="validation images"):
        caption_train.show_word_maps("tiny-captioner", str(archive), None, page)

    box, tabs = caption_train.use_captioner("tiny-captioner", None, page)
    assert box["value"] == str((tmp_path / "runs" / "tiny-captioner").resolve())
    assert box["value"] in [value for _, value in box["choices"]] and tabs.selected == "caption"


def test_a_stopped_run_resumes_to_the_end(own_machine):
    from training.events import Step, Stopped
    from training.jobs import current_job
    from ui.shared.training import STOPPING

    caption_train, archive, page = own_machine
    settings = list(TINY_RUN)
    settings[4] = 3  # epochs: 15 steps of 8 images
    stream = caption_train.start_caption_run(str(archive), "", "", "", *settings, "resumed", None, page)
    answers = []
    for _ in stream:
        if not answers and any(isinstance(event, Step) for event in current_job().state().events):
            answers.append(caption_train.stop_caption_run(None, page))
    assert answers == [STOPPING]
    assert isinstance(current_job().state().events[-1], Stopped)
    runs, _ = caption_train.refresh_caption_lists(None, page)
    assert any(label.startswith("resumed (stopped") for label, _ in runs["choices"])
    *_, last = caption_train.resume_caption_run("resumed", None, page)
    run_name, progress, *_, predictions, picker, _, _ = last
    assert run_name == "resumed" and progress.startswith("Finished: step 15/15") and len(predictions) == 4
    with pytest.raises(gr.Error, match="has finished"):
        next(caption_train.resume_caption_run("resumed", None, page))
