"""An example data set for the Train tab (coloured shapes, generated, so it needs no download) and its zip."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from core.examples import cache_dir

SHAPES = ("circle", "square", "triangle")
COLOURS = {"circle": (220, 40, 40), "square": (40, 80, 220), "triangle": (40, 180, 60)}
EXAMPLE_DATA_NAME = "shapes.zip"
# Enough that the automatic 85/15 split leaves 18 validation images; the scratch preset's own image side.
EXAMPLE_PER_CLASS = 40
EXAMPLE_SIDE = 64


def draw_shape(shape: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """One shape of its class colour at a random place and scale, on a random grey noise background."""
    background = rng.integers(60, 200, size=(size, size, 1)) + rng.integers(-20, 20, size=(size, size, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(value) for value in rng.integers(radius, size - radius, size=2))
    colour = tuple(int(c + rng.integers(-25, 25)) for c in COLOURS[shape])
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=colour)
    return image


def write_shapes(folder: Path, per_class: int = 40, seed: int = 0, size: int = 48) -> Path:
    """folder/<shape>/<n>.png, per_class images of each shape; the same images for the same seed."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            draw_shape(shape, rng, size).save(folder / shape / f"{index:03d}.png")
    return folder


def write_shapes_zip(folder: Path, per_class: int = 24, size: int = 48) -> Path:
    """folder/shapes.zip holding shapes/<shape>/<n>.png, as a user zips an image folder to upload it."""
    images = write_shapes(folder / "shapes", per_class=per_class, size=size)
    return Path(shutil.make_archive(str(images), "zip", root_dir=folder, base_dir=images.name))


def example_data_zip(directory: Path | None = None) -> Path:
    """The example data set as a zip of class folders, written on first use."""
    return cached_zip(
        directory,
        EXAMPLE_DATA_NAME,
        lambda staging: write_shapes_zip(staging, per_class=EXAMPLE_PER_CLASS, size=EXAMPLE_SIDE),
    )


def cached_zip(directory: Path | None, name: str, write: Callable[[Path], Path]) -> Path:
    """directory/name (default directory: the cache's examples/), made by `write(staging folder)` on first use."""
    directory = directory or cache_dir() / "examples"
    path = directory / name
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    # Built in a temporary folder and moved in whole, so a crash or a second process never leaves half a zip.
    with tempfile.TemporaryDirectory(dir=directory, prefix=f".{Path(name).stem}-") as staging:
        write(Path(staging)).replace(path)
    return path
