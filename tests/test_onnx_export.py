"""training.export_onnx on a tiny run trained here: one ONNX file that onnxruntime runs with PyTorch's answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training import OnnxExport, export_onnx
from training.examples import write_shapes
from training.finetune import FinetuneConfig, finetune


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny ViT trained from scratch for two epochs on generated shapes (about a second on a CPU)."""
    from transformers import ViTConfig

    root = tmp_path_factory.mktemp("onnx-run")
    ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    ).save_pretrained(root / "config")
    config = FinetuneConfig(
        train_dir=write_shapes(root / "shapes", per_class=12),
        output_dir=root / "run",
        model_name_or_path=None,
        config_name=str(root / "config"),
        num_train_epochs=2,
        learning_rate=1e-3,
        augment=False,
        seed=0,
    )
    list(finetune(config))
    return root / "run"


def test_the_export_gives_pytorchs_top1_on_the_validation_images(tiny_run, tmp_path):
    import onnxruntime

    exported = export_onnx(tiny_run, tmp_path / "shapes.onnx")
    assert isinstance(exported, OnnxExport)
    validation = json.loads((tiny_run / "split.json").read_text())["val"]
    assert exported.checked_on == "validation" and exported.images_checked == len(validation) > 0
    assert exported.top1_agreement == 1.0
    assert exported.max_abs_logit_diff < 1e-3
    assert exported.classes == ("circle", "square", "triangle") and exported.image_size == 32
    assert exported.path == tmp_path / "shapes.onnx" and exported.size_bytes == exported.path.stat().st_size
    assert not list(tmp_path.glob("*.data")), "the weights must be inside the one file"
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    # A batch size the export never saw: the batch axis is dynamic.
    logits = session.run(None, {"pixel_values": np.zeros((5, 3, 32, 32), np.float32)})[0]
    assert logits.shape == (5, 3)


def test_a_run_without_its_validation_images_is_checked_on_the_images_given(tiny_run, tmp_path, photos):
    copy = shutil.copytree(tiny_run, tmp_path / "trimmed", ignore=shutil.ignore_patterns("data", "*.onnx"))
    split = json.loads((copy / "split.json").read_text())
    split["val"] = [[str(tmp_path / "gone.png"), 0]]
    (copy / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError, match="no longer holds its validation images"):
        export_onnx(copy)
    exported = export_onnx(copy, images=list(photos.values())[:3])
    assert exported.checked_on == "given" and exported.images_checked == 3 and exported.top1_agreement == 1.0
    assert exported.path == copy / "model.onnx"


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a trained run"):
        export_onnx(tmp_path)
    with pytest.raises(ValueError, match="not a trained run"):
        export_onnx(tmp_path / "missing")
