"""Example photos for the front ends: real photos that ship with scikit-image, written once to a cache folder."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .settings import current_settings

# (file stem, skimage.data function): photos a class can click through without uploading anything.
EXAMPLE_PHOTOS = (("chelsea", "chelsea"), ("astronaut", "astronaut"), ("coffee", "coffee"), ("rocket", "rocket"))


def cache_dir() -> Path:
    return current_settings().cache_dir


def example_images(directory: Path | None = None) -> list[Path]:
    """Paths of the example photos as JPEG files, writing them on first use."""
    from skimage import data

    directory = directory or cache_dir() / "examples"
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, loader in EXAMPLE_PHOTOS:
        path = directory / f"{stem}.jpg"
        if not path.exists():
            # Write to a temporary name first so a crash never leaves a half-written example.
            partial = path.with_suffix(".partial")
            Image.fromarray(getattr(data, loader)()).convert("RGB").save(partial, format="JPEG", quality=92)
            partial.replace(path)
        paths.append(path)
    return paths
