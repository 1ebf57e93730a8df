"""The real app in a subprocess on a free port, started once for the end-to-end tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app.py did not answer at {url} within {timeout_s} s:\n{log_path.read_text()}")


@pytest.fixture(scope="session")
def app_runs_dir(tmp_path_factory) -> Path:
    """Where the app under test keeps its training runs."""
    return tmp_path_factory.mktemp("app-runs")


@pytest.fixture(scope="session")
def app_url(tiny_vit_dir, app_runs_dir, tmp_path_factory) -> str:
    """URL of `python app.py --model <tiny ViT>`, run as a user would, with the Hub switched off."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("app")
    log_path = workdir / "app.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VIT_STUDIO_CACHE": str(workdir / "cache"),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--model", str(tiny_vit_dir), "--port", str(port),
             "--runs-dir", str(app_runs_dir)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def captioner_dir(tmp_path_factory) -> Path:
    from tiny_captioners import save_tiny_vit_gpt2

    return save_tiny_vit_gpt2(tmp_path_factory.mktemp("e2e-vit-gpt2"))


@pytest.fixture(scope="session")
def blip_dir(tmp_path_factory) -> Path:
    from tiny_captioners import save_tiny_blip

    return save_tiny_blip(tmp_path_factory.mktemp("e2e-blip"))


@pytest.fixture(scope="session")
def shapes_zip(tmp_path_factory) -> Path:
    """A zip of an easy generated image folder (three shapes), as a user uploads one to the Train tab."""
    from training.examples import write_shapes_zip

    return write_shapes_zip(tmp_path_factory.mktemp("shapes"))
