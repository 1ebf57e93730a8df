"""`python -m bench caption|zero-shot|train --quick` end to end, with the models shrunk to tiny shapes so the
whole run (building, timing, fidelity, report) takes seconds instead of minutes."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import main
from training.examples import write_shapes

TINY_CLIP = "vit-studio-bench-tiny-clip"
TINY_VIT = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
TINY_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


@pytest.fixture
def tiny_captioner(monkeypatch):
    import bench.caption

    monkeypatch.setattr(bench.caption, "ENCODER_SHAPE", TINY_VIT)
    # The full GPT-2 vocabulary stays: the benchmark's tokenizer must cope with ids it cannot decode.
    monkeypatch.setattr(
        bench.caption,
        "DECODER_SHAPE",
        dict(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=bench.caption.GPT2_VOCAB_SIZE),
    )


@pytest.fixture
def tiny_clips(monkeypatch, tmp_path):
    import open_clip

    import bench.zero_shot

    config = {
        "embed_dim": 32,
        # head_width 16 gives 2 heads; open_clip's default of 64 would give width // 64 = 0 heads.
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    (tmp_path / f"{TINY_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / f"{TINY_CLIP}.json")
    monkeypatch.setattr(bench.zero_shot, "MODEL", TINY_CLIP)
    monkeypatch.setattr(
        bench.zero_shot, "HF_TEXT_SHAPE", {**TINY_TOWER, "vocab_size": 49408, "max_position_embeddings": 77}
    )
    monkeypatch.setattr(bench.zero_shot, "HF_VISION_SHAPE", {**TINY_TOWER, "image_size": 32, "patch_size": 8})
    monkeypatch.setattr(bench.zero_shot, "HF_PROJECTION_DIM", 32)


@pytest.fixture
def tiny_trainee(monkeypatch):
    import bench.train

    monkeypatch.setattr(bench.train, "MODEL_SHAPE", TINY_VIT)


def test_caption_benchmark_runs(tiny_captioner, capsys):
    assert main(["caption", "--quick", "--images", "1"]) == 0
    report = capsys.readouterr().out
    assert "core / recipe throughput" in report
    assert "every caption ran the full 15 new tokens" in report  # min_new_tokens pinned both sides' length
    assert "1/1 captions identical" in report.split("fp32 model vs the recipe")[1]


def test_zero_shot_benchmark_runs(tiny_clips, capsys):
    assert main(["zero-shot", "--quick", "--images", "1"]) == 0
    report = capsys.readouterr().out
    assert "core / pipeline throughput, labels cached" in report
    assert "1 misses, 1 hits (expected 1 of each)" in report  # new labels missed the text cache, the repeat hit
    assert "top-1 agree 1/1" in report.split("core fp32 vs the README recipe")[1]


def test_train_benchmark_runs(tiny_trainee, tmp_path, capsys):
    # Generated shapes stand in for the hymenoptera photos: 12 images, 3 classes, no shared data needed.
    shapes = write_shapes(tmp_path / "shapes", per_class=4)
    assert main(["train", "--quick", "--data", str(shapes), "--batch-size", "2", "--images", "8"]) == 0
    report = capsys.readouterr().out
    assert "finetune / Trainer training images/s" in report
    assert "head-only 10 epochs / one feature pass" in report
    trainer_row = next(line for line in report.splitlines() if line.startswith("(a) transformers.Trainer"))
    assert " fp32 " in trainer_row  # TrainingArguments' defaults: no mixed precision
    assert "over the first 2 steps" in report  # 1 warm-up + 1 timed step, both precisions


def test_train_benchmark_needs_its_photos(tmp_path, capsys):
    assert main(["train", "--quick", "--data", str(tmp_path / "missing")]) == 2
    assert "no training photos at" in capsys.readouterr().err


def test_the_offline_clip_tokenizer_matches_open_clip():
    import open_clip

    from bench.zero_shot import offline_clip_tokenizer

    prompts = ["a photo of a tabby cat.", "a photo of a Great White Shark, #3.", "électrique 123"]
    ours = offline_clip_tokenizer()(prompts)["input_ids"]
    theirs = open_clip.get_tokenizer("ViT-B-32")(prompts)
    assert ours == [row[row != 0].tolist() for row in theirs]


def test_images_must_be_positive(capsys):
    assert main(["caption", "--images", "0"]) == 2
    assert "--images must be at least 1" in capsys.readouterr().err


def test_load_benchmark_answers_every_request_and_refuses_the_server_folder(capsys):
    """`python -m bench load --quick`: the real app on 127.0.0.1, every request answered, the theft refused."""
    assert main(["load", "--quick", "--rounds", "3"]) == 0
    report = capsys.readouterr().out
    rounds = [line.split() for line in report.splitlines() if line[:1].isdigit()]
    assert [row[:3] for row in rounds] == [["1", "6/6", "0"], ["2", "6/6", "0"], ["3", "6/6", "0"]], report
    assert "memory: after round 3 the server holds" in report


def test_classroom_benchmark_runs(monkeypatch, capsys):
    """The classroom views' benchmark end to end on a tiny ViT in place of ViT-B/16: every contender timed, the
    ONNX file checked against PyTorch."""
    from conftest import save_tiny_model, tiny_config_kwargs
    from transformers import ViTConfig, ViTForImageClassification

    import bench.common

    def build_tiny_vit(folder, seed):
        save_tiny_model(ViTForImageClassification(ViTConfig(**tiny_config_kwargs())), folder)

    monkeypatch.setattr(bench.common, "build_random_vit", build_tiny_vit)
    assert main(["classroom", "--quick", "--images", "2"]) == 0
    report = capsys.readouterr().out
    for contender in ("classify", "explain", "walkthrough", "patch click", "redraw", "onnxruntime fp32"):
        assert contender in report
    assert "same top-1 as PyTorch on 100% of 2 photos" in report
