"""Gradio's cache of result images, as the app sets it up: a picture being served is never rewritten in place."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from gradio import processing_utils
from PIL import Image

from ui.gradio_common import write_cache_images_atomically


def _reads_while_rewritten(save, image: Image.Image, cache_dir: Path, rewrites: int = 25) -> set[int]:
    """The sizes a reader sees of the cached file while `save` writes the same image again and again."""
    path = Path(save(image, str(cache_dir), format="png"))
    sizes: set[int] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            sizes.add(len(path.read_bytes()))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(rewrites):
        save(image, str(cache_dir), format="png")
    done.set()
    reader.join()
    return sizes


def test_a_cached_image_is_never_seen_half_written(tmp_path):
    """Visitors asking for the same picture at once: the second write must not truncate what the first serves."""
    noise = np.random.default_rng(0).integers(0, 256, size=(600, 600, 3), dtype=np.uint8)
    image = Image.fromarray(noise)  # noise does not compress: a file of about a megabyte takes a while to write
    write_cache_images_atomically()
    whole = len(processing_utils.encode_pil_to_bytes(image, "png"))
    assert _reads_while_rewritten(processing_utils.save_pil_to_cache, image, tmp_path) == {whole}
    assert not [path for path in tmp_path.rglob("*") if path.name.startswith(".writing-")]  # no leftovers
