"""Turn whatever a user hands us (path, bytes, array, PIL image, zip) into checked RGB PIL images."""
from __future__ import annotations

import bisect
import io
import os
import re
import struct
import tempfile
import warnings
import zipfile
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes, bytearray, "ZipImage"]

# A setting, not a law: VIT_STUDIO_MAX_PIXELS overrides it for people with huge scans.
MAX_PIXELS = int(os.environ.get("VIT_STUDIO_MAX_PIXELS", 50_000_000))

# Zip limits guard against zip bombs and accidental uploads of a whole photo library.
MAX_ZIP_FILES = 10_000
MAX_ZIP_BYTES = 2 * 1024**3
# The most one image entry of a zip may unpack to. The biggest file a legitimate image at the pixel limit makes is
# an uncompressed 16-bit RGBA (or CMYK) TIFF: 8 bytes a pixel, the widest pixel PIL decodes (PPM, BMP and 16-bit PNG
# need at most that too). 64 MiB on top leaves room for EXIF, ICC profiles, XMP and embedded previews. Anything
# bigger is no image we would decode, so it is refused before (or while) it unpacks, however small its header says.
MAX_ZIP_ENTRY_BYTES = 8 * MAX_PIXELS + 64 * 1024**2
# Reads from a zip entry stay this small: zipfile's read() with no size asks the decompressor for up to 2 GB at once.
ZIP_READ_BYTES = 1024 * 1024
# LZMA turns each read of compressed bytes (zipfile reads at least 4 KiB) into at most ~30 MB; read it in 4 KiB.
_LZMA_READ_BYTES = 4096
# Entries up to this size are unpacked in memory, bigger ones into a temporary file, until they are decoded.
_IN_MEMORY_ENTRY_BYTES = 32 * 1024**2

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


class ZipEntryTooLargeError(ImageTooLargeError):
    """A zip entry that unpacks to more than an image may (MAX_ZIP_ENTRY_BYTES), whatever its header declares."""


@dataclass(frozen=True)
class ZipImage:
    """One image entry of an open zip, unpacked only when load_image decodes it, so a zip of thousands of photos
    never sits in memory at once. The archive must stay open until then."""

    archive: zipfile.ZipFile
    info: zipfile.ZipInfo
    name: str  # as the user knows it, e.g. "photos.zip/cats/1.jpg"


def load_image(source: ImageInput, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Read one image from any supported source and return it as a decoded RGB PIL image."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    label = name or _describe(source)
    if isinstance(source, ZipImage):
        return _load_zip_entry(source, label, max_pixels)
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


def _load_zip_entry(entry: ZipImage, label: str, max_pixels: int) -> Image.Image:
    """Unpack one zip entry (at most MAX_ZIP_ENTRY_BYTES, in bounded reads) and decode it; an entry too large,
    damaged, encrypted or not an image raises ImageError naming it."""
    with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY_ENTRY_BYTES) as unpacked:
        try:
            for chunk in zip_entry_chunks(entry.archive, entry.info, label=label):
                unpacked.write(chunk)
        except _ZIP_ENTRY_ERRORS as error:
            raise ImageError(f"{label} cannot be unpacked ({_zip_entry_problem(error)}).") from None
        if unpacked.tell() == 0:
            raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
        unpacked.seek(0)
        image = _open(unpacked, label, max_pixels)
        try:
            _check_size(image, label, max_pixels)
            return to_rgb(_decode(image, label))
        finally:
            image.close()


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
    """The image entries of a small zip as (name, bytes), after checking it is safe to unpack.

    Everything is read into memory: for many or large files, open_zip and zip_image_entries give entries to
    read one at a time (core.batch does). Raises ImageError for the zip or for its first bad entry.
    """
    label = "the uploaded zip" if isinstance(zip_source, (bytes, bytearray)) else Path(zip_source).name
    with ExitStack() as stack:
        archive = open_zip_in(stack, zip_source, label)
        images = []
        for info in zip_image_entries(archive, label, max_files=max_files, max_total_bytes=max_total_bytes):
            entry_label = f"{label}: the entry '{info.filename}'"
            try:
                images.append((info.filename, b"".join(zip_entry_chunks(archive, info, label=entry_label))))
            except _ZIP_ENTRY_ERRORS as error:
                raise ImageError(f"{entry_label} cannot be unpacked ({_zip_entry_problem(error)}).") from None
    return images


