"""core.hub: offline mode, reachability, and the Hub's answers told apart by huggingface_hub's exception types.

A small HTTP server on this machine stands in for the Hub and answers as the Hub does (status code and
X-Error-Code header); transformers and huggingface_hub run unchanged against it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import hub
from core.hub import HubFailure, hub_failure
from core.models import ModelLoadError, load_classifier

# The answers the Hub gives, by repository name: (HTTP status, X-Error-Code).
ANSWERS = {
    "nobody/missing-vit": (404, "RepoNotFound"),
    "somebody/gated-vit": (403, "GatedRepo"),
}


class FakeHub(BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._answer()

    def do_GET(self):  # noqa: N802
        self._answer()

    def _answer(self):
        repo = next((name for name in ANSWERS if f"/{name}/" in self.path or self.path.endswith(name)), None)
        status, code = ANSWERS.get(repo, (404, "RepoNotFound"))
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", "answered by the test's hub")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", address)
    # huggingface_hub reads both when it is imported; the suite imported it offline, so set what it read.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", address)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", address + "/{repo_id}/resolve/{revision}/{filename}")
    hub.forget_reachability()
    yield address
    server.shutdown()
    hub.forget_reachability()


def test_a_missing_repository_is_told_by_its_type(fake_hub):
    with pytest.raises(ModelLoadError) as caught:
        load_classifier("nobody/missing-vit")
    assert hub_failure(caught.value) is HubFailure.NO_SUCH_REPO
    assert "There is no 'nobody/missing-vit' on the Hugging Face Hub (or it is private)" in str(caught.value)


def test_a_gated_repository_says_how_to_get_in(fake_hub):
    with pytest.raises(ModelLoadError) as caught:
        load_classifier("somebody/gated-vit")
    assert hub_failure(caught.value) is HubFailure.GATED
    assert "gated" in str(caught.value) and "hf auth login" in str(caught.value)


def test_a_gated_clip_on_the_hub_says_how_to_get_in_too(fake_hub):
    from core.zero_shot import load_clip

    with pytest.raises(ModelLoadError) as caught:
        load_clip("hf-hub:somebody/gated-vit")
    assert hub_failure(caught.value) is HubFailure.GATED
    assert "'somebody/gated-vit' is gated" in str(caught.value) and "local-dir:" in str(caught.value)


def test_offline_and_not_cached_is_told_by_its_type(monkeypatch):
    from transformers import AutoConfig

    with pytest.raises(OSError) as caught:  # the suite runs offline: transformers' own error, from the Hub client's
        AutoConfig.from_pretrained("vit-studio-tests/never-downloaded", local_files_only=True)
    assert hub_failure(caught.value) is HubFailure.NOT_CACHED
    assert hub_failure(ValueError("model.safetensors does not appear to have a file")) is None  # words alone: no


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("0", False), ("", False)])
def test_offline_mode_is_read_when_asked(monkeypatch, value, expected):
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline() is expected


def test_reachability_is_checked_once_then_remembered(fake_hub, monkeypatch, closed_address):
    assert hub.reachable()
    closed = closed_address
    assert not hub.reachable(closed)
    monkeypatch.setenv("HF_ENDPOINT", closed)
    assert hub.endpoint() == closed and not hub.reachable()
    assert hub.reachable(fake_hub)  # remembered for each address apart
