"""The one place that knows the Hugging Face Hub: offline mode, whether it can be reached, and its errors by type."""

from __future__ import annotations

import os
import socket
import time
from enum import Enum
from urllib.parse import urlparse

from huggingface_hub import errors as hub_errors
from huggingface_hub import try_to_load_from_cache

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "ON", "YES", "TRUE")  # what huggingface_hub counts as set


class HubFailure(Enum):
    """Why a load that went to the Hub failed, as huggingface_hub's exception types say it."""

    NOT_CACHED = "not in the local cache, and the Hub could not be asked (offline, or no network)"
    GATED = "a gated repository: its terms must be accepted, logged in"
    NO_SUCH_REPO = "no such repository (or a private one)"
    NO_SUCH_REVISION = "no such branch, tag or commit"
    NO_SUCH_FILE = "the repository lacks a file the loader needs"
    HTTP = "the Hub answered with an error"


# Most specific first: GatedRepoError is a RepositoryNotFoundError, LocalEntryNotFoundError an EntryNotFoundError.
_FAILURES: tuple[tuple[type[BaseException], HubFailure], ...] = (
    (hub_errors.LocalEntryNotFoundError, HubFailure.NOT_CACHED),
    (hub_errors.OfflineModeIsEnabled, HubFailure.NOT_CACHED),
    (hub_errors.GatedRepoError, HubFailure.GATED),
    (hub_errors.RepositoryNotFoundError, HubFailure.NO_SUCH_REPO),
    (hub_errors.RevisionNotFoundError, HubFailure.NO_SUCH_REVISION),
    (hub_errors.EntryNotFoundError, HubFailure.NO_SUCH_FILE),
    (hub_errors.HfHubHTTPError, HubFailure.HTTP),
)


def offline() -> bool:
    """Whether offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), read now: huggingface_hub reads it
    once, when it is imported, but a test or a notebook may set it later."""
    return any(os.environ.get(name, "").strip().upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    """The Hub's address: HF_ENDPOINT (a mirror, or a private Hub) or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


_reachability: dict[str, tuple[float, bool]] = {}  # endpoint -> (when checked, reachable)


def reachable(address: str | None = None, *, timeout_s: float = 3.0, remember_s: float = 30.0) -> bool:
    """A quick TCP connect to the Hub (remembered for a while), so no network gets its answer at once instead of
    after the client's retries."""
    address = address or endpoint()
    checked_at, answer = _reachability.get(address, (0.0, False))
    if time.monotonic() - checked_at < remember_s:
        return answer
    parsed = urlparse(address)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        answer = True
    except OSError:
        answer = False
    _reachability[address] = (time.monotonic(), answer)
    return answer


def hub_available(*, timeout_s: float = 3.0) -> bool:
    """Whether models can come from the Hub now: offline mode is off and the Hub answers. The front ends ask once
    at start, so a class without wifi is told at the top and starts from what is on the machine."""
    return not offline() and reachable(timeout_s=timeout_s)


def in_local_cache(repo_id: str, filename: str = "config.json") -> bool:
    """Whether a Hub repository's file was downloaded before (the HF cache), so it loads with no network."""
    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except (hub_errors.HFValidationError, ValueError):  # not a repo id at all
        return False


def forget_reachability() -> None:
    """Ask again on the next check (for tests that point HF_ENDPOINT elsewhere)."""
    _reachability.clear()


def hub_failure(error: BaseException | None) -> HubFailure | None:
    """What went wrong with the Hub, from the huggingface_hub exception types in the error's chain (transformers
    and open_clip raise their own errors from them); None when the Hub was not the problem."""
    for link in _chain(error):
        for error_type, failure in _FAILURES:
            if isinstance(link, error_type):
                return failure
    return None


def repository_message(failure: HubFailure | None, name: str, instead: str) -> str | None:
    """The sentence for a repository the Hub will not give (gated, missing or private), ending with what to use
    `instead`; None for any other failure."""
    if failure is HubFailure.GATED:
        return (
            f"'{name}' is gated on the Hugging Face Hub: accept its terms on its page and log in with "
            f"hf auth login, or use {instead}."
        )
    if failure is HubFailure.NO_SUCH_REPO:
        return f"There is no '{name}' on the Hugging Face Hub (or it is private). Check the id, or use {instead}."
    return None


def _chain(error: BaseException | None) -> list[BaseException]:
    links: list[BaseException] = []
    while error is not None and error not in links:
        links.append(error)
        error = error.__cause__ or error.__context__
    return links
