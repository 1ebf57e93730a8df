"""Read zips as a stranger may send them: one entry at a time, capped, with unsafe or undecodable names handled."""

from __future__ import annotations

import bisect
import io
import os
import re
import struct
import tempfile
import zipfile
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, cast

from PIL import Image

from .images import IMAGE_SUFFIXES, MAX_PIXELS, ImageError, ImageTooLargeError, decode_stream, is_hidden, megapixels
from .settings import Settings, current_settings

# One set of limits for every zip the app reads, in the batch tabs and as training data; training applies the same
# numbers to folders and uploads. They guard against zip bombs and accidental uploads of a whole photo library, and
# zip_limits() lets VIT_STUDIO_MAX_DATA_FILES and VIT_STUDIO_MAX_DATA_BYTES raise or lower them.
MAX_ZIP_FILES = Settings.max_data_files
MAX_ZIP_BYTES = Settings.max_data_bytes
# The most one image entry of a zip may unpack to. The biggest file a legitimate image at the pixel limit makes is
# an uncompressed 16-bit RGBA (or CMYK) TIFF: 8 bytes a pixel, the widest pixel PIL decodes (PPM, BMP and 16-bit PNG
# need at most that too). 64 MiB on top leaves room for EXIF, ICC profiles, XMP and embedded previews. Anything
# bigger is no image we would decode, so it is refused before (or while) it unpacks, however small its header says.
MAX_ZIP_ENTRY_BYTES = 8 * MAX_PIXELS + 64 * 1024**2
FILES_VARIABLE = "VIT_STUDIO_MAX_DATA_FILES"
BYTES_VARIABLE = "VIT_STUDIO_MAX_DATA_BYTES"
# Reads from a zip entry stay this small: zipfile's read() with no size asks the decompressor for up to 2 GB at once.
ZIP_READ_BYTES = 1024 * 1024
# LZMA turns each read of compressed bytes (zipfile reads at least 4 KiB) into at most ~30 MB; read it in 4 KiB.
_LZMA_READ_BYTES = 4096
# Entries up to this size are unpacked in memory, bigger ones into a temporary file, until they are decoded.
_IN_MEMORY_ENTRY_BYTES = 32 * 1024**2


class ZipEntryTooLargeError(ImageTooLargeError):
    """A zip entry that unpacks to more than an image may (MAX_ZIP_ENTRY_BYTES), whatever its header declares."""


class ZipRefusedError(ImageError):
    """A zip refused as a whole, before (or while) it unpacks: an unsafe entry name, or more files or bytes than
    its ZipLimits allow. Nothing of it should be kept."""


@dataclass(frozen=True)
class ZipLimits:
    """What one zip may hold: files, bytes unpacked all together (declared, and counted as they are read: declared
    sizes can lie), and bytes one entry may unpack to."""

    max_files: int = MAX_ZIP_FILES
    max_bytes: int = MAX_ZIP_BYTES
    max_entry_bytes: int = MAX_ZIP_ENTRY_BYTES


def zip_limits(max_files: int | None = None, max_bytes: int | None = None) -> ZipLimits:
    """The limits in force: the values given, else the settings' (VIT_STUDIO_MAX_DATA_FILES and
    VIT_STUDIO_MAX_DATA_BYTES), read at call time, so a server's settings (and tests) change them without a
    restart."""
    launch = current_settings()
    return ZipLimits(
        max_files=max_files if max_files is not None else launch.max_data_files,
        max_bytes=max_bytes if max_bytes is not None else launch.max_data_bytes,
    )


@dataclass(frozen=True)
class ZipImage:
    """One image entry of an open zip, unpacked only when load_image decodes it, so a zip of thousands of photos
    never sits in memory at once. The archive must stay open until then."""

    archive: zipfile.ZipFile
    info: zipfile.ZipInfo
    name: str  # as the user knows it, e.g. "photos.zip/cats/1.jpg"

    def load_image(self, max_pixels: int | None = None, *, label: str | None = None) -> Image.Image:
        """Unpack this entry (at most MAX_ZIP_ENTRY_BYTES, in bounded reads) and decode it as load_image does; an
        entry too large, damaged, encrypted or not an image raises ImageError naming it (`label`, else its name)."""
        label = label or f"'{self.name}'"
        with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY_ENTRY_BYTES) as unpacked:
            _unpack_entry(self.archive, self.info, label, unpacked.write)
            if unpacked.tell() == 0:
                raise ImageError(f"{label} is empty (0 bytes): it holds no image.")
            unpacked.seek(0)
            return decode_stream(cast(BinaryIO, unpacked), label, max_pixels=max_pixels)


