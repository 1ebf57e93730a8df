"""ui/shared: what both front ends show, built from the engine's data, with no UI library imported."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from core import RunInfo
from ui.shared import widgets
from ui.shared.status import last_run_line, run_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "run, line",
    [
        (
            RunInfo("google/vit-base-patch16-224", "cpu", "bfloat16", 12.4),
            "`google/vit-base-patch16-224` on cpu, bfloat16, 12 ms",
        ),
        (RunInfo("/runs/cats/model", "cuda:1", "float16", 1234.5), "`/runs/cats/model` on cuda, float16, 1234 ms"),
    ],
)
def test_the_status_line_says_which_model_ran_where_in_which_precision_and_how_long(run, line):
    assert run_line(run) == line


def test_the_last_reported_run_gives_the_line_and_no_report_gives_none():
    runs = [RunInfo("a", "cpu", "float32", 1.0), RunInfo("b", "mps", "float16", 2.0)]
    assert last_run_line(runs) == "`b` on mps, float16, 2 ms"
    assert last_run_line([]) == ""


def test_the_status_line_from_a_real_run(tiny_vit_dir, chelsea):
    from core import classify

    runs: list[RunInfo] = []
    classify(chelsea, model=str(tiny_vit_dir), precision="fp32", device="cpu", on_run=runs.append)
    assert run_line(runs[0]).startswith(f"`{tiny_vit_dir.resolve()}` on cpu, float32, ")


def test_every_slider_starts_inside_its_range_and_keeps_one_number_type():
    sliders = [value for value in vars(widgets).values() if isinstance(value, widgets.Slider)]
    assert len(sliders) == 14  # every slider of Classify, Attention, Caption and Zero-shot
    for slider in sliders:
        numbers = [getattr(slider, field.name) for field in fields(slider) if field.name not in ("label", "info")]
        assert slider.minimum <= slider.default <= slider.maximum and slider.step > 0, slider
        # Streamlit refuses a slider whose bounds, value and step mix int and float.
        assert len({type(number) for number in numbers}) == 1, slider


def test_the_front_ends_import_only_what_core_exports():
    import core

    for path in sorted((ROOT / "ui").rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("from core.") or line.startswith("import core."):
                module = line.split()[1]
                assert module in core.FRONT_END_SUBMODULES, f"{path.relative_to(ROOT)}: {line}"
