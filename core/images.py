"""Turn whatever a user hands us (path, bytes, array, PIL image, zip) into checked RGB PIL images."""
from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes, bytearray]

# A setting, not a law: VIT_STUDIO_MAX_PIXELS overrides it for people with huge scans.
MAX_PIXELS = int(os.environ.get("VIT_STUDIO_MAX_PIXELS", 50_000_000))

# Zip limits guard against zip bombs and accidental uploads of a whole photo library.
MAX_ZIP_FILES = 10_000
MAX_ZIP_BYTES = 2 * 1024**3

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)

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
    label = name or _describe(source)
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _array_to_image(source, label)
    elif isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
        image = _open(io.BytesIO(source), label, max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"{label} is a folder, not an image file.")
        if not path.is_file():
            raise ImageError(f"{label}: no such file.")
        if path.stat().st_size == 0:
            raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
        image = _open(path, label, max_pixels)
    else:
        raise ImageError(
            f"Cannot read an image from a {type(source).__name__}: "
            "pass a PIL image, a numpy array, a file path or bytes."
        )
    try:
        _check_size(image, label, max_pixels)
        return to_rgb(_decode(image, label))
    finally:
        if image is not source and isinstance(image, ImageFile.ImageFile):
            image.close()  # the file we opened: PIL keeps animated, refused and damaged ones open otherwise


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


def read_zip_images(
    zip_source: str | os.PathLike | bytes,
    max_files: int = MAX_ZIP_FILES,
    max_total_bytes: int = MAX_ZIP_BYTES,
) -> list[tuple[str, bytes]]:
    """The image entries of a zip as (name, bytes), after checking it is safe to unpack.

    Hidden files and macOS resource forks are skipped; entries that are not images by suffix too.
    """
    label = "the uploaded zip" if isinstance(zip_source, (bytes, bytearray)) else Path(zip_source).name
    opened = io.BytesIO(zip_source) if isinstance(zip_source, (bytes, bytearray)) else zip_source
    try:
        archive = zipfile.ZipFile(opened)
    except (zipfile.BadZipFile, OSError) as error:
        raise ImageError(f"{label} is not a readable zip file ({error}).") from None
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        if len(entries) > max_files:
            raise ImageError(f"{label} holds {len(entries)} files; the limit is {max_files}.")
        total = sum(info.file_size for info in entries)
        if total > max_total_bytes:
            raise ImageError(
                f"{label} unpacks to {total / 1e9:.1f} GB; the limit is {max_total_bytes / 1e9:.1f} GB."
            )
        images = []
        for info in entries:
            _check_zip_entry_name(info.filename, label)
            if is_hidden(info.filename) or Path(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                images.append((info.filename, archive.read(info)))
            except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, OSError) as error:
                # Damaged (bad CRC), encrypted or oddly compressed entries: name the entry, keep the message short.
                raise ImageError(f"{label}: the entry '{info.filename}' cannot be unpacked ({error}).") from None
    if not images:
        raise ImageError(f"{label} holds no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return images


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


def is_unsafe_zip_name(entry_name: str) -> bool:
    """True for an archive entry name that could land outside the folder it is unpacked into.

    Absolute paths, drive letters and '..' anywhere; backslashes count as separators because Windows tools
    (PowerShell's Compress-Archive) write them.
    """
    parts = entry_name.replace("\\", "/").split("/")
    return (
        Path(entry_name).is_absolute()
        or entry_name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", entry_name) is not None
        or ".." in parts
    )


def is_hidden(relative_name: str) -> bool:
    """True for dot-files, __MACOSX resource forks and notebook checkpoints anywhere in the path."""
    parts = Path(relative_name).parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _check_zip_entry_name(entry_name: str, label: str) -> None:
    if is_unsafe_zip_name(entry_name):
        raise ImageError(f"{label} has an unsafe entry '{entry_name}' (absolute path or '..'); refusing it.")


def _open(fp: io.BytesIO | Path, label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own megapixel limit (checked next, before decoding) speaks for PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as error:
        # PIL refuses far-oversized headers itself (over ~179 MP) before we can read the size.
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{_megapixels(int(claimed.group(1)))} megapixels" if claimed else "too large"
        raise ImageTooLargeError(
            f"{label} is {size}; the limit is {_megapixels(min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS))} "
            "megapixels. Downscale it first."
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
            f"{label} is {width}x{height} = {_megapixels(width * height)} megapixels; "
            f"the limit is {_megapixels(max_pixels)} megapixels. Downscale it first."
        )


def _megapixels(pixels: int) -> str:
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