def read_zip_images(
    zip_source: str | os.PathLike | bytes,
    max_files: int | None = None,
    max_total_bytes: int | None = None,
) -> list[tuple[str, bytes]]:
    """The image entries of a small zip as (name, bytes), after checking it is safe to unpack (zip_limits(), unless
    limits are given).

    Everything is read into memory: for many or large files, open_zip and zip_image_entries give entries to
    read one at a time (core.batch does). Raises ImageError for the zip or for its first bad entry.
    """
    label = "the uploaded zip" if isinstance(zip_source, (bytes, bytearray)) else Path(zip_source).name
    limits = zip_limits(max_files, max_total_bytes)
    with ExitStack() as stack:
        archive = open_zip_in(stack, zip_source, label)
        images = []
        for info in zip_image_entries(archive, label, limits=limits):
            chunks: list[bytes] = []
            _unpack_entry(archive, info, f"{label}: the entry '{info.filename}'", chunks.append)
            images.append((info.filename, b"".join(chunks)))
    return images


@contextmanager
def open_zip(source: str | os.PathLike | bytes) -> Iterator[zipfile.ZipFile]:
    """A zip opened for reading in which every entry has a name.

    A name flagged as UTF-8 that is not valid UTF-8 makes zipfile refuse the whole zip; here such a name is read
    with U+FFFD for its bad bytes instead. Raises zipfile.BadZipFile (or OSError) for a file that is not a
    readable zip; a bad entry is found only when it is read.
    """
    with io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb") as raw:
        with _read_directory(raw) as archive:
            yield archive


def open_zip_in(stack: ExitStack, source: str | os.PathLike | bytes, label: str) -> zipfile.ZipFile:
    """open_zip, kept open until `stack` closes; a file that is not a readable zip raises ImageError naming
    `label`."""
    try:
        return stack.enter_context(open_zip(source))
    except (zipfile.BadZipFile, OSError) as error:
        raise ImageError(f"{label} is not a readable zip file ({error}).") from None


def zip_entries(archive: zipfile.ZipFile, label: str, limits: ZipLimits | None = None) -> list[zipfile.ZipInfo]:
    """Every file entry of an open zip (folders left out), after checking the whole zip is safe to unpack: no entry
    name that could land outside its folder, and the count and declared sizes within `limits` (zip_limits() when
    None). A refusal raises ZipRefusedError naming `label`, before a byte is unpacked."""
    limits = limits or zip_limits()
    for info in archive.infolist():
        _check_zip_entry_name(info.filename, label)
    entries = [info for info in archive.infolist() if not info.is_dir()]
    _check_declared_totals(entries, label, limits)
    return entries


