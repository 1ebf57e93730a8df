"""`python app.py deploy`: the folder a dry run writes, spaces.yaml's settings, the upload's errors (no network)."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import gradio
import pytest
import yaml

from tools import deploy

ROOT = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "hf_not_a_real_token_0123456789"


def run_deploy(*args: str, env: dict[str, str] | None = None) -> SimpleNamespace:
    """`python app.py deploy ...` as a user runs it; offline mode (on for the whole suite) only when asked."""
    unset = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")
    environ = {key: value for key, value in os.environ.items() if key not in unset}
    process = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "deploy", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        env={**environ, **(env or {})},
    )
    return SimpleNamespace(returncode=process.returncode, stdout=process.stdout, stderr=process.stderr)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def split_front_matter(readme: str) -> tuple[dict, str]:
    match = re.match(r"---\n(.*?)\n---\n(.*)", readme, flags=re.DOTALL)
    assert match, "README.md must start with a --- YAML block ---"
    return yaml.safe_load(match.group(1)), match.group(2)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> SimpleNamespace:
    """One real dry run into a fresh folder."""
    folder = tmp_path_factory.mktemp("deploy") / "space"
    result = run_deploy("--space", "alice/vit-studio", "--dry-run", str(folder))
    settings, body = split_front_matter((folder / "README.md").read_text(encoding="utf-8"))
    files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    return SimpleNamespace(folder=folder, result=result, settings=settings, body=body, files=files)


# ---- the dry run's folder -----------------------------------------------------------------------------------


def test_dry_run_writes_the_space_and_says_nothing_was_uploaded(space):
    assert space.result.returncode == 0, space.result.stderr
    assert "nothing was uploaded" in space.result.stdout and str(space.folder) in space.result.stdout


def test_front_matter_has_what_the_hub_needs(space):
    for key in (
        "title",
        "emoji",
        "colorFrom",
        "colorTo",
        "sdk",
        "sdk_version",
        "app_file",
        "python_version",
        "suggested_hardware",
        "models",
        "preload_from_hub",
        "startup_duration_timeout",
        "short_description",
    ):
        assert space.settings.get(key), key
    assert space.settings["sdk"] == "gradio"
    assert space.settings["sdk_version"] == gradio.__version__  # the gradio the tests run on
    assert space.settings["python_version"] == "3.11"  # a string: unquoted 3.10 would have become 3.1


def test_front_matter_is_spaces_yaml(space):
    assert space.settings == yaml.safe_load((ROOT / "spaces.yaml").read_text(encoding="utf-8"))


def test_the_app_file_and_requirements_are_in_the_folder(space):
    assert (space.folder / space.settings["app_file"]).is_file()
    assert (space.folder / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    for package in ("core", "training", "ui"):
        assert f"{package}/__init__.py" in space.files
    assert "ui/gradio_app.py" in space.files


def test_nothing_but_the_app_is_shipped(space):
    for path in space.files:
        top = path.split("/")[0]
        assert top in (
            "README.md",
            "ABOUT.md",
            "SECURITY.md",
            "app.py",
            "requirements.txt",
            "core",
            "training",
            "ui",
            "docs",
        ), path
        assert "__pycache__" not in path and not path.endswith((".pyc", ".pyi")), path
    assert not any(path.startswith(("tests/", "bench/", "runs/", ".venv/", "test-artifacts/")) for path in space.files)


def test_every_relative_link_in_the_space_resolves(space):
    for page in ("README.md", "ABOUT.md"):
        for link in re.findall(r"\]\((?!https?://|#)([^)\s#]+)", (space.folder / page).read_text(encoding="utf-8")):
            assert (space.folder / link).exists(), f"{page} links to {link}, which is not in the Space"


def test_readme_links_each_section_of_the_guide(space):
    guide = (space.folder / "ABOUT.md").read_text(encoding="utf-8")
    assert guide == (ROOT / "README.md").read_text(encoding="utf-8")
    titles = deploy.readme_sections(guide)
    assert {"Install and run", "The Attention tab", "Flags"} <= set(titles)
    for title in titles:
        assert f"[{title}](ABOUT.md#{deploy.heading_anchor(title)})" in space.body
    assert "200 MB" in space.body  # the upload limit app.py sets on a Space


def test_dry_run_refuses_a_folder_with_files_in_it(tmp_path):
    (tmp_path / "old.txt").write_text("stale")
    result = run_deploy("--space", "alice/vit-studio", "--dry-run", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "not an empty folder" in result.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["old.txt"]


# ---- spaces.yaml ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> dict:
    return deploy.load_settings()


def test_sdk_version_is_the_pinned_and_installed_gradio(settings):
    requirements = (ROOT / "requirements.txt").read_text()
    assert settings["sdk_version"] == deploy.pinned_version(requirements, "gradio") == gradio.__version__


def test_models_are_the_app_defaults(settings):
    import open_clip

    from core.caption import DEFAULT_CAPTIONER
    from core.settings import DEFAULT_CLASSIFIER
    from core.zero_shot import DEFAULT_MODEL, DEFAULT_PRETRAINED

    clip_repo = open_clip.get_pretrained_cfg(DEFAULT_MODEL, DEFAULT_PRETRAINED)["hf_hub"].strip("/")
    assert settings["models"] == [DEFAULT_CLASSIFIER, DEFAULT_CAPTIONER, clip_repo]


def test_preloads_are_listed_models_in_the_hub_format(settings):
    for entry in settings["preload_from_hub"]:
        repo, *rest = entry.split()  # "repo", "repo file1,file2" or "repo file1,file2 commit"
        assert repo in settings["models"]
        assert len(rest) <= 2
        assert not rest or all(rest[0].split(","))
    # open_clip looks for this file first; without it, it falls back to a pickled checkpoint.
    assert any(entry.endswith("open_clip_model.safetensors") for entry in settings["preload_from_hub"])


def test_short_description_fits_the_card(settings):
    assert len(settings["short_description"]) <= 60


def test_a_drifted_sdk_version_is_refused(tmp_path):
    for name in ("spaces.yaml", "requirements.txt"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "requirements.txt").write_text("gradio==0.0.1\n")
    with pytest.raises(deploy.DeployError, match="pins gradio==0.0.1"):
        deploy.load_settings(tmp_path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("torch==2.14.1\ngradio==6.31.0\n", "6.31.0"),
        ("gradio == 6.31.0  # the UI\n", "6.31.0"),
        ("gradio_client==2.7.2\n", None),
        ("gradio>=6\n", None),
    ],
)
def test_pinned_version(text, expected):
    assert deploy.pinned_version(text, "gradio") == expected


# ---- the upload, without a network -----------------------------------------------------------------------------


def assert_one_line_error(result: SimpleNamespace, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert FAKE_TOKEN not in result.stdout + result.stderr


def test_no_network_gives_one_sentence():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run_deploy("--space", "alice/vit-studio", env={"HF_ENDPOINT": endpoint, "HF_TOKEN": FAKE_TOKEN})
    assert_one_line_error(result, "Cannot reach the Hugging Face Hub", endpoint, "--dry-run")


def test_offline_mode_is_named():
    result = run_deploy("--space", "alice/vit-studio", env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": FAKE_TOKEN})
    assert_one_line_error(result, "Offline mode is on", "HF_HUB_OFFLINE")


class RefusingHub(http.server.BaseHTTPRequestHandler):
    """A Hub that answers every request 401, as the real one does for a bad token."""

    def _refuse(self) -> None:
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def test_a_refused_token_gives_one_sentence_from_the_real_client():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        result = run_deploy("--space", "alice/vit-studio", env={"HF_ENDPOINT": endpoint, "HF_TOKEN": FAKE_TOKEN})
    finally:
        server.shutdown()
    assert_one_line_error(
        result, "Could not upload to the Space alice/vit-studio", "refused the token", "write access to alice"
    )


def test_a_missing_token_says_how_to_get_one(tmp_path):
    # An empty HF_HOME: no stored login to fall back on.
    result = run_deploy(
        "--space",
        "alice/vit-studio",
        "--token-env",
        "MY_HF_TOKEN",
        env={"HF_HOME": str(tmp_path), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"},
    )
    assert_one_line_error(result, "No Hugging Face token", "MY_HF_TOKEN", "hf auth login")


@pytest.mark.parametrize("space_id", ["vit-studio", "alice/vit studio", "alice/vit/studio", "-alice/x", "alice/x-"])
def test_a_bad_space_id_is_refused_before_anything_else(space_id, tmp_path):
    result = run_deploy(f"--space={space_id}", "--dry-run", str(tmp_path / "space"))
    assert_one_line_error(result, "is not a Space id", "USER/NAME")
    assert not (tmp_path / "space").exists()


def test_the_token_comes_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("MY_HF_TOKEN", f"  {FAKE_TOKEN}\n")
    assert deploy.find_token("MY_HF_TOKEN") == FAKE_TOKEN
