"""`python app.py deploy`: assemble the Hugging Face Space (spaces.yaml as front matter, the app) and upload it."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from ui.serving import SPACE_LIMITS  # the limits app.py sets on a Space, so the page states the real ones

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = "spaces.yaml"
REQUIREMENTS_FILE = "requirements.txt"
PROJECT_README = "README.md"
# The project's own README travels with the Space under this name; the Space's README.md is the generated one.
GUIDE_FILE = "ABOUT.md"
# What the Space runs: the entry point, the engine, the training code, the Gradio front end and its pins.
# Tests, benchmarks, runs and the deploy tooling itself stay at home.
APP_PATHS = ("app.py", "core", "training", "ui", REQUIREMENTS_FILE)
# Byte code, the type stubs Gradio generates next to custom components (ui/components.pyi), editor litter.
SKIPPED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".DS_Store"})
SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo", ".pyi"})
# The keys without which the Hub cannot build or list the Space.
REQUIRED_KEYS = ("title", "sdk", "sdk_version", "app_file", "python_version", "short_description")
# A Space id as the Hub spells it: owner/name, letters, digits, '-', '_', '.', not starting or ending with - or .
_SPACE_ID = re.compile(r"[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?")
# Relative links and images in Markdown, e.g. ![The Classify tab](docs/classify.png).
_RELATIVE_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)\s#]+)")


class DeployError(Exception):
    """A deploy that cannot go ahead; the message says what to do, in one sentence."""


# ---- the Space's settings ----------------------------------------------------------------------------------


def load_settings(root: Path = ROOT) -> dict:
    """spaces.yaml, checked: the required keys are there and sdk_version is the gradio that requirements.txt pins."""
    settings = yaml.safe_load((root / SETTINGS_FILE).read_text(encoding="utf-8")) or {}
    missing = [key for key in REQUIRED_KEYS if not settings.get(key)]
    if missing:
        raise DeployError(
            f"{SETTINGS_FILE} lacks {', '.join(missing)}: add them (see the Spaces configuration "
            "reference, huggingface.co/docs/hub/spaces-config-reference)."
        )
    pinned = pinned_version((root / REQUIREMENTS_FILE).read_text(encoding="utf-8"), "gradio")
    if str(settings["sdk_version"]) != pinned:
        raise DeployError(
            f"{SETTINGS_FILE} says sdk_version {settings['sdk_version']} but {REQUIREMENTS_FILE} pins "
            f"gradio=={pinned}: make them the same, so the Space runs the gradio the app is tested on."
        )
    return settings


def pinned_version(requirements: str, package: str) -> str | None:
    """The version `package==X` pins in a requirements file, or None when it is not pinned exactly."""
    for line in requirements.splitlines():
        match = re.fullmatch(rf"\s*{re.escape(package)}\s*==\s*([^\s;#]+).*", line, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    return None


def front_matter(settings: dict) -> str:
    """The YAML block the Hub reads at the top of a Space's README.md."""
    body = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return f"---\n{body}---\n"


# ---- the Space's README ------------------------------------------------------------------------------------


def space_readme(settings: dict, project_readme: str) -> str:
    """Front matter, then what the app does (the project README's opening paragraph) and links to its sections,
    which travel with the Space as ABOUT.md."""

    sections = " · ".join(
        f"[{title}]({GUIDE_FILE}#{heading_anchor(title)})" for title in readme_sections(project_readme)
    )
    return (
        f"{front_matter(settings)}\n# {settings['title']}\n\n{opening_paragraph(project_readme)}\n\n"
        f"The full guide is in [{GUIDE_FILE}]({GUIDE_FILE}): {sections}.\n\n"
        f"On this Space an upload may be up to {SPACE_LIMITS.max_file_size // 2**20} MB a file, the Train tab "
        "reads zips and folders from your browser (never paths on the server), and when "
        f"{SPACE_LIMITS.queue_size} requests are already waiting, the next one is asked to try again later. "
        "To run it on your own machine, see *Install and run* in the guide.\n"
    )


def opening_paragraph(markdown: str) -> str:
    """The first paragraph of prose: after the title, before the first image or heading."""
    paragraph: list[str] = []
    for line in markdown.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "!", "<", "*", "|")):
            paragraph.append(line.strip())
        elif paragraph:
            break
    return " ".join(paragraph)


def readme_sections(markdown: str) -> list[str]:
    """The titles of the second-level sections, in order (code blocks skipped: a '## ' there is a comment)."""
    titles, in_code = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("## "):
            titles.append(line[3:].strip())
    return titles


