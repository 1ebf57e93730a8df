"""app.py on a Space and off it: refused flags, serving limits, ZeroGPU wrapping, and the Streamlit command line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

import app
from ui.serving import ServingLimits, serving_limits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "alice/vit-studio")


@pytest.fixture
def off_a_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)


# ---- on a Space -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ui", ["gradio", "streamlit"])
def test_server_paths_are_refused_on_a_space(on_a_space, ui):
    with pytest.raises(SystemExit, match="--allow-server-paths would let any visitor read this Space's files"):
        app.main(["--allow-server-paths", "--ui", ui])


def test_a_space_listens_on_every_address(on_a_space):
    assert app.parse_args([]).host == "0.0.0.0"


def test_off_a_space_it_listens_on_this_machine_only(off_a_space):
    assert app.parse_args([]).host == "127.0.0.1"


@pytest.mark.parametrize(
    "flags, shared",
    [
        ([], False),
        (["--host", "127.0.0.1"], False),
        (["--host", "localhost"], False),
        (["--host", "::1"], False),
        (["--host", "0.0.0.0"], True),
        (["--host", "192.168.1.20"], True),
        (["--host", "classroom.local"], True),
        (["--share"], True),
    ],
)
def test_the_app_is_shared_when_others_can_reach_it(off_a_space, flags, shared):
    """A classroom server (--host 0.0.0.0) and a --share link are shared like a Space: runs are kept per visitor."""
    args = app.parse_args(flags)
    assert app.is_shared(args) is shared
    assert app.streamlit_env(args, {})["VIT_STUDIO_SHARED"] == ("1" if shared else "0")


def test_a_space_is_always_shared(on_a_space):
    assert app.is_shared(app.parse_args(["--host", "127.0.0.1"]))


def test_a_space_bounds_the_queue_and_the_uploads():
    limits = serving_limits(on_space=True)
    assert limits.queue_size == 20
    assert limits.max_file_size == 200 * 1024 * 1024


def test_your_own_machine_is_not_capped():
    # The Train tab's own 2 GB data cap applies there; a Gradio cap below it would refuse zips it accepts.
    assert serving_limits(on_space=False) == ServingLimits(queue_size=None, max_file_size=None)
    assert serving_limits(on_space=False).delete_cache() is None  # files stay until the app exits


def test_a_space_removes_visitors_files_after_six_hours(tiny_vit_dir):
    import gradio as gr

    from ui.gradio_app import build_demo

    delete_cache = serving_limits(on_space=True).delete_cache()
    assert delete_cache == (3600, 6 * 3600)
    assert ServingLimits(None, None, keep_files_s=60).delete_cache() == (60, 60)
    demo = build_demo(default_model=str(tiny_vit_dir), delete_cache=delete_cache)
    assert demo.delete_cache == delete_cache
    # What the hourly sweep does, with every file past its time: the example photos' cached copies stay.
    from gradio.route_utils import delete_files_created_by_app

    examples = [
        sample[0]["path"]
        for block in demo.blocks.values()
        if isinstance(block, gr.Dataset)
        for sample in block.samples
        if isinstance(sample[0], dict)
    ]
    assert len(examples) >= 4
    delete_files_created_by_app(demo, 0)
    assert all(Path(path).is_file() for path in examples)


def test_output_folders_older_than_an_hour_are_removed_as_new_ones_are_made(tmp_path):
    from ui.gradio_common import KEEP_OUTPUTS_S, output_folder

    old, recent = tmp_path / "old", tmp_path / "recent"
    for folder in (old, recent):
        folder.mkdir()
        (folder / "predictions.csv").write_text("file,label\n")
    an_hour_and_more_ago = time.time() - KEEP_OUTPUTS_S - 60
    os.utime(old, (an_hour_and_more_ago, an_hour_and_more_ago))
    made = output_folder(tmp_path)
    assert made.is_dir() and made.parent == tmp_path
    assert not old.exists() and (recent / "predictions.csv").exists()


def test_the_existing_flags_still_parse(off_a_space, tmp_path):
    args = app.parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "7999",
            "--share",
            "--precision",
            "fp32",
            "--device",
            "cpu",
            "--model",
            str(tmp_path),
            "--trust-remote-code",
            "--runs-dir",
            str(tmp_path),
            "--allow-server-paths",
        ]
    )
    assert (args.ui, args.host, args.port, args.share, args.precision, args.device) == (
        "gradio",
        "0.0.0.0",
        7999,
        True,
        "fp32",
        "cpu",
    )
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


def test_the_ui_calls_the_lent_engine_on_zero_gpu(tmp_path, tiny_vit_dir):
    """The real seam, in a fresh process: lend the GPU as run_gradio does, then call the engine through the names
    the front end imported."""
    (tmp_path / "spaces.py").write_text(
        textwrap.dedent("""
        CALLS = []
        def GPU(fn):
            def on_gpu(*args, **kwargs):
                CALLS.append(fn.__name__)
                return fn(*args, **kwargs)
            return on_gpu
    """)
    )
    script = textwrap.dedent("""
        import app, spaces
        from core.gpu import lend_gpu
        lend_gpu(app.zero_gpu_decorator())
        import ui.gradio_app
        import os
        from skimage import data
        ui.gradio_app.classify(data.chelsea(), os.environ["TINY_VIT"])
        print("calls:", spaces.CALLS)
    """)
    env = {
        **os.environ,
        "SPACES_ZERO_GPU": "true",
        "HF_HUB_OFFLINE": "1",
        "TINY_VIT": str(tiny_vit_dir),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, text=True, capture_output=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "calls: ['classify']"


# ---- Streamlit ----------------------------------------------------------------------------------------------


def test_streamlit_command_runs_the_streamlit_app_on_the_flags_address(off_a_space):
    args = app.parse_args(["--ui", "streamlit", "--host", "0.0.0.0", "--port", "8600"])
    command = app.streamlit_command(args)
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(command[4]) == ROOT / "ui" / "streamlit_app.py"
    options = dict(zip(command[5::2], command[6::2]))
    assert options == {
        "--server.port": "8600",
        "--server.address": "0.0.0.0",
        "--server.headless": "true",
        "--client.toolbarMode": "viewer",
        "--browser.gatherUsageStats": "false",
    }
    # Asked for in the environment: streamlit reads it there, and no flag overrides it.
    asked = app.streamlit_command(args, {"STREAMLIT_BROWSER_GATHER_USAGE_STATS": "true"})
    assert "--browser.gatherUsageStats" not in asked


def test_streamlit_env_carries_the_flags(off_a_space, tmp_path):
    args = app.parse_args(
        [
            "--ui",
            "streamlit",
            "--model",
            str(tmp_path),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--allow-server-paths",
            "--device",
            "cpu",
            "--precision",
            "fp32",
        ]
    )
    env = app.streamlit_env(args, {"PATH": "/usr/bin"})
    assert env["PATH"] == "/usr/bin"
    assert env["VIT_STUDIO_MODEL"] == str(tmp_path) and env["VIT_STUDIO_RUNS"] == str(tmp_path / "runs")
    assert env["VIT_STUDIO_ALLOW_SERVER_PATHS"] == "1"
    assert (env["VIT_STUDIO_DEVICE"], env["VIT_STUDIO_PRECISION"]) == ("cpu", "fp32")
    assert "VIT_STUDIO_TRUST_REMOTE_CODE" not in env


def test_streamlit_env_defaults_to_the_default_classifier_and_no_server_paths(off_a_space):
    from core.settings import DEFAULT_CLASSIFIER

    args = app.parse_args(["--ui", "streamlit"])
    # A variable left over in the shell must not open server paths: only the flag does.
    env = app.streamlit_env(args, {"VIT_STUDIO_ALLOW_SERVER_PATHS": "1", "VIT_STUDIO_TRUST_REMOTE_CODE": "1"})
    assert env["VIT_STUDIO_MODEL"] == DEFAULT_CLASSIFIER
    assert "VIT_STUDIO_ALLOW_SERVER_PATHS" not in env and "VIT_STUDIO_TRUST_REMOTE_CODE" not in env


def test_share_is_refused_with_streamlit(off_a_space):
    with pytest.raises(SystemExit, match="--share is a Gradio feature"):
        app.main(["--ui", "streamlit", "--share"])


def test_streamlit_runs_as_a_child_and_returns_its_exit_code(off_a_space, monkeypatch, tmp_path):
    streamlit_app = tmp_path / "streamlit_app.py"
    streamlit_app.write_text("")
    monkeypatch.setattr(app, "STREAMLIT_APP", streamlit_app)
    launched = {}

    class FakeStreamlit:
        def __init__(self, command, env):
            launched.update(command=command, env=env)

        def wait(self, timeout=None):
            return 3

    monkeypatch.setattr(app.subprocess, "Popen", FakeStreamlit)
    assert app.main(["--ui", "streamlit", "--port", "8601", "--model", "my/model"]) == 3
    assert launched["command"][4] == str(streamlit_app) and "8601" in launched["command"]
    assert launched["env"]["VIT_STUDIO_MODEL"] == "my/model"


def test_ctrl_c_waits_for_streamlit_to_close_instead_of_a_traceback(off_a_space, monkeypatch, tmp_path):
    streamlit_app = tmp_path / "streamlit_app.py"
    streamlit_app.write_text("")
    monkeypatch.setattr(app, "STREAMLIT_APP", streamlit_app)
    waits = []

    class InterruptedStreamlit:
        def __init__(self, command, env):
            pass

        def wait(self, timeout=None):
            waits.append(timeout)
            if len(waits) == 1:
                raise KeyboardInterrupt  # Ctrl-C in the terminal reaches app.py while it waits
            return 0  # streamlit got the same Ctrl-C and shut down cleanly

    monkeypatch.setattr(app.subprocess, "Popen", InterruptedStreamlit)
    assert app.main(["--ui", "streamlit"]) == 0
    assert waits == [None, 10]


def test_the_server_caps_mallocs_arenas_unless_the_user_chose(off_a_space, monkeypatch):
    """glibc's per-thread arenas let the server's memory creep under load (bench load); the app caps them."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's arenas are a Linux matter")
    assert app.limit_malloc_arenas({}) is True
    assert app.limit_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is False  # the user's own number stands
    args = app.parse_args(["--ui", "streamlit"])
    assert app.streamlit_env(args, {})["MALLOC_ARENA_MAX"] == str(app.MALLOC_ARENAS)
    assert app.streamlit_env(args, {"MALLOC_ARENA_MAX": "8"})["MALLOC_ARENA_MAX"] == "8"