def zip_image_entries(
    archive: zipfile.ZipFile, label: str, *, limits: ZipLimits | None = None
) -> list[zipfile.ZipInfo]:
    """zip_entries, less those that are not images by name: hidden files, macOS resource forks and entries whose
    suffix is not an image's. A zip with no image left raises ImageError."""
    images = [
        info
        for info in zip_entries(archive, label, limits)
        if not is_hidden(info.filename) and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES
    ]
    if not images:
        raise ImageError(f"{label} holds no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return images


def _check_declared_totals(entries: list[zipfile.ZipInfo], label: str, limits: ZipLimits) -> None:
    """Refuse zip bombs from the central directory, before a byte is unpacked."""
    if len(entries) > limits.max_files:
        raise ZipRefusedError(too_many_files_message(label, len(entries), limits))
    declared = sum(info.file_size for info in entries)
    if declared > limits.max_bytes:
        raise ZipRefusedError(too_many_bytes_message(label, declared, limits, verb="unpacks to"))


def too_many_files_message(label: str, count: int, limits: ZipLimits, *, at_least: bool = False) -> str:
    """The one refusal for too many files, whether a zip, an upload or a folder (counted until the limit: at_least)."""
    counted = f"at least {count:,}" if at_least else f"{count:,}"
    return (
        f"{label} holds {counted} files; the limit is {limits.max_files:,}. Use fewer images, "
        f"or raise {FILES_VARIABLE}."
    )


def too_many_bytes_message(label: str, size: int, limits: ZipLimits, *, verb: str = "holds") -> str:
    """The one refusal for too many bytes: `verb` says how they were counted ('unpacks to', 'holds')."""
    return (
        f"{label} {verb} {_size(size)}; the limit is {_size(limits.max_bytes)}. Use fewer or smaller images, "
        f"or raise {BYTES_VARIABLE}."
    )


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 10_000_000 else f"{size:,} bytes"


class ZipReader:
    """The entries of one open zip read under one ZipLimits: each in bounded reads of at most max_entry_bytes, and
    all of them together at most max_bytes, counted as they unpack (a ZipRefusedError past it)."""

    def __init__(self, archive: zipfile.ZipFile, label: str, limits: ZipLimits | None = None):
        self.archive = archive
        self.label = label
        self.limits = limits or zip_limits()
        self.unpacked_bytes = 0

    def entries(self) -> list[zipfile.ZipInfo]:
        """zip_entries: every file entry, the zip checked as a whole first."""
        return zip_entries(self.archive, self.label, self.limits)

    def chunks(self, info: zipfile.ZipInfo, *, label: str) -> Iterator[bytes]:
        """One entry's bytes (zip_entry_chunks, `label` naming the entry), counted against the zip's total."""
        for chunk in zip_entry_chunks(self.archive, info, label=label, max_bytes=self.limits.max_entry_bytes):
            self.unpacked_bytes += len(chunk)
            if self.unpacked_bytes > self.limits.max_bytes:
                raise ZipRefusedError(
                    too_many_bytes_message(self.label, self.unpacked_bytes, self.limits, verb="unpacked to more than")
                )
            yield chunk


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
        f"{megapixels(MAX_PIXELS)}-megapixel image fits). Leave it out of the zip, or downscale it."
    )


# What zipfile raises for one entry it cannot unpack: a bad CRC or header (BadZipFile), broken deflate data
# (zlib.error, EOFError), a password (RuntimeError), an unknown compression method (NotImplementedError), a local
# header name flagged UTF-8 that is not (UnicodeDecodeError), a read that fails (OSError). Our own refusals
# (ImageError, a ValueError) are not among them: they pass through with their own message.
_ZIP_ENTRY_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    RuntimeError,
    NotImplementedError,
    UnicodeDecodeError,
    OSError,
)


def _zip_entry_problem(error: BaseException) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "its name in the zip is marked UTF-8 but is not"
    return str(error) or type(error).__name__


def _unpack_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, write: Callable[[bytes], object]
) -> None:
    """Hand one entry's bytes to `write` in bounded reads; zipfile's errors for a bad entry (or a failed write)
    become an ImageError naming `label`."""
    try:
        for chunk in zip_entry_chunks(archive, info, label=label):
            write(chunk)
    except _ZIP_ENTRY_ERRORS as error:
        raise ImageError(f"{label} cannot be unpacked ({_zip_entry_problem(error)}).") from None


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


def _check_zip_entry_name(entry_name: str, label: str) -> None:
    if is_unsafe_zip_name(entry_name):
        raise ZipRefusedError(
            f"{label} has an unsafe entry '{entry_name}' (an absolute path, a drive letter or '..' that would unpack "
            "outside its folder); nothing was unpacked. Zip the folder again from inside it."
        )


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
        name = directory[at + _CENTRAL_ENTRY.size : at + _CENTRAL_ENTRY.size + name_length]
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
        self._raw = cast(io.BufferedIOBase, raw)  # open(..., "rb") or a BytesIO: both read into a buffer
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
        for position in self._positions[first : bisect.bisect_left(self._positions, start + count)]:
            buffer[position - start] &= ~_UTF8_FLAG_IN_HIGH_BYTE & 0xFF
        return count
