"""Captioner training on the generated captioned shapes: it learns, reports its events, writes its run folder, trains
with a frozen encoder on cached features, stops and resumes, and refuses bad settings; ROUGE on known strings."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.tiny_captioners import save_tiny_blip, save_tiny_vit_gpt2, tiny_gpt2_tokenizer
from training.caption_data import CaptionData, CaptionPair, CaptionReport
from training.caption_examples import write_captioned_shapes
from training.caption_model import SCRATCH_CAPTIONER, scratch_captioner
from training.captioning import PREDICTIONS, CaptionTrainConfig, train_captioner
from training.events import CaptionEvaluated, Finished, Saved, Started, Step, Stopped, read_events
from training.rouge import caption_scores, rouge_of

RESULT_KEYS = {"eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_loss", "train_loss", "train_runtime"}


def captioned_set(folder: Path, count: int, val: int, seed: int = 0) -> CaptionData:
    """The generated shapes as CaptionData, the first `val` images held out."""
    write_captioned_shapes(folder, count=count, seed=seed)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    pairs = tuple(CaptionPair(folder / row["file_name"], (row["text"],)) for row in rows)
    report = CaptionReport(
        pairs=count,
        images=count,
        train_images=count - val,
        val_images=val,
        split="test",
        image_column="file_name",
        caption_column="text",
        skipped=(),
        caption_words=(),
        warnings=(),
    )
    return CaptionData(train=pairs[val:], val=pairs[:val], report=report, root=folder)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> CaptionData:
    return captioned_set(tmp_path_factory.mktemp("shapes-small"), count=40, val=8)


def quick(data: CaptionData, output_dir: Path, **settings) -> CaptionTrainConfig:
    """A short run: a few steps, small batches, fp32 (so the numbers do not depend on the CPU's bf16)."""
    values = dict(num_train_epochs=2, per_device_train_batch_size=8, precision="fp32", max_new_tokens=12)
    return CaptionTrainConfig(train_file=data, output_dir=output_dir, **{**values, **settings})


# ---- ROUGE ---------------------------------------------------------------------------------------------------


def test_rouge_on_known_strings():
    assert rouge_of("two red circles", ["two red circles"]) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    half = rouge_of("a red circle", ["a blue square"])  # 1 of 3 words, no shared bigram
    assert half["rouge1"] == pytest.approx(100 / 3) and half["rouge2"] == 0.0
    # Stemming: "circles" matches "circle".
    assert rouge_of("one red circles", ["one red circle"])["rouge1"] == 100.0
    # Several references: the best one counts.
    assert rouge_of("a red circle", ["a blue square", "a red circle"])["rougeL"] == 100.0
    scores = caption_scores(["a red circle", "a blue square"], [["a red circle"], ["a green triangle"]])
    assert scores.rougeL == pytest.approx((100 + 100 / 3) / 2)
    assert scores.per_image_rougeL == pytest.approx((100.0, 100 / 3))
    partly = caption_scores(
        ["a red circle above a blue square", "two green triangles"],
        [["a red circle above a blue square"], ["one green triangle"]],
    )
    assert 0 < partly.bleu < 100
    assert caption_scores(
        ["a red circle above a blue square"], [["a red circle above a blue square"]]
    ).bleu == pytest.approx(100)
    with pytest.raises(ValueError, match="reference"):
        rouge_of("a", [])


# ---- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(mode="head"), "frozen_encoder"),
        (dict(learning_rate=0), "learning rate"),
        (dict(num_train_epochs=0), "epochs"),
        (dict(per_device_train_batch_size=1.5), "batch size"),
        (dict(label_smoothing=1.0), "label smoothing"),
        (dict(max_target_length=1), "target length"),
        (dict(encoder_model_name_or_path="google/vit-base-patch16-224-in21k"), "decoder_model_name_or_path"),
        (dict(config_name="vit-huge-scratch"), "vit-gpt2-scratch"),
        (dict(config_name=None), "No captioner"),
        (dict(precision="fp8"), "precision"),
        (dict(output_dir=" "), "output folder"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(tmp_path, small_set, settings, message):
    with pytest.raises(ValueError, match=message):
        CaptionTrainConfig(**{"train_file": small_set, "output_dir": tmp_path, **settings})


def test_a_blip_captioner_is_refused_as_not_supported_yet(tmp_path, small_set):
    (tmp_path / "blip").mkdir()
    blip = save_tiny_blip(tmp_path / "blip")
    config = quick(small_set, tmp_path / "run", model_name_or_path=str(blip))
    with pytest.raises(ValueError, match="not supported yet"):
        list(train_captioner(config))


def test_a_classifier_is_not_a_captioner(tmp_path, small_set, tiny_vit_dir):
    config = quick(small_set, tmp_path / "run", model_name_or_path=str(tiny_vit_dir))
    with pytest.raises(ValueError, match="not a captioner"):
        list(train_captioner(config))


# ---- a run ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_run(small_set, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("scratch-run")
    events = list(train_captioner(quick(small_set, output_dir)))
    return output_dir, events


def test_events_come_in_order(scratch_run, small_set):
    output_dir, events = scratch_run
    started = events[0]
    assert isinstance(started, Started)
    assert (started.train_size, started.val_size, started.epochs, started.mode) == (32, 8, 2, "full")
    assert started.total_steps == 2 * 4 and started.start_step == 0
    kinds = [type(event).__name__ for event in events]
    epoch = ["Step"] * 4 + ["CaptionEvaluated", "Saved"]
    assert kinds == ["Started", *epoch, *epoch, "Finished"]
    assert [event.step for event in events if isinstance(event, Step)] == list(range(1, 9))
    evaluations = [event for event in events if isinstance(event, CaptionEvaluated)]
    assert [(event.epoch, event.step, event.images) for event in evaluations] == [(1, 4, 8), (2, 8, 8)]
    for event in evaluations:
        assert all(0 <= value <= 100 for value in (event.rouge1, event.rouge2, event.rougeL, event.bleu))
        assert event.examples and event.examples[0][0] == small_set.val[0].captions[0]
    assert read_events(output_dir / "events.jsonl") == events


def test_the_run_folder_holds_the_captioner_results_and_predictions(scratch_run, small_set):
    output_dir, events = scratch_run
    finished = events[-1]
    assert isinstance(finished, Finished)
    results = json.loads((output_dir / "all_results.json").read_text())
    assert RESULT_KEYS <= set(results)
    assert results == finished.metrics
    last = [event for event in events if isinstance(event, CaptionEvaluated)][-1]
    assert results["eval_rougeL"] == pytest.approx(last.rougeL, abs=1e-3)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json", "run_config.json"):
        assert (output_dir / name).is_file(), name
    rows = [json.loads(line) for line in (output_dir / PREDICTIONS).read_text().splitlines()]
    assert [row["image"] for row in rows] == [str(pair.image) for pair in small_set.val]
    assert [row["reference"] for row in rows] == [pair.captions[0] for pair in small_set.val]
    assert all(isinstance(row["generated"], str) and 0 <= row["rougeL"] <= 100 for row in rows)
    # The saved captioner loads and captions with the same tokenizer.
    from transformers import AutoTokenizer, VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert model.config.decoder_start_token_id == tokenizer.eos_token_id == model.config.pad_token_id
    assert "circle" in tokenizer.decode(tokenizer("circle").input_ids)


def test_it_learns_the_shapes(tmp_path):
    """A CI-sized version of the README figure: the default settings on fewer images learn most of the grammar."""
    data = captioned_set(tmp_path / "shapes", count=300, val=30, seed=1)
    events = list(
        train_captioner(CaptionTrainConfig(train_file=data, output_dir=tmp_path / "run", num_train_epochs=25))
    )
    evaluations = [event for event in events if isinstance(event, CaptionEvaluated)]
    curve = " ".join(f"{event.rougeL:.1f}/{event.eval_loss:.2f}" for event in evaluations)
    # Measured: ROUGE-L 19 after the first epoch, 77.6 after the 25th, in 30 s on a 2-core CPU (bf16 autocast).
    assert evaluations[-1].rougeL >= 65, curve
    assert evaluations[-1].rougeL > evaluations[0].rougeL + 30, curve
    assert evaluations[-1].eval_loss < evaluations[0].eval_loss / 4, curve


# ---- frozen encoder ------------------------------------------------------------------------------------------


def test_a_frozen_encoder_runs_once_per_image_and_does_not_change(tmp_path, small_set):
    from transformers import ViTModel

    calls: list[int] = []

    def count_encoder_calls(module, _inputs, _output):
        if isinstance(module, ViTModel):
            calls.append(1)

    hook = torch.nn.modules.module.register_module_forward_hook(count_encoder_calls)
    try:
        config = quick(small_set, tmp_path / "run", mode="frozen_encoder", num_train_epochs=3)
        events = list(train_captioner(config))
    finally:
        hook.remove()
    assert isinstance(events[-1], Finished) and events[0].mode == "frozen_encoder"
    # One feature pass: 32 training images and 8 validation images in batches of 64; training and generation
    # after it read the cached features.
    assert len(calls) == 2
    assert len([event for event in events if isinstance(event, Step)]) == 3 * 4
    captions = [caption for pair in small_set.train for caption in pair.captions]
    fresh = scratch_captioner(SCRATCH_CAPTIONER, captions, max_target_length=config.max_target_length, seed=config.seed)
    fresh.model.save_pretrained(tmp_path / "untrained")
    untrained = load_file(tmp_path / "untrained" / "model.safetensors")
    trained = load_file(tmp_path / "run" / "model.safetensors")
    encoder = [name for name in trained if name.startswith("encoder.")]
    decoder = [name for name in trained if name.startswith("decoder.") and "ln" not in name]
    assert encoder and all(torch.equal(trained[name], untrained[name]) for name in encoder)
    assert any(not torch.allclose(trained[name], untrained[name], atol=1e-6) for name in decoder)


# ---- stop and resume -----------------------------------------------------------------------------------------


def test_stop_then_resume_continues_the_step_count(tmp_path, small_set):
    output_dir = tmp_path / "run"
    stop = threading.Event()
    first = []
    for event in train_captioner(quick(small_set, output_dir, num_train_epochs=3), stop):
        first.append(event)
        if isinstance(event, Step) and event.step == 6:
            stop.set()
    assert isinstance(first[-1], Stopped) and first[-1].step == 6
    assert isinstance(first[-2], Saved) and (output_dir / "checkpoint" / "trainer_state.json").is_file()
    split = json.loads((output_dir / "split.json").read_text())

    resumed = list(train_captioner(quick(small_set, output_dir, num_train_epochs=3, resume_from_checkpoint=True)))
    started = resumed[0]
    assert isinstance(started, Started) and started.start_step == 6 and started.total_steps == 12
    assert [event.step for event in resumed if isinstance(event, Step)] == list(range(7, 13))
    assert [event.epoch for event in resumed if isinstance(event, CaptionEvaluated)] == [2, 3]
    assert isinstance(resumed[-1], Finished)
    assert json.loads((output_dir / "split.json").read_text()) == split
    logged = read_events(output_dir / "events.jsonl")
    assert logged == first + resumed


def test_resume_keeps_the_split_even_when_other_data_is_given(tmp_path, small_set):
    output_dir = tmp_path / "run"
    stop = threading.Event()
    stop.set()  # stops after the first step
    list(train_captioner(quick(small_set, output_dir), stop))
    other = CaptionData(train=small_set.train[:16], val=small_set.val[:2], report=small_set.report, root=small_set.root)
    resumed = list(train_captioner(quick(other, output_dir, resume_from_checkpoint=True)))
    assert resumed[0].train_size == 32 and resumed[0].val_size == 8 and resumed[0].start_step == 1


# ---- other starting points -----------------------------------------------------------------------------------


def test_continue_training_a_saved_vit_gpt2_captioner(tmp_path, small_set):
    (tmp_path / "captioner").mkdir()
    captioner = save_tiny_vit_gpt2(tmp_path / "captioner")
    events = list(train_captioner(quick(small_set, tmp_path / "run", model_name_or_path=str(captioner))))
    assert isinstance(events[-1], Finished)
    assert json.loads((tmp_path / "run" / "preprocessor_config.json").read_text())["size"] == {
        "height": 32,
        "width": 32,
    }


def test_a_new_captioner_from_an_encoder_and_a_gpt2_decoder(tmp_path, small_set, tiny_vit_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_gpt2_tokenizer()
    tokenizer.pad_token = None  # as gpt2's own tokenizer: no pad token
    decoder_dir = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=64, vocab_size=len(tokenizer))
    ).save_pretrained(decoder_dir)
    tokenizer.save_pretrained(decoder_dir)
    config = quick(
        small_set,
        tmp_path / "run",
        encoder_model_name_or_path=str(tiny_vit_dir),
        decoder_model_name_or_path=str(decoder_dir),
        num_train_epochs=1,
    )
    events = list(train_captioner(config))
    assert isinstance(events[-1], Finished)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    end = tokenizer.eos_token_id
    assert (saved["decoder_start_token_id"], saved["pad_token_id"], saved["decoder"]["add_cross_attention"]) == (
        end,
        end,
        True,
    )