# ---- settings ---------------------------------------------------------------------------------------------------


def test_the_environment_gives_the_flags_defaults_and_a_flag_wins(off_a_space, monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_STUDIO_DEVICE", "cpu")
    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tmp_path))
    monkeypatch.setenv("VIT_STUDIO_TRUST_REMOTE_CODE", "1")  # only the flag turns remote code on
    args = app.parse_args([])
    assert (args.device, args.model, args.trust_remote_code) == ("cpu", str(tmp_path), False)
    assert app.parse_args(["--device", "cuda:1"]).device == "cuda:1"


def test_an_unreadable_variable_stops_the_app_with_one_line(monkeypatch):
    monkeypatch.setenv("VIT_STUDIO_MAX_DATA_FILES", "lots")
    with pytest.raises(SystemExit, match="error: VIT_STUDIO_MAX_DATA_FILES='lots' is not a number"):
        app.main(["--port", "7999"])


def test_the_environment_can_make_the_app_shared_but_never_private(off_a_space, monkeypatch):
    monkeypatch.setenv("VIT_STUDIO_SHARED", "1")  # behind a reverse proxy, on loopback
    args = app.parse_args(["--host", "127.0.0.1"])
    assert app.is_shared(args) and app.streamlit_env(args, {})["VIT_STUDIO_SHARED"] == "1"
    monkeypatch.setenv("VIT_STUDIO_SHARED", "0")
    assert app.is_shared(app.parse_args(["--host", "0.0.0.0"]))
