"""`python -m core classify ...`: run as a real subprocess against a tiny local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from core import classify
from core.__main__ import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def start_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "core", "classify", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> SimpleNamespace:
    stdout, stderr = process.communicate(timeout=180)
    return SimpleNamespace(returncode=process.returncode, stdout=stdout, stderr=stderr)


@pytest.fixture(scope="module")
def cli(tiny_vit_dir, photo_path, photos, tmp_path_factory) -> SimpleNamespace:
    """Two real CLI runs, started together (each mostly waits on importing torch): JSON, and text with a missing
    file."""
    folder = tmp_path_factory.mktemp("cli")
    astronaut = folder / "astronaut.jpg"
    Image.fromarray(photos["astronaut"]).save(astronaut)
    missing = folder / "missing.jpg"
    model = ["--model", str(tiny_vit_dir), "--top-k", "2", "--precision", "fp32"]
    running = {
        "json": start_cli(str(photo_path), str(astronaut), *model, "--json"),
        "text_missing": start_cli(str(photo_path), str(missing), *model),
    }
    runs = {name: finish(process) for name, process in running.items()}
    return SimpleNamespace(photo=photo_path, astronaut=astronaut, missing=missing, model=model, **runs)


def json_rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_json_mode_prints_one_object_per_image(cli, tiny_labels):
    assert cli.json.returncode == 0, cli.json.stderr
    rows = json_rows(cli.json.stdout)
    assert [row["name"] for row in rows] == [cli.photo.name, cli.astronaut.name]
    for row in rows:
        assert set(row) == {"name", "predictions", "error"}
        assert row["error"] is None
        assert len(row["predictions"]) == 2
        for prediction in row["predictions"]:
            assert set(prediction) == {"label", "score"}
            assert prediction["label"] in tiny_labels and 0.0 <= prediction["score"] <= 1.0
        assert row["predictions"][0]["score"] >= row["predictions"][1]["score"]


def test_json_predictions_match_classify_in_this_process(cli, tiny_vit_dir):
    rows = json_rows(cli.json.stdout)
    for row, path in zip(rows, [cli.photo, cli.astronaut]):
        expected = classify(path, model=str(tiny_vit_dir), top_k=2, precision="fp32")
        assert [p["label"] for p in row["predictions"]] == [p.label for p in expected]
        assert [p["score"] for p in row["predictions"]] == pytest.approx([p.score for p in expected], abs=1e-5)


def test_missing_image_gives_exit_code_1_and_an_error_row(cli, capsys, restore_settings):
    # the same command line as the subprocess runs, in this process (the model is cached by now)
    assert main(["classify", str(cli.photo), str(cli.missing), *cli.model, "--json"]) == 1
    good, bad = json_rows(capsys.readouterr().out)
    assert good["name"] == cli.photo.name and good["error"] is None and len(good["predictions"]) == 2
    assert bad["name"] == cli.missing.name and bad["predictions"] == []
    assert "missing.jpg" in bad["error"] and "no such file" in bad["error"]


def test_text_mode_prints_one_line_per_image_and_exits_1_for_a_missing_one(cli, tiny_vit_dir):
    assert cli.text_missing.returncode == 1, cli.text_missing.stderr
    good, bad = cli.text_missing.stdout.splitlines()
    expected = classify(cli.photo, model=str(tiny_vit_dir), top_k=2, precision="fp32")
    assert good == f"{cli.photo.name}: " + ", ".join(f"{p.label} {p.score:.3f}" for p in expected)
    assert bad.startswith(f"{cli.missing.name}: error: ") and "no such file" in bad


def test_cli_says_what_it_loads_on_stderr_not_stdout(cli, tiny_vit_dir):
    assert "Loading" in cli.json.stderr and str(tiny_vit_dir.resolve()) in cli.json.stderr
    assert "Loading" not in cli.json.stdout


@pytest.mark.parametrize("flag", ["--top-k", "--batch-size"])
def test_a_zero_count_exits_2_with_a_message(photo_path, tiny_vit_dir, capsys, restore_settings, flag):
    assert main(["classify", str(photo_path), "--model", str(tiny_vit_dir), flag, "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {flag[2:].replace('-', '_')} must be")


def test_unknown_model_folder_exits_2_naming_it(photo_path, tmp_path, capsys, restore_settings):
    missing_model = str(tmp_path / "no-model-here")
    assert main(["classify", str(photo_path), "--model", missing_model]) == 2
    assert missing_model in capsys.readouterr().err
