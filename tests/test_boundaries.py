"""The architecture, checked: the layers import and say only what they should.

The engine imports no UI library and speaks no Markdown, ui/shared imports neither front end's library, and the
front ends use only the engine's public names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import core
import training

ROOT = Path(__file__).resolve().parents[1]
UI_LIBRARIES = ("gradio", "streamlit")
# Markdown a page would render: **bold**, `code`, [text](link), a leading '#' heading or '- ' bullet.
MARKDOWN = re.compile(r"\*\*\S|`[^`\s][^`]*`|\]\(\S+\)|^\s*#{1,6} |^\s*- ", re.MULTILINE)


def modules_loaded_by(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running `statement`."""
    script = f"import sys\n{statement}\nprint(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "statement",
    [
        "import core, core.attention, core.batch, core.caption, core.zero_shot, core.hub, core.gpu, core.settings",
        "import training, training.finetune, training.jobs, training.runs, training.review, training.__main__",
        "import ui.shared, ui.shared.texts, ui.serving, "
        + ", ".join(f"ui.shared.{path.stem}" for path in python_files("ui/shared") if path.stem != "__init__"),
    ],
)
def test_the_engine_and_the_shared_presentation_load_no_ui_library(statement):
    loaded = modules_loaded_by(statement)
    assert not loaded & set(UI_LIBRARIES), f"`{statement}` loaded {loaded & set(UI_LIBRARIES)}"


def string_constants(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module (f-strings' literal parts included), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


# A file format, not a page: the README.md a run takes to the Hub is Markdown by the Hub's definition.
MARKDOWN_FILES = ("training/model_card.py",)


def test_the_engine_returns_words_without_markdown():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in python_files("core", "training")
        if str(path.relative_to(ROOT)) not in MARKDOWN_FILES
        for line, text in string_constants(path)
        if MARKDOWN.search(text)
    ]
    assert not found, "Markdown belongs in ui/shared, not in the engine:\n" + "\n".join(found)


def engine_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) for each name a module imports from core or training."""
    imports = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in ("core", "training"):
                imports += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            imports += [
                (node.lineno, alias.name, "")
                for alias in node.names
                if alias.name.split(".")[0] in ("core", "training")
            ]
    return imports


def allowed(module: str, name: str) -> bool:
    package = {"core": core, "training": training}[module.split(".")[0]]
    if module == package.__name__:
        return name in package.__all__ or name == ""
    return module in package.FRONT_END_SUBMODULES


def test_the_front_ends_use_only_the_engines_public_names():
    stray = [
        f"{path.relative_to(ROOT)}:{line}: from {module} import {name}"
        for path in python_files("ui")
        for line, module, name in engine_imports(path)
        if not allowed(module, name)
    ]
    assert not stray, (
        "Export these from core/__init__.py or training/__init__.py (or list their submodule in "
        "FRONT_END_SUBMODULES):\n" + "\n".join(stray)
    )


def test_every_exported_name_exists():
    for package in (core, training):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert not missing, f"{package.__name__}.__all__ names what it lacks: {missing}"
        for module in package.FRONT_END_SUBMODULES:
            assert module.startswith(package.__name__ + "."), module
            __import__(module)
