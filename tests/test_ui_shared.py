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


# ---- training and zero-shot, as both front ends show them ------------------------------------------------------


def _events(mode: str = "full"):
    from training import Evaluated, Started, Step

    started = Started(9, ("ants", "bees"), 7, 7, 3, mode, "cpu", "fp32")
    steps = [Step(1, step, 1.0 / step, 1e-3, 10925.4, 5.0) for step in (1, 2, 3)]
    evaluated = Evaluated(1, 3, 0.5, 5 / 7, (5 / 7, 1.0), ((5, 2), (0, 7)))
    return [started, *steps, evaluated]


def test_per_class_accuracy_reads_as_a_percentage():
    from ui.shared.training import per_class_rows

    *_, evaluated = _events()
    assert per_class_rows(evaluated, ("ants", "bees")) == [["ants", "71%", 5, 7], ["bees", "100%", 7, 7]]


def test_head_only_progress_leaves_out_the_speed_of_a_linear_layer():
    from ui.shared.training import describe_progress

    assert "images/s" not in describe_progress(_events("head"), True)
    assert "10925.4 images/s" in describe_progress(_events("full"), True)


def test_a_resumed_run_shows_its_earlier_curve_and_prepares_until_its_new_start(tmp_path):
    from training import Started, Step, Stopped
    from ui.shared.training import run_view

    earlier = [*_events(), Stopped(str(tmp_path), 3)]
    view = run_view(earlier, True, folder=tmp_path)  # resumed, its new Started not here yet
    assert view.progress == "Preparing the data and loading the model ..."
    assert list(view.figure.axes[0].lines[0].get_xdata()) == [1, 2, 3]
    resumed = [*earlier, Started(9, ("ants", "bees"), 7, 7, 3, "full", "cpu", "fp32", start_step=3)]
    resumed.append(Step(2, 4, 0.2, 1e-3, 12.0, 3.0))
    view = run_view(resumed, True, folder=tmp_path)
    assert view.progress.startswith("Training (full, cpu, fp32): step 4/9")
    assert list(view.figure.axes[0].lines[0].get_xdata()) == [1, 2, 3, 4]


def test_the_counts_chart_has_a_key_for_each_side_of_the_split():
    from ui.shared import train_widgets

    assert set(train_widgets.SPLIT_COLORS) == {"train", "val"}
    assert "training" in train_widgets.COUNTS_KEY and "validation" in train_widgets.COUNTS_KEY


def test_the_template_box_is_editable_only_for_one_template():
    from ui.shared.texts import SINGLE_TEMPLATE, TEMPLATE_CHOICES
    from ui.shared.zero_shot import template_box_editable

    assert template_box_editable(SINGLE_TEMPLATE)
    assert not any(template_box_editable(mode) for _, mode in TEMPLATE_CHOICES if mode != SINGLE_TEMPLATE)


def test_the_inside_tab_warns_only_about_weights_it_cannot_recognise(tmp_path, tiny_vit_dir):
    from ui.shared.inside import RANDOM_WEIGHTS_NOTE, weights_note

    assert weights_note("facebook/dinov2-small") == ""  # a Hub id: what people publish is trained
    assert weights_note(str(tiny_vit_dir)) == RANDOM_WEIGHTS_NOTE  # a folder of random weights
    run = tmp_path / "runs" / "ants"
    run.mkdir(parents=True)
    (run / "all_results.json").write_text("{}")
    assert weights_note(str(run)) == ""  # trained here
    snapshot = tmp_path / "hub" / "models--facebook--vit-mae-base" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert weights_note(str(snapshot)) == ""  # a downloaded Hub model
