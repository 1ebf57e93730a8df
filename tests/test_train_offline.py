"""What the Train tab offers to start from with and without the Hub, and the ONNX check's sentence."""

from __future__ import annotations

from pathlib import Path

from training import OnnxExport, RunSummary
from ui.shared.train_widgets import BASE_CHOICES, OFFLINE_BASE, default_base
from ui.shared.training import onnx_check_line, start_from_choices


def summary(name: str, status: str) -> RunSummary:
    return RunSummary(
        name=name,
        path=Path("/runs") / name,
        status=status,
        classes=("a", "b"),
        eval_accuracy=1.0,
        steps_done=4,
        total_steps=4,
        updated=0.0,
    )


def test_without_the_hub_local_runs_come_first_then_the_scratch_preset():
    runs = [summary("newer", "finished"), summary("stopped", "stopped"), summary("older", "finished")]
    offline = start_from_choices(runs, hub_available=False)
    assert offline[:3] == ["/runs/newer", "/runs/older", OFFLINE_BASE]
    assert set(offline) == {"/runs/newer", "/runs/older", *BASE_CHOICES} and len(offline) == len(set(offline))
    online = start_from_choices(runs)
    assert online[: len(BASE_CHOICES)] == list(BASE_CHOICES) and online[-2:] == ["/runs/newer", "/runs/older"]
    assert default_base(False) == OFFLINE_BASE == "vit-small-scratch" and default_base(True) == BASE_CHOICES[0]


def test_the_onnx_check_line():
    exported = OnnxExport(
        path=Path("/x/run.onnx"),
        images_checked=18,
        top1_agreement=17 / 18,
        max_abs_logit_diff=2.4e-5,
        checked_on="validation",
        size_bytes=3 * 1024**2,
        classes=("a", "b"),
        image_size=64,
    )
    assert onnx_check_line(exported) == (
        "Same top-1 as PyTorch on 17 of 18 validation images; largest logit difference 2e-05 (3 MB, input 64x64)."
    )
