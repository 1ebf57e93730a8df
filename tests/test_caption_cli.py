"""`python -m training caption ...` as a real subprocess on a tiny generated captioned set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.caption_examples import write_captioned_shapes

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "training", "caption", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caption-cli")
    images = write_captioned_shapes(folder / "shapes", count=30)
    output_dir = folder / "run"
    result = run_cli(
        "--train_file",
        str(images),
        "--image_column",
        "file_name",
        "--caption_column",
        "text",
        "--output_dir",
        str(output_dir),
        "--config_name",
        "vit-gpt2-scratch",
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--predict_with_generate",
        "--num_train_epochs",
        "2",
        "--per_device_train_batch_size",
        "9",
        "--per_device_eval_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
        "--warmup_ratio",
        "0.1",
        "--max_target_length",
        "16",
        "--num_beams",
        "2",
        "--logging_steps",
        "1",
        "--seed",
        "3",
        "--precision",
        "fp32",
    )
    return output_dir, result


def test_the_caption_command_trains_and_writes_the_results(cli_run):
    output_dir, result = cli_run
    assert result.returncode == 0, result.stderr
    assert "Training a captioner (full) on 27 images (3 for validation)" in result.stdout
    assert "epoch 2: eval_loss" in result.stdout and "rougeL" in result.stdout
    results = json.loads((output_dir / "all_results.json").read_text())
    for key in ("eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_loss", "train_loss", "train_runtime"):
        assert isinstance(results[key], float), key
    for key in ("eval_rouge1", "eval_rouge2", "eval_rougeL"):
        assert 0.0 <= results[key] <= 100.0
    assert results["eval_loss"] > 0 and results["train_loss"] > 0 and results["train_runtime"] > 0
    rows = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert {"image", "reference", "generated"} <= set(row)
        assert Path(row["image"]).is_file() and row["reference"] and isinstance(row["generated"], str)
    assert (output_dir / "events.jsonl").is_file() and (output_dir / "checkpoint").is_dir()


def test_bad_settings_are_an_error_line_not_a_traceback(tmp_path):
    result = run_cli(
        "--train_file",
        str(tmp_path),
        "--output_dir",
        str(tmp_path / "run"),
        "--mode",
        "frozen_encoder",
        "--label_smoothing",
        "1.5",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: The label smoothing must be") and "Traceback" not in result.stderr


def test_push_to_hub_says_it_is_not_supported_here_yet(tmp_path):
    result = run_cli("--train_file", str(tmp_path), "--output_dir", str(tmp_path / "run"), "--push_to_hub")
    assert result.returncode == 2 and "not supported" in result.stderr
