"""A captioner run among the runs: listed as a captioner with its ROUGE-L, its curves and model card, stopped and
resumed through the one-run-at-a-time job, read back for "what it learnt" (predictions, word maps before and after
training), kept out of the classifier's boxes, and trained without warnings."""

from __future__ import annotations

import json
import logging
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.test_captioning import captioned_set, quick
from training import (
    CaptionTrainConfig,
    caption_predictions,
    caption_token_lengths,
    caption_tokenizer,
    initial_captioner,
    word_maps_before_after,
    zip_run,
)
from training.caption_model import SCRATCH_CAPTIONER, scratch_captioner
from training.captioning import train_captioner
from training.events import CaptionEvaluated, Finished, Step, Stopped, read_events
from training.finetune import resume_config
from training.model_card import model_card
from training.runs import CONFUSION_PNG, CURVES_PNG, curves, summarize
from ui.shared.caption_training import caption_data_view, caption_form_config, prediction_rows
from ui.shared.models import model_box_choices
from ui.shared.training import describe_progress, run_label, start_from_choices


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return captioned_set(tmp_path_factory.mktemp("shapes"), count=40, val=8)


@pytest.fixture(scope="module")
def finished_run(shapes, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("runs") / "captioner"
    list(train_captioner(quick(shapes, output_dir)))
    return output_dir


# ---- listed, drawn and described as a captioner ----------------------------------------------------------------


def test_a_captioner_run_lists_with_its_rouge(finished_run):
    summary = summarize(finished_run)
    events = read_events(finished_run / "events.jsonl")
    last = [event for event in events if isinstance(event, CaptionEvaluated)][-1]
    assert (summary.task, summary.status, summary.classes, summary.eval_accuracy) == ("caption", "finished", (), None)
    assert summary.eval_rougeL == pytest.approx(last.rougeL)
    assert f"captioner, ROUGE-L {last.rougeL:.0f}" in run_label(summary)
    assert f"validation ROUGE-L {last.rougeL:.1f}" in describe_progress(events, running=False)


def test_its_curves_carry_rouge_and_its_figures_have_no_confusion_matrix(finished_run):
    events = read_events(finished_run / "events.jsonl")
    run_curves = curves(events)
    evaluations = [event for event in events if isinstance(event, CaptionEvaluated)]
    assert run_curves.is_caption and run_curves.eval_accuracy == ()
    assert run_curves.eval_steps == tuple(event.step for event in evaluations)
    assert run_curves.eval_rougeL == tuple(event.rougeL for event in evaluations)
    assert run_curves.eval_rouge2 == tuple(event.rouge2 for event in evaluations)
    assert len(run_curves.train_loss) == 8
    assert (finished_run / CURVES_PNG).is_file() and not (finished_run / CONFUSION_PNG).exists()


def test_the_model_card_carries_the_rouge_figures(finished_run):
    results = json.loads((finished_run / "all_results.json").read_text())
    card = model_card(finished_run, repo_id="me/shapes-captioner")
    assert "pipeline_tag: image-to-text" in card and "base_model" not in card  # trained from scratch
    assert f"value: {results['eval_rougeL']}" in card  # model-index, shown in the Hub's sidebar
    assert f"| ROUGE-L | {results['eval_rougeL']:.2f} |" in card
    first = json.loads((finished_run / "predictions.jsonl").read_text().splitlines()[0])
    assert f"| {first['reference']} | {first['generated']} |" in card
    assert 'model="me/shapes-captioner"' in card and "32 images" in card


def test_the_classifier_boxes_leave_captioners_out_and_the_caption_box_takes_them(finished_run, tiny_vit_dir):
    captioner = summarize(finished_run)
    classifier = captioner.__class__(**{**captioner.__dict__, "name": "cls", "path": tiny_vit_dir, "task": "classify"})
    runs = [captioner, classifier]
    classify_box = model_box_choices("google/vit", (), runs, hub_up=True, loads_offline=lambda name: False)
    caption_box = model_box_choices(
        "nlpconnect/x", (), runs, hub_up=True, loads_offline=lambda name: False, task="caption"
    )
    assert str(tiny_vit_dir) in [value for _, value in classify_box.choices]
    assert str(finished_run) not in [value for _, value in classify_box.choices]
    assert str(finished_run) in [value for _, value in caption_box.choices]
    assert str(tiny_vit_dir) not in [value for _, value in caption_box.choices]
    assert str(finished_run) not in start_from_choices(runs)


# ---- what it learnt -------------------------------------------------------------------------------------------


def test_predictions_read_back_worst_first_for_the_table(finished_run, shapes):
    predictions = caption_predictions(finished_run)
    assert [prediction.image for prediction in predictions] == [pair.image for pair in shapes.val]
    assert [prediction.references for prediction in predictions] == [pair.captions for pair in shapes.val]
    rows = prediction_rows(predictions)
    assert [row[3] for row in rows] == sorted(row[3] for row in rows)
    assert {row[0] for row in rows} == {pair.image.name for pair in shapes.val}
    with pytest.raises(ValueError, match="predictions.jsonl"):
        caption_predictions(finished_run / "checkpoint")


def test_the_initial_captioner_is_what_training_started_from(tmp_path, shapes):
    """A frozen-encoder run keeps the encoder it started with: the rebuilt initial captioner must hold exactly it, and
    be the scratch captioner of the run's captions and seed."""
    run = tmp_path / "frozen"
    list(train_captioner(quick(shapes, run, mode="frozen_encoder", seed=7)))
    folder = Path(initial_captioner(run))
    assert folder == run / "initial" and not (run / "initial.tmp").exists()
    initial = load_file(folder / "model.safetensors")
    trained = load_file(run / "model.safetensors")
    encoder = [name for name in trained if name.startswith("encoder.")]
    assert encoder and all(torch.equal(initial[name], trained[name]) for name in encoder)
    captions = [caption for pair in shapes.train for caption in pair.captions]
    scratch_captioner(SCRATCH_CAPTIONER, captions, max_target_length=32, seed=7).model.save_pretrained(tmp_path / "f")
    fresh = load_file(tmp_path / "f" / "model.safetensors")
    assert initial.keys() == fresh.keys() and all(torch.equal(initial[name], fresh[name]) for name in initial)
    assert initial_captioner(run) == str(folder)  # kept, not rebuilt
    # Left out of what is shared.
    with zipfile.ZipFile(zip_run(run, tmp_path / "zips")) as shared:
        assert not [name for name in shared.namelist() if "/initial/" in name]


def test_word_maps_before_and_after_map_the_same_words(finished_run, shapes):
    image = shapes.val[0].image
    compared = word_maps_before_after(finished_run, image)
    assert compared.before.caption == compared.after.caption == compared.caption
    assert compared.before.tokens == compared.after.tokens and compared.before.tokens
    assert compared.before.maps.shape == compared.after.maps.shape == (len(compared.before.tokens), 8, 8)
    assert not torch.allclose(torch.from_numpy(compared.before.maps), torch.from_numpy(compared.after.maps))
    typed = word_maps_before_after(finished_run, image, text="two red circles")
    assert typed.before.caption == "two red circles" and typed.before.model == str(finished_run / "initial")


def test_a_continued_captioner_compares_with_the_captioner_it_started_from(tmp_path, shapes, finished_run):
    run = tmp_path / "continued"
    list(
        train_captioner(quick(shapes, run, model_name_or_path=str(finished_run), config_name=None, num_train_epochs=1))
    )
    assert initial_captioner(run) == str(finished_run)
    assert not (run / "initial").exists()
    card = model_card(run)
    assert f"base_model: {finished_run}" in card and f"continuing `{finished_run}`" in card


# ---- stop and resume through the job ----------------------------------------------------------------------------


def test_a_captioner_job_stops_and_resumes(tmp_path, shapes, monkeypatch):
    from training.jobs import start_new_run, start_training, stop_current

    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    job = start_new_run(quick(shapes, Path("."), num_train_epochs=3), "cap")
    while job.running and not any(isinstance(event, Step) and event.step >= 2 for event in job.state().events):
        threading.Event().wait(0.05)
    assert stop_current()
    state = job.wait(120)
    assert state.error is None and isinstance(state.events[-1], Stopped), state.error
    assert summarize(state.output_dir).resumable and summarize(state.output_dir).task == "caption"

    config = resume_config(state.output_dir)
    assert isinstance(config, CaptionTrainConfig) and config.resume_from_checkpoint
    assert (config.num_train_epochs, config.per_device_train_batch_size, config.max_new_tokens) == (3, 8, 12)
    resumed = start_training(config).wait(300)
    assert resumed.error is None and isinstance(resumed.events[-1], Finished), resumed.error
    stopped_at = state.events[-1].step
    assert resumed.events[0].start_step == stopped_at and resumed.earlier == state.events
    steps = [event.step for event in resumed.run_events if isinstance(event, Step)]
    assert steps == list(range(1, 13))
    with pytest.raises(ValueError, match="has finished"):
        resume_config(state.output_dir)


def test_a_bad_captioned_zip_is_the_jobs_error_and_leaves_no_run(tmp_path, monkeypatch):
    from training.jobs import start_new_run

    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("captions.csv", "picture,words\na.png,a cat\n")
    state = start_new_run(CaptionTrainConfig(train_file=bad, output_dir=Path(".")), "bad").wait(60)
    assert state.error and "column" in state.error and "picture" in state.error
    assert list((tmp_path / "runs").iterdir()) == []


# ---- the data check -------------------------------------------------------------------------------------------


def test_the_check_counts_caption_tokens_with_the_model_tokenizer(shapes):
    view = caption_data_view(shapes, base=SCRATCH_CAPTIONER, encoder=None, decoder=None, max_target_length=6)
    captions = [caption for pair in shapes.train for caption in pair.captions]
    tokenizer = caption_tokenizer(captions, model_name_or_path=None, decoder_model_name_or_path=None, config_name=None)
    assert view.token_lengths == caption_token_lengths(captions, tokenizer)
    # The scratch tokenizer learnt these words whole: "one red circle" is 3 tokens and the end token.
    assert caption_token_lengths(["one red circle"], tokenizer) == (4,)
    too_long = sum(length > 6 for length in view.token_lengths)
    assert too_long and f"{too_long} are longer than 6 tokens" in view.length_note
    assert [row[1] for row in view.rows[:4]] == [40, 40, 32, 8]
    assert len(view.thumbnails) == 6 and view.thumbnails[0][1] in {c for p in shapes.train for c in p.captions}


def test_the_check_falls_back_to_words_when_the_tokenizer_cannot_be_read(shapes, tmp_path):
    view = caption_data_view(
        shapes, base=str(tmp_path / "no-such-captioner"), encoder=None, decoder=None, max_target_length=32
    )
    assert view.token_lengths == () and view.length_note.startswith("In words: Could not read the tokenizer")


def test_the_form_picks_how_the_captioner_starts():
    common = dict(
        mode="full",
        epochs=2.0,
        learning_rate=1e-3,
        batch_size=8.0,
        warmup_ratio=0.0,
        weight_decay=0.0,
        max_target_length=32.0,
        label_smoothing=0.0,
        num_beams=1.0,
        max_new_tokens=0.0,
        image_column=" ",
        caption_column="",
        seed=1.0,
        precision="auto",
    )
    scratch = caption_form_config("d.zip", SCRATCH_CAPTIONER, encoder="", decoder="", **common)
    assert (scratch.config_name, scratch.model_name_or_path, scratch.max_new_tokens) == (SCRATCH_CAPTIONER, None, None)
    assert scratch.image_column is None
    continued = caption_form_config("d.zip", "runs/old", encoder=None, decoder=None, **common)
    assert continued.model_name_or_path == "runs/old"
    wired = caption_form_config("d.zip", SCRATCH_CAPTIONER, encoder="vit", decoder="gpt2", **common)
    assert (wired.encoder_model_name_or_path, wired.decoder_model_name_or_path) == ("vit", "gpt2")
    with pytest.raises(ValueError, match="both an image encoder and a text decoder"):
        caption_form_config("d.zip", SCRATCH_CAPTIONER, encoder="vit", decoder="", **common)
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        caption_form_config("d.zip", SCRATCH_CAPTIONER, encoder="", decoder="", **{**common, "epochs": 1.5})


# ---- quiet -----------------------------------------------------------------------------------------------------


def test_training_and_word_maps_log_no_warnings(tmp_path, shapes, caplog, capfd):
    """transformers' attention-mask warnings and accelerate's tied-weights warning once filled the console."""
    with caplog.at_level(logging.WARNING):
        run = tmp_path / "quiet"
        list(train_captioner(quick(shapes, run, num_train_epochs=1)))
        word_maps_before_after(run, shapes.val[0].image)
    printed = capfd.readouterr().err
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    for text in (printed, *logged):
        assert "attention_mask" not in text and "attention mask" not in text, text
        assert "Removed shared tensor" not in text, text
