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


def test_push_to_hub_without_a_token_is_refused_before_training(tmp_path):
    env_token = os.environ.pop("HF_TOKEN", None)
    try:
        result = run_cli("--train_file", str(tmp_path), "--output_dir", str(tmp_path / "run"), "--push_to_hub")
    finally:
        if env_token is not None:
            os.environ["HF_TOKEN"] = env_token
    assert result.returncode == 2 and "--hub_token or set HF_TOKEN" in result.stderr
    assert not (tmp_path / "run").exists()
    named = run_cli(
        "--train_file",
        str(tmp_path),
        "--output_dir",
        str(tmp_path / "run"),
        "--push_to_hub",
        "--hub_token",
        "hf_x",
        "--hub_model_id",
        "me/bad name",
    )
    assert named.returncode == 2 and "repository" in named.stderr.lower() and not (tmp_path / "run").exists()


def test_push_to_hub_uploads_the_captioner_with_a_rouge_model_card(tmp_path, monkeypatch, capsys):
    """The Hub cannot be reached here, so its two calls record what they were given instead (the upload is
    huggingface_hub's, tested there): the staging folder as it is at upload time is what the Hub would get."""
    from huggingface_hub import HfApi

    from training.__main__ import main

    uploaded: dict = {}

    def create_repo(self, repo_id, **options):
        uploaded["created"] = (repo_id, options.get("private"))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **options):
        folder = Path(folder_path)
        uploaded["files"] = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        uploaded["card"] = (folder / "README.md").read_text()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    images = write_captioned_shapes(tmp_path / "shapes", count=20)
    output_dir = tmp_path / "run"
    code = main(
        [
            "caption",
            "--train_file",
            str(images),
            "--output_dir",
            str(output_dir),
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--max_new_tokens",
            "8",
            "--push_to_hub",
            "--hub_model_id",
            "me/shapes-captioner",
            "--hub_private_repo",
        ]
    )
    assert code == 0
    assert "Pushed to https://huggingface.co/me/shapes-captioner" in capsys.readouterr().out
    assert uploaded["created"] == ("me/shapes-captioner", True)
    results = json.loads((output_dir / "all_results.json").read_text())
    assert f"| ROUGE-L | {results['eval_rougeL']:.2f} |" in uploaded["card"]
    assert {"model.safetensors", "config.json", "tokenizer.json", "predictions.jsonl", "README.md"} <= set(
        uploaded["files"]
    )
    assert not [name for name in uploaded["files"] if name.startswith(("checkpoint", "initial", "data"))]
    assert "split.json" not in uploaded["files"] and "hf_secret" not in uploaded["card"]
