"""app.py on a Space and off it: refused flags and serving limits."""
from __future__ import annotations

import pytest

import app


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
