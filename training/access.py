"""Which runs a visitor may see and change: runs are named, never pathed, and a shared app keeps each visitor's own."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.settings import current_settings

from .checkpoints import RUN_CONFIG
from .runs import EVENTS_LOG, RunSummary, list_runs, runs_root

# Beside a run a visitor started on a shared app: a hash of their id, so the folder never holds the secret itself.
OWNER_FILE = "owner.sha256"
# On a shared app a visitor's run name ends in this many random hex digits: another visitor can neither list the
# run nor guess its folder to type it into a model box (16^10 names is beyond any rate of requests).
PRIVATE_SUFFIX_HEX = 10


@dataclass(frozen=True)
class Visitor:
    """Who is asking. `id` is a secret their browser keeps (None when nobody else can reach the app); `shared`
    says whether others can: a Space, a --share link, or a server listening beyond this machine."""

    id: str | None
    shared: bool

    @property
    def owner_key(self) -> str | None:
        return hashlib.sha256(self.id.encode()).hexdigest() if self.id else None


LOCAL_USER = Visitor(id=None, shared=False)


def app_is_shared() -> bool:
    """Whether people other than the machine's user can reach the app: app.py's flags say so (or VIT_STUDIO_SHARED),
    and a Hugging Face Space always is."""
    return current_settings().shared


def visitor(visitor_id: str | None, shared: bool | None = None) -> Visitor:
    """The Visitor for a front end's browser id, on this app (shared or not, unless told)."""
    return Visitor(id=visitor_id or None, shared=app_is_shared() if shared is None else shared)


def new_visitor_id() -> str:
    return secrets.token_urlsafe(24)


def kept_or_new_visitor_id(kept: object) -> str:
    """The id a browser kept from an earlier visit, when it is one of ours; else a new one."""
    return kept if isinstance(kept, str) and len(kept) >= 16 else new_visitor_id()


class VisitorSessions:
    """Which visitor each page session belongs to, remembered here as well as in the page's own state: Gradio
    drops a session's state when newer sessions push it out, and a visitor must not lose their runs for that.
    An entry is a few hundred bytes, so many more are kept than Gradio keeps sessions."""

    def __init__(self, capacity: int = 20_000):
        self._capacity = capacity
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, session: str, visitor_id: str) -> None:
        with self._lock:
            self._ids[session] = visitor_id
            self._ids.move_to_end(session)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)

    def visitor_id(self, session: str | None) -> str | None:
        with self._lock:
            return self._ids.get(session) if session else None


SESSIONS = VisitorSessions()


def session_visitor(visitor_id: str | None, session: str | None) -> Visitor:
    """Who is asking from a page session: the id its page loaded with (or remembered for the session), or, for an
    API client, which loads no page, the session itself."""
    visitor_id = visitor_id or SESSIONS.visitor_id(session) or (f"session-{session}" if session else None)
    return visitor(visitor_id)


def private_run_name(name: str | None, asking: Visitor) -> str | None:
    """The name a new run gets: on a shared app a random suffix makes it unguessable (see PRIVATE_SUFFIX_HEX)."""
    if not asking.shared:
        return name
    return f"{(name or '').strip() or 'run'}-{secrets.token_hex(PRIVATE_SUFFIX_HEX // 2)}"


def claim_run(folder: Path, asking: Visitor) -> None:
    """Mark a run as this visitor's, on a shared app; elsewhere runs belong to the machine's user."""
    if asking.shared and asking.owner_key:
        (Path(folder) / OWNER_FILE).write_text(asking.owner_key + "\n")


def run_owner_key(folder: Path) -> str | None:
    """The owner's hash, or None for a run nobody claimed: one made on the app's own machine (an example run)."""
    try:
        return (Path(folder) / OWNER_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        return "unreadable"  # belongs to nobody who asks


def may_see(folder: Path, asking: Visitor) -> bool:
    """Everyone sees every run of an app nobody else reaches; on a shared app, their own runs and example runs."""
    if not asking.shared:
        return True
    owner = run_owner_key(folder)
    return owner is None or (asking.owner_key is not None and owner == asking.owner_key)


def may_change(folder: Path, asking: Visitor) -> bool:
    """Resuming writes into a run: on a shared app only into one's own (example runs are for everyone to look at)."""
    if not asking.shared:
        return True
    return asking.owner_key is not None and run_owner_key(folder) == asking.owner_key


def visible_runs(asking: Visitor, root: Path | None = None, running: Sequence[Path] = ()) -> list[RunSummary]:
    """list_runs, less the runs this visitor may not see."""
    return [summary for summary in list_runs(root, running) if may_see(summary.path, asking)]


def find_run(
    name: str | os.PathLike | None, asking: Visitor, *, root: Path | None = None, change: bool = False
) -> Path:
    """The folder of the run called `name` in the runs folder, if this visitor may see it (and change it, with
    `change`). A run's full path is accepted when it lies in the runs folder. Anything else, whether it exists or
    not, gets the same message: the answer must not tell a visitor what is on the server."""
    root = Path(root or runs_root())
    if not name or not str(name).strip():
        raise ValueError("Pick a run in the list first.")
    folder = _run_folder(str(name).strip(), root)
    if folder is None or not may_see(folder, asking):
        raise ValueError(f"There is no run called '{_shown_name(name)}' here: pick one from the list of runs.")
    if change and not may_change(folder, asking):
        raise ValueError(
            f"The run '{folder.name}' is an example run: look at it, use it or download it, and "
            "train a run of your own to resume."
        )
    return folder


def _run_folder(name: str, root: Path) -> Path | None:
    """root/name when `name` names one folder inside root (or is the path of one) holding a run."""
    try:
        resolved_root = root.resolve()
        candidate = Path(name)
        if candidate.is_absolute() or len(candidate.parts) > 1:
            if candidate.resolve().parent != resolved_root:
                return None
            candidate = Path(candidate.name)
        if candidate.name in ("", ".", "..") or len(candidate.parts) != 1:
            return None
        folder = root / candidate.name
        # A symlink in the runs folder must not lead out of it.
        if folder.resolve().parent != resolved_root or not folder.is_dir():
            return None
        return folder if (folder / EVENTS_LOG).is_file() or (folder / RUN_CONFIG).is_file() else None
    except (OSError, ValueError, RuntimeError):  # names the OS cannot take (NUL bytes, too long, loops)
        return None


def _shown_name(name: str | os.PathLike) -> str:
    """The last part of what was typed, short: enough to recognise, nothing more of a path echoed back."""
    return Path(str(name).strip()).name[:80] or str(name)[:80]


def shared_model_folders(default_model: str, root: Path | None = None) -> tuple[str, ...]:
    """The folders a shared app may load models from by path (core.models.configure(model_folders=...)): the
    default model's own folder when it is one, and the runs folder. Hub ids are not paths and stay open."""
    folders = [str(Path(root or runs_root()).resolve())]
    default = Path(default_model).expanduser()
    if default.is_dir():
        folders.append(str(default.resolve()))
    return tuple(folders)