@contextmanager
def open_zip(source: str | os.PathLike | bytes) -> Iterator[zipfile.ZipFile]:
    """A zip opened for reading in which every entry has a name.

    A name flagged as UTF-8 that is not valid UTF-8 makes zipfile refuse the whole zip; here such a name is read
    with U+FFFD for its bad bytes instead. Raises zipfile.BadZipFile (or OSError) for a file that is not a
    readable zip; a bad entry is found only when it is read.
    """
    with (io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")) as raw:
        with _read_directory(raw) as archive:
            yield archive


def open_zip_in(stack: ExitStack, source: str | os.PathLike | bytes, label: str) -> zipfile.ZipFile:
    """open_zip, kept open until `stack` closes; a file that is not a readable zip raises ImageError naming
    `label`."""
    try:
        return stack.enter_context(open_zip(source))
    except (zipfile.BadZipFile, OSError) as error:
        raise ImageError(f"{label} is not a readable zip file ({error}).") from None


def zip_image_entries(
    archive: zipfile.ZipFile, label: str, *, max_files: int = MAX_ZIP_FILES, max_total_bytes: int = MAX_ZIP_BYTES
) -> list[zipfile.ZipInfo]:
    """The entries of an open zip that are images by name, after checking the zip is safe to unpack: counts and
    declared sizes within the limits (zipfile never unpacks more than an entry declares), no unsafe names.

    Hidden files and macOS resource forks are skipped; entries that are not images by suffix too.
    """
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if len(entries) > max_files:
        raise ImageError(f"{label} holds {len(entries)} files; the limit is {max_files}.")
    total = sum(info.file_size for info in entries)
    if total > max_total_bytes:
        raise ImageError(f"{label} unpacks to {total / 1e9:.1f} GB; the limit is {max_total_bytes / 1e9:.1f} GB.")
    images = []
    for info in entries:
        _check_zip_entry_name(info.filename, label)
        if not is_hidden(info.filename) and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
            images.append(info)
    if not images:
        raise ImageError(f"{label} holds no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return images


def zip_entry_chunks(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, label: str, max_bytes: int = MAX_ZIP_ENTRY_BYTES
) -> Iterator[bytes]:
    """One entry's bytes in bounded reads, refused (ZipEntryTooLargeError, naming `label`) as soon as it declares
    or unpacks to more than max_bytes, whatever its header says.

    zipfile's own errors for a damaged, encrypted or oddly compressed entry pass through (see _ZIP_ENTRY_ERRORS).
    bzip2 is refused: zipfile inflates each read of it in one call, and a few KiB of bzip2 can hold gigabytes.
    """
    if info.file_size > max_bytes:
        raise _entry_too_large(label, max_bytes)
    if info.compress_type == zipfile.ZIP_BZIP2:
        raise ImageError(
            f"{label} is compressed with bzip2, which is not unpacked here (a few kilobytes of it can unpack to "
            "gigabytes at once); zip it again with the usual compression (deflate)."
        )
    read_bytes = _LZMA_READ_BYTES if info.compress_type == zipfile.ZIP_LZMA else ZIP_READ_BYTES
    unpacked = 0
    with archive.open(info) as entry:
        while chunk := entry.read(read_bytes):
            unpacked += len(chunk)
            if unpacked > max_bytes:
                raise _entry_too_large(label, max_bytes)
            yield chunk


def _entry_too_large(label: str, max_bytes: int) -> ZipEntryTooLargeError:
    limit = f"{max_bytes / 1e6:.0f} MB" if max_bytes >= 10_000_000 else f"{max_bytes:,} bytes"
    return ZipEntryTooLargeError(
        f"{label} unpacks to more than {limit}; the limit for one image is {limit} (an uncompressed "
        f"{_megapixels(MAX_PIXELS)}-megapixel image fits). Leave it out of the zip, or downscale it."
    )


# What zipfile raises for one entry it cannot unpack: a bad CRC or header (BadZipFile), broken deflate data
# (zlib.error, EOFError), a password (RuntimeError), an unknown compression method (NotImplementedError), a local
# header name flagged UTF-8 that is not (UnicodeDecodeError), a read that fails (OSError). Our own refusals
# (ImageError, a ValueError) are not among them: they pass through with their own message.
_ZIP_ENTRY_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, UnicodeDecodeError, OSError,
)


def _zip_entry_problem(error: BaseException) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "its name in the zip is marked UTF-8 but is not"
    return str(error) or type(error).__name__


# --- zips whose names are marked UTF-8 but are not ---------------------------------------------------------

_UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8 (else cp437)
_UTF8_FLAG_IN_HIGH_BYTE = _UTF8_FLAG >> 8  # the flags field is little-endian: bit 11 is bit 3 of its second byte
_CENTRAL_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # zipfile's structCentralDir
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_CENTRAL_FLAGS_AT = 8
_LOCAL_FLAGS_AT = 6
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"


def _read_directory(raw: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(raw)
    except UnicodeDecodeError:
        pass  # a name flagged UTF-8 that is not: read again below, with such names as cp437
    except (NotImplementedError, EOFError, ValueError, struct.error) as error:
        # zipfile's other ways of saying that a central directory is unreadable (a version from the future,
        # a corrupt extra field): one kind of refusal for callers.
        raise zipfile.BadZipFile(str(error) or type(error).__name__) from None
    return _read_directory_renaming(raw)


def _read_directory_renaming(raw: BinaryIO) -> zipfile.ZipFile:
    """The zip read through a view that clears the UTF-8 flag of the names that are not UTF-8, in the central
    directory and in their local headers, so zipfile decodes them as cp437 (which never fails); each such entry
    is then named by its bytes as UTF-8 with U+FFFD for what is not."""
    bad_names = _bad_utf8_names(raw)
    view = _FlagClearingFile(raw, [flags_at + 1 for _, flags_at, _ in bad_names])
    try:
        archive = zipfile.ZipFile(view)
    except (NotImplementedError, EOFError, ValueError, struct.error) as error:
        raise zipfile.BadZipFile(str(error) or type(error).__name__) from None
    for index, _, name in bad_names:
        info = archive.filelist[index] if index < len(archive.filelist) else None
        if info is None or info.orig_filename.encode("cp437") != name:
            archive.close()  # our reading of the directory and zipfile's disagree: trust neither
            raise zipfile.BadZipFile("its central directory could not be read")
        view.clear_flag_at(info.header_offset + _LOCAL_FLAGS_AT + 1)
        info.filename = zipfile.ZipInfo(name.decode("utf-8", errors="replace")).filename  # zipfile's clean-up
    archive.NameToInfo = {info.filename: info for info in archive.filelist}
    return archive


def _bad_utf8_names(raw: BinaryIO) -> list[tuple[int, int, bytes]]:
    """(index, position of its flags field, name bytes) of each central directory entry flagged UTF-8 whose name
    is not; the directory is found as zipfile finds it."""
    start, directory = _central_directory(raw)
    found = []
    at = index = 0
    while at < len(directory):
        if len(directory) - at < _CENTRAL_ENTRY.size:
            raise zipfile.BadZipFile("Truncated central directory")
        fields = _CENTRAL_ENTRY.unpack_from(directory, at)
        if fields[0] != _CENTRAL_SIGNATURE:
            raise zipfile.BadZipFile("Bad magic number for central directory")
        flags, name_length, extra_length, comment_length = fields[5], fields[12], fields[13], fields[14]
        name = directory[at + _CENTRAL_ENTRY.size: at + _CENTRAL_ENTRY.size + name_length]
        if flags & _UTF8_FLAG and not _is_utf8(name):
            found.append((index, start + at + _CENTRAL_FLAGS_AT, name))
        at += _CENTRAL_ENTRY.size + name_length + extra_length + comment_length
        index += 1
    return found


def _central_directory(raw: BinaryIO) -> tuple[int, bytes]:
    """(where the central directory starts, its bytes), from the end record (and its zip64 twin), as zipfile
    reads them: counted back from the end record, so data prepended to the zip shifts nothing."""
    raw.seek(0, os.SEEK_END)
    tail_start = max(0, raw.tell() - _END.size - 0xFFFF)  # the end record, then a comment of at most 64 KiB
    raw.seek(tail_start)
    tail = raw.read()
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        raise zipfile.BadZipFile("File is not a zip file")
    directory_end = tail_start + at
    size = _END.unpack_from(tail, at)[5]
    locator_at = directory_end - _END64_LOCATOR.size
    if locator_at >= 0:
        raw.seek(locator_at)
        if raw.read(_END64_LOCATOR.size)[:4] == _END64_LOCATOR_SIGNATURE:
            raw.seek(max(0, locator_at - _END64.size))
            record = raw.read(_END64.size)
            if len(record) != _END64.size or record[:4] != _END64_SIGNATURE:
                raise zipfile.BadZipFile("Zip64 end of central directory record not found")
            size = _END64.unpack(record)[8]
            directory_end = locator_at - _END64.size
    if size > directory_end:
        raise zipfile.BadZipFile("Bad offset for central directory")
    raw.seek(directory_end - size)
    return directory_end - size, raw.read(size)


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _FlagClearingFile(io.RawIOBase):
    """A read-only view of a zip file in which bit 3 of the bytes at the given positions (the high byte of a
    flags field: its UTF-8 bit) reads as clear; everything else reads as it is on disk."""

    def __init__(self, raw: BinaryIO, positions: list[int]):
        super().__init__()
        self._raw = raw
        self._positions = sorted(positions)

    def clear_flag_at(self, position: int) -> None:
        bisect.insort(self._positions, position)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer) -> int:
        start = self._raw.tell()
        count = self._raw.readinto(buffer)
        first = bisect.bisect_left(self._positions, start)
        for position in self._positions[first:bisect.bisect_left(self._positions, start + count)]:
            buffer[position - start] &= ~_UTF8_FLAG_IN_HIGH_BYTE & 0xFF
        return count


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
    if isinstance(source, ZipImage):
        return f"'{source.name}'"
    if isinstance(source, np.ndarray):
        return "The image array"
    return "The image"
