"""An easy generated image-folder data set (coloured shapes on noisy backgrounds) that a tiny ViT learns quickly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"circle": (220, 40, 40), "square": (40, 80, 220), "triangle": (40, 180, 60)}


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


def write_shapes(folder: Path, per_class: int = 40, seed: int = 0) -> Path:
    """folder/<shape>/<n>.png, per_class images of each shape."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            draw_shape(shape, rng).save(folder / shape / f"{index:03d}.png")
    return folder


def write_shapes_zip(folder: Path, per_class: int = 24) -> Path:
    """folder/shapes.zip holding shapes/<shape>/<n>.png, as a user zips an image folder to upload it."""
    import shutil

    images = write_shapes(folder / "shapes", per_class=per_class)
    return Path(shutil.make_archive(str(images), "zip", root_dir=folder, base_dir=images.name))
