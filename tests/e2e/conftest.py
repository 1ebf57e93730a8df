"""The real app in a subprocess on a free port, started once for the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


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


@contextmanager
def running_app(
    arguments: list[str], workdir: Path, health_path: str = "", extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """`python app.py <arguments>` on a free port, as a user starts it, with the Hub switched off; yields its URL."""
    port = _free_port()
    log_path = workdir / "app.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VIT_STUDIO_CACHE": str(workdir / "cache"),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the app's own default, as a user gets it
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *arguments, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url + health_path, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def app_url(tiny_vit_dir, app_runs_dir, tmp_path_factory) -> Iterator[str]:
    """URL of `python app.py --model <tiny ViT>`: the Gradio app."""
    with running_app(
        ["--model", str(tiny_vit_dir), "--runs-dir", str(app_runs_dir)], tmp_path_factory.mktemp("app"), health_path=""
    ) as url:
        yield url


@pytest.fixture(scope="session")
def streamlit_url(tiny_vit_dir, tmp_path_factory) -> Iterator[str]:
    """URL of `python app.py --ui streamlit --model <tiny ViT>`; up once Streamlit's own health check answers."""
    workdir = tmp_path_factory.mktemp("streamlit-app")
    with running_app(
        ["--ui", "streamlit", "--model", str(tiny_vit_dir), "--runs-dir", str(workdir / "runs")],
        workdir,
        health_path="_stcore/health",
    ) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); .ci/run does.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def open_page(browser, width: int, height: int):
    """A fresh page that records uncaught errors and console errors: a test ends by asserting there were none."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on(
        "console", lambda message: page.errors.append(f"console: {message.text}") if message.type == "error" else None
    )
    return context, page


@pytest.fixture
def page(browser):
    context, page = open_page(browser, 1280, 1000)
    yield page
    context.close()


@pytest.fixture
def phone_page(browser):
    """A page the size of a phone held upright (390 x 844 CSS pixels)."""
    context, page = open_page(browser, 390, 844)
    yield page
    context.close()


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