def heading_anchor(title: str) -> str:
    """The id GitHub-style renderers (the Hub's included) give a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def linked_files(markdown: str, root: Path) -> list[str]:
    """The repository files a Markdown text links to (its screenshots), so the Space carries them too."""
    return sorted({link for link in _RELATIVE_LINK.findall(markdown) if (root / link).is_file()})


# ---- the folder ---------------------------------------------------------------------------------------------


def app_files(root: Path = ROOT) -> list[Path]:
    """The files the Space needs, relative to the project root, in a stable order."""
    files: list[Path] = []
    for entry in APP_PATHS:
        path = root / entry
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p.relative_to(root) for p in candidates if _shipped(p.relative_to(root))]
    return files


def _shipped(relative: Path) -> bool:
    return not (set(relative.parts) & SKIPPED_NAMES) and relative.suffix not in SKIPPED_SUFFIXES


def assemble_space(destination: Path, root: Path = ROOT) -> Path:
    """Write the Space into `destination` (new or empty): README.md, ABOUT.md, the app's files, the screenshots
    the guide shows. Returns the folder."""
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise DeployError(
            f"{destination} already exists and is not an empty folder: give a new or empty one, "
            "so no stale file ends up on the Space."
        )
    settings = load_settings(root)
    guide = (root / PROJECT_README).read_text(encoding="utf-8")
    relative_paths = app_files(root) + [Path(link) for link in linked_files(guide, root)]
    for relative in relative_paths:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    (destination / GUIDE_FILE).write_text(guide, encoding="utf-8")
    (destination / "README.md").write_text(space_readme(settings, guide), encoding="utf-8")
    return destination


# ---- the upload ---------------------------------------------------------------------------------------------


def check_space_id(space_id: str) -> str:
    space_id = space_id.strip()
    if not _SPACE_ID.fullmatch(space_id) or ".." in space_id or "--" in space_id:
        raise DeployError(
            f"'{space_id}' is not a Space id: give it as USER/NAME (or ORG/NAME), letters, digits, "
            "'-', '_' and '.', e.g. --space alice/vit-studio."
        )
    return space_id


def find_token(token_env: str) -> str:
    """The token from the named environment variable, else huggingface_hub's stored login. Never printed."""
    token = os.environ.get(token_env, "").strip()
    if not token:
        from huggingface_hub import get_token

        token = (get_token() or "").strip()
    if not token:
        raise DeployError(
            f"No Hugging Face token: set {token_env} to a token with write access "
            "(huggingface.co/settings/tokens), or log in once with `hf auth login`."
        )
    return token


def upload_space(folder: Path, space_id: str, token: str, private: bool = False) -> str:
    """Create the Space if it is new (a Gradio one) and upload the folder as one commit; returns its URL."""
    from huggingface_hub import HfApi

    from core import hub  # here, not at the top: assembling a Space (--dry-run) needs no torch

    if hub.offline():
        raise DeployError(
            "Offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), which forbids any "
            "upload: unset it, or use --dry-run DIR to assemble the Space without uploading."
        )
    endpoint = hub.endpoint()
    if not hub.reachable(endpoint, timeout_s=5.0, remember_s=0.0):
        raise DeployError(
            f"Cannot reach the Hugging Face Hub at {endpoint} (no network?): check the connection, "
            "or use --dry-run DIR to assemble the Space without uploading."
        )
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=space_id,
            repo_type="space",
            folder_path=folder,
            commit_message="Deploy ViT Studio with python app.py deploy",
        )
    except Exception as error:  # noqa: BLE001 - permission, name taken, network: one sentence, not a traceback
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise DeployError(
                f"Could not upload to the Space {space_id}: the Hub refused the token; it needs write "
                f"access to {space_id.split('/')[0]} (huggingface.co/settings/tokens)."
            ) from error
        raise DeployError(f"Could not upload to the Space {space_id}: {_first_line(error)}") from error
    return str(url)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ---- the command --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py deploy",
        description="Assemble ViT Studio as a Hugging Face Space (settings from spaces.yaml) and upload it.",
    )
    parser.add_argument("--space", required=True, metavar="USER/NAME", help="the Space to create or update")
    parser.add_argument(
        "--dry-run", metavar="DIR", type=Path, help="write the Space's files into DIR (new or empty) and upload nothing"
    )
    parser.add_argument(
        "--private", action="store_true", help="create the Space private (an existing one keeps its visibility)"
    )
    parser.add_argument(
        "--token-env",
        default="HF_TOKEN",
        metavar="NAME",
        help="environment variable holding the token (default HF_TOKEN; else your `hf auth login`)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        space_id = check_space_id(args.space)
        if args.dry_run:
            folder = assemble_space(args.dry_run)
            print(f"Wrote the Space {space_id} to {folder} ({_count_files(folder)} files); nothing was uploaded.")
            return 0
        token = find_token(args.token_env)
        with tempfile.TemporaryDirectory(prefix="vit-studio-space-") as staging:
            folder = assemble_space(Path(staging) / "space")
            file_count = _count_files(folder)
            url = upload_space(folder, space_id, token, private=args.private)
        print(f"Uploaded {file_count} files to {url}; the Space builds itself in a few minutes.")
        return 0
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


if __name__ == "__main__":
    sys.exit(main())
