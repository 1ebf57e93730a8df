"""core.settings: one object for every launch-time choice, from app.py's flags or from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import settings as launch
from core.settings import ENVIRONMENT, Settings, configure, current_settings, from_environment


def test_an_empty_environment_gives_the_defaults():
    assert from_environment({}) == Settings()


def test_each_variable_reaches_its_setting():
    environ = {
        "VIT_STUDIO_DEVICE": "cpu",
        "VIT_STUDIO_PRECISION": "fp32",
        "VIT_STUDIO_TRUST_REMOTE_CODE": "1",
        "VIT_STUDIO_MODEL": " ./my_run ",
        "VIT_STUDIO_MODEL_CACHE": "5",
        "VIT_STUDIO_MAX_PIXELS": "1_000_000",
        "VIT_STUDIO_RUNS": "/data/runs",
        "VIT_STUDIO_MAX_DATA_BYTES": "1024",
        "VIT_STUDIO_KEEP_RUNS_HOURS": "0.5",
        "VIT_STUDIO_SHARED": "true",
        "VIT_STUDIO_ALLOW_SERVER_PATHS": "1",
    }
    read = from_environment(environ)
    assert (read.device, read.precision, read.trust_remote_code, read.default_model) == (
        "cpu",
        "fp32",
        True,
        "./my_run",
    )
    assert (read.model_cache_size, read.max_pixels, read.max_data_bytes) == (5, 1_000_000, 1024)
    assert read.runs_dir == Path("/data/runs") and read.keep_runs_hours == 0.5
    assert read.shared and read.allow_server_paths and not read.on_space


def test_a_space_is_shared_and_never_reads_server_paths():
    read = from_environment(
        {"SPACE_ID": "alice/vit-studio", "VIT_STUDIO_SHARED": "0", "VIT_STUDIO_ALLOW_SERVER_PATHS": "1"}
    )
    assert read.on_space and read.shared and not read.allow_server_paths


def test_a_number_that_is_not_one_names_the_variable():
    with pytest.raises(ValueError, match="VIT_STUDIO_RUNS_QUOTA_GB='ten' is not a number: set it to e.g. 10.0"):
        from_environment({"VIT_STUDIO_RUNS_QUOTA_GB": "ten"})


def test_every_setting_but_the_computed_one_has_a_variable():
    assert set(ENVIRONMENT) == {field for field in Settings.__dataclass_fields__} - {"model_folders"}


def test_unconfigured_settings_follow_the_environment_and_configure_fixes_them(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "a"))
    assert current_settings().runs_dir == tmp_path / "a"
    configure(device="cpu")  # the rest comes from the environment as it is now...
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "b"))
    assert current_settings().runs_dir == tmp_path / "a" and current_settings().device == "cpu"  # ...and stays
    configure(runs_dir=tmp_path / "c", shared=True)
    assert (current_settings().runs_dir, current_settings().shared, current_settings().device) == (
        tmp_path / "c",
        True,
        "cpu",
    )
    launch.use_settings(None)
    assert current_settings().runs_dir == tmp_path / "b"


def test_configure_refuses_what_it_does_not_know(monkeypatch):
    before = current_settings()
    with pytest.raises(TypeError):
        configure(devcie="cpu")  # type: ignore[call-arg] - a typo fails loudly
    with pytest.raises(ValueError, match="Unknown precision 'fp8'"):
        configure(precision="fp8")
    assert current_settings() == before


def test_the_engine_and_training_read_the_one_settings_object(tmp_path):
    from training import app_is_shared, disk_budget
    from training.runs import runs_root

    configure(runs_dir=tmp_path, shared=True)
    assert runs_root() == tmp_path and app_is_shared()
    assert disk_budget() is None  # not a Space
    launch.use_settings(launch.Settings(on_space=True, runs_quota_gb=1.5, keep_runs_hours=2))
    assert disk_budget().quota_bytes == int(1.5 * 1024**3) and disk_budget().keep_runs_s == 7200


def test_only_the_settings_read_vit_studios_variables():
    reads = re.compile(r"(environ\.get|getenv)\(\s*[\"']VIT_STUDIO_|environ\[[\"']VIT_STUDIO_")
    root = Path(__file__).resolve().parents[1]
    readers = sorted(
        str(path.relative_to(root))
        for path in [
            root / "app.py",
            *(path for folder in ("core", "training", "ui") for path in (root / folder).rglob("*.py")),
        ]
        if reads.search(path.read_text(encoding="utf-8"))
    )
    assert readers == [], readers  # core/settings.py reads them through ENVIRONMENT, by field


def test_a_precision_that_is_none_names_the_choices():
    with pytest.raises(ValueError, match="VIT_STUDIO_PRECISION='bf17' is not a precision: use one of auto, fp32"):
        from_environment({"VIT_STUDIO_PRECISION": "bf17"})
