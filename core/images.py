"""Turn one input a user hands us (path, bytes, array, PIL image, or a source that unpacks itself, such as a zip
entry from core.zips) into a checked RGB PIL image."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO, Protocol, Union, runtime_checkable

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .settings import current_settings


@runtime_checkable
class LoadsItself(Protocol):
    """A source that reaches its own bytes, such as one entry of an open zip (core.zips.ZipImage): load_image hands
    it the pixel limit and the caller's name for it, and it decodes them with decode_stream."""

    def load_image(self, max_pixels: int | None = None, *, label: str | None = None) -> Image.Image: ...


ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes, bytearray, LoadsItself]

# A setting, not a law: VIT_STUDIO_MAX_PIXELS overrides it for people with huge scans.
MAX_PIXELS = current_settings().max_pixels

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"})

# PIL refuses images over twice its own limit before anyone can read their size; where a user raised our
# limit above that, raise PIL's with it, so our check (made before decoding) is the one that speaks.
if Image.MAX_IMAGE_PIXELS is not None and MAX_PIXELS > Image.MAX_IMAGE_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Never silently pad a truncated file with grey: a half image is a bad input.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An input that is not a usable image; the message names it and says what is wrong."""


class ImageTooLargeError(ImageError):
    """A readable image over the megapixel limit: not damaged, just too big to decode safely."""


def load_image(source: ImageInput, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Read one image from any supported source and return it as a decoded RGB PIL image."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, LoadsItself):
        return source.load_image(max_pixels, label=name)
    label = name or _describe(source)
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
        return decode_stream(io.BytesIO(source), label, max_pixels=max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"{label} is a folder, not an image file.")
        if not path.is_file():
            raise ImageError(f"{label}: no such file.")
        if path.stat().st_size == 0:
            raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
        return decode_stream(path, label, max_pixels=max_pixels)
    if isinstance(source, Image.Image):
        return _checked_rgb(source, label, max_pixels)
    if isinstance(source, np.ndarray):
        return _checked_rgb(_array_to_image(source, label), label, max_pixels)
    raise ImageError(
        f"Cannot read an image from a {type(source).__name__}: pass a PIL image, a numpy array, a file path or bytes."
    )


def decode_stream(stream: BinaryIO | Path, label: str, *, max_pixels: int | None = None) -> Image.Image:
    """Decode the image in an open binary stream (or a file, which PIL opens and closes) as load_image does: its
    size checked before a pixel is decoded, then its first frame decoded, EXIF-rotated and made RGB. Anything
    else raises ImageError naming `label`."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    image = _open(stream, label, max_pixels)
    try:
        return _checked_rgb(image, label, max_pixels)
    finally:
        image.close()  # PIL keeps animated, refused and damaged files open otherwise


def _checked_rgb(image: Image.Image, label: str, max_pixels: int) -> Image.Image:
    _check_size(image, label, max_pixels)
    return to_rgb(_decode(image, label))


def load_images(sources: ImageInput | list[ImageInput], max_pixels: int | None = None) -> list[Image.Image]:
    """load_image over a list; a single source gives a list of one."""
    items = sources if isinstance(sources, (list, tuple)) else [sources]
    if len(items) == 0:
        raise ImageError("No images given: pass at least one image.")
    return [load_image(item, max_pixels=max_pixels) for item in items]


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparent pixels become white, as a viewer shows them."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit scans: PIL's own convert clips everything above 255 to white, so scale instead.
        # Mode "I" is 32-bit and may hold 8-bit values (some PNG/TIFF writers), so only there look at the range.
        levels = np.asarray(image, dtype=np.float64)
        wide = image.mode != "I" or levels.max(initial=0) > 255
        scale = 65535.0 if wide else 255.0
        grey = np.clip(levels / scale * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(image, dtype=np.float64))).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def verify_image_file(
    path: str | os.PathLike, name: str | None = None, max_pixels: int | None = None
) -> tuple[int, int]:
    """Check that a file decodes as an image, cheaper than load_image; return its (width, height).

    Raises the ImageError load_image would raise. JPEGs decode at 1/8 scale: that still reads every byte of
    the stream, so truncation and corruption show, at a fraction of the cost of full-size pixels.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    path = Path(path)
    label = name or _describe(path)
    if not path.is_file():
        raise ImageError(f"{label}: no such file.")
    if path.stat().st_size == 0:
        raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
    image = _open(path, label, max_pixels)
    try:
        _check_size(image, label, max_pixels)
        size = image.size
        if image.format == "JPEG":
            image.draft(None, (1, 1))
        _decode(image, label)
        return size
    finally:
        image.close()


def is_hidden(relative_name: str) -> bool:
    """True for dot-files, __MACOSX resource forks and notebook checkpoints anywhere in the path."""
    parts = Path(relative_name).parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _open(fp: BinaryIO | Path, label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own megapixel limit (checked next, before decoding) speaks for PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as error:
        # PIL refuses far-oversized headers itself (over ~179 MP) before we can read the size.
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{megapixels(int(claimed.group(1)))} megapixels" if claimed else "too large"
        pil_limit = Image.MAX_IMAGE_PIXELS  # PIL refuses past twice its limit, which may be below ours
        limit = max_pixels if pil_limit is None else min(max_pixels, 2 * pil_limit)
        raise ImageTooLargeError(
            f"{label} is {size}; the limit is {megapixels(limit)} megapixels. Downscale it first."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image file that can be read (JPEG, PNG, GIF, WebP, BMP, TIFF).") from None
    except OSError as error:
        raise ImageError(f"{label} could not be read: {error}.") from None


def _check_size(image: Image.Image, label: str, max_pixels: int) -> None:
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageError(f"{label} is empty ({width}x{height} pixels).")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label} is {width}x{height} = {megapixels(width * height)} megapixels; "
            f"the limit is {megapixels(max_pixels)} megapixels. Downscale it first."
        )


def megapixels(pixels: int) -> str:
    """A pixel count as megapixels for a message: "50" for 50,000,000."""
    # Whole numbers for photo sizes; small limits (tests, VIT_STUDIO_MAX_PIXELS) must not print as "0".
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _decode(image: Image.Image, label: str) -> Image.Image:
    """Fully decode the first frame, with EXIF orientation applied."""
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        return ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError) as error:
        # PIL reports truncated or corrupt data as OSError (and occasionally SyntaxError).
        raise ImageError(f"{label} is damaged or truncated and cannot be decoded ({error}).") from None


def _array_to_image(array: np.ndarray, label: str) -> Image.Image:
    if array.size == 0:
        raise ImageError(f"{label} is empty (shape {array.shape}).")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"{label} has shape {array.shape}; expected (height, width), (height, width, 3) or (height, width, 4)."
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = (array.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError(f"{label} contains NaN or infinite values.")
        # Floats in [0, 1] are the skimage convention; anything wider is treated as 0..255.
        array = array * 255.0 if array.min() >= 0 and array.max() <= 1 else array
        array = np.clip(array, 0, 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    span = high - low or 1.0
    return ((values - low) / span * 255.0).round().astype(np.uint8)


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{Path(source).name}'"
    if isinstance(source, (bytes, bytearray)):
        return "The uploaded data"
    if isinstance(source, np.ndarray):
        return "The image array"
    return "The image"
