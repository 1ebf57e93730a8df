"""app.py on a Space and off it: refused flags, serving limits and ZeroGPU wrapping."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "alice/vit-studio")


@pytest.fixture
def off_a_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)


# ---- on a Space -----------------------------------------------------------------------------------------------


def test_server_paths_are_refused_on_a_space(on_a_space):
    with pytest.raises(SystemExit, match="--allow-server-paths would let any visitor read this Space's files"):
        app.main(["--allow-server-paths"])


def test_a_space_listens_on_every_address(on_a_space):
    assert app.parse_args([]).host == "0.0.0.0"


def test_off_a_space_it_listens_on_this_machine_only(off_a_space):
    assert app.parse_args([]).host == "127.0.0.1"


def test_a_space_bounds_the_queue_and_the_uploads():
    limits = app.serving_limits(space=True)
    assert limits.queue_size == 20
    assert limits.max_file_size == 200 * 1024 * 1024


def test_your_own_machine_is_not_capped():
    # The Train tab's own 2 GB data cap applies there; a Gradio cap below it would refuse zips it accepts.
    assert app.serving_limits(space=False) == app.ServingLimits(queue_size=None, max_file_size=None)


def test_the_existing_flags_still_parse(off_a_space, tmp_path):
    args = app.parse_args(["--host", "0.0.0.0", "--port", "7999", "--share", "--precision", "fp32", "--device", "cpu",
                           "--model", str(tmp_path), "--trust-remote-code", "--runs-dir", str(tmp_path),
                           "--allow-server-paths"])
    assert (args.host, args.port, args.share, args.precision, args.device) == ("0.0.0.0", 7999, True, "fp32", "cpu")
    assert args.model == str(tmp_path) and args.runs_dir == str(tmp_path)
    assert args.trust_remote_code and args.allow_server_paths


# ---- ZeroGPU ------------------------------------------------------------------------------------------------


def test_no_gpu_wrapping_off_zero_gpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=lambda fn: fn))
    assert app.zero_gpu_decorator() is None


def test_zero_gpu_without_the_spaces_package_runs_on_the_cpu(monkeypatch, caplog):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail
    assert app.zero_gpu_decorator() is None
    assert "spaces package is missing" in caplog.text


def test_zero_gpu_uses_spaces_gpu(monkeypatch):
    def gpu(fn):
        return fn

    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    assert app.zero_gpu_decorator() is gpu


def test_wrap_entry_points_replaces_each_listed_function(monkeypatch):
    engine = types.ModuleType("fake_engine")
    engine.classify = lambda image: f"classified {image}"
    engine.helper = lambda: "untouched"
    monkeypatch.setitem(sys.modules, "fake_engine", engine)

    def on_gpu(fn):
        return lambda *args: "gpu: " + fn(*args)

    assert app.wrap_entry_points(on_gpu, {"fake_engine": ("classify",)}) == ["fake_engine.classify"]
    assert engine.classify("cat.jpg") == "gpu: classified cat.jpg"
    assert engine.helper() == "untouched"


def test_every_gpu_entry_point_exists():
    import importlib

    for module_name, names in app.GPU_ENTRY_POINTS.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert callable(getattr(module, name)), f"{module_name}.{name}"


def test_the_ui_calls_the_wrapped_engine_on_zero_gpu(tmp_path):
    """The real seam, in a fresh process: wrap first (as run_gradio does), then import the front end."""
    (tmp_path / "spaces.py").write_text(textwrap.dedent("""
        def GPU(fn):
            def on_gpu(*args, **kwargs):
                return fn(*args, **kwargs)
            on_gpu.on_gpu = True
            return on_gpu
    """))
    script = textwrap.dedent("""
        import app
        app.wrap_entry_points(app.zero_gpu_decorator())
        import sys
        import core, training.review, ui.caption_tab, ui.gradio_app, ui.train_tab, ui.zero_shot_tab
        zero_shot_module = sys.modules["core.zero_shot"]  # core.zero_shot itself is the function
        looked_up = {  # where the front end finds each engine call, at import or (core.*) at call time
            "gradio_app": [ui.gradio_app.classify, ui.gradio_app.classify_files, ui.gradio_app.explain,
                           ui.gradio_app.features],
            "review": [training.review.classify, core.explain],
            "caption_tab": [ui.caption_tab.caption, ui.caption_tab.caption_attention, ui.caption_tab.caption_files],
            "zero_shot_tab": [ui.zero_shot_tab.zero_shot, ui.zero_shot_tab.zero_shot_map,
                              zero_shot_module.template_scores],
        }
        missed = [f"{where}.{fn.__name__}" for where, fns in looked_up.items() for fn in fns
                  if not getattr(fn, "on_gpu", False)]
        print("missed:", missed)
    """)
    env = {**os.environ, "SPACES_ZERO_GPU": "true", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, text=True, capture_output=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "missed: []"
