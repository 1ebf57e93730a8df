"""Hostile zips through every reader: an entry of a gigabyte, sizes that lie, bzip2 bombs, names that are not UTF-8.

Each zip is built on the fly (a gigabyte of zeros deflates to about a megabyte, written in chunks so the test never
holds it). Memory is measured as the growth of this process's peak resident size (VmHWM, reset through
/proc/self/clear_refs) over the call, so an earlier test's peak cannot hide a new one.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from test_streamlit import app, click, errors, runs_dir, table, upload  # noqa: F401 - app, runs_dir: fixtures

from core.batch import classify_files
from core.images import ImageError
from core.zips import MAX_ZIP_ENTRY_BYTES, open_zip, read_zip_images
from training.data import DataError, check_data

BIG_ENTRY_BYTES = 1024**3  # twice the per-image limit, half the per-zip one: only the per-image limit can stop it
MEMORY_BUDGET = 300 * 1024**2  # what a hostile zip may add to the peak; before the fixes it added over 1 GB
BIG = "ants/big.bmp"
SMALL = ("ants/a.png", "ants/b.png", "bees/c.png", "bees/d.png")


def png_bytes(array, side: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).resize((side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zeros_entry(path: Path, name: str, size: int, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    chunk = bytes(16 * 1024**2)
    with zipfile.ZipFile(path, "w", compression=compression) as archive, archive.open(name, "w") as entry:
        for _ in range(size // len(chunk)):
            entry.write(chunk)
    return path


def add_entries(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return path


def understate_size(source: Path, target: Path, name: str, declared: int) -> Path:
    """A copy of the zip whose central directory and local header both declare `declared` bytes for `name`."""
    with zipfile.ZipFile(source) as archive:
        header_at, directory_at = archive.getinfo(name).header_offset, archive.start_dir
    data = bytearray(source.read_bytes())  # about a megabyte: the zeros are compressed
    struct.pack_into("<L", data, header_at + 22, declared)  # local header: uncompressed size
    entry_at = data.index(b"PK\x01\x02", directory_at)
    while data[entry_at + 46 : entry_at + 46 + len(name)] != name.encode():
        entry_at = data.index(b"PK\x01\x02", entry_at + 4)
    struct.pack_into("<L", data, entry_at + 24, declared)  # central directory: uncompressed size
    target.write_bytes(bytes(data))
    with zipfile.ZipFile(target) as archive:
        assert archive.getinfo(name).file_size == declared
    return target


def break_utf8_name(data: bytes, good: str, bad: bytes, *, central: bool = True) -> bytes:
    """Replace the UTF-8 bytes of `good` (an entry name zipfile flagged UTF-8) with `bad`, of the same length, in
    the local header and, when `central`, in the central directory too."""
    encoded = good.encode()
    assert len(bad) == len(encoded) and data.count(encoded) == 2
    local_at = data.index(encoded)
    patched = data[:local_at] + bad + data[local_at + len(encoded) :]
    return patched.replace(encoded, bad) if central else patched


def peak_growth(call):
    """(call's result, how far the peak resident size rose above the size before the call, in bytes)."""
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) restarts from the current size
    result = call()
    return result, (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


@pytest.fixture(scope="module")
def small_images(photos) -> dict[str, bytes]:
    return {name: png_bytes(photos[photo]) for name, photo in zip(SMALL, ("chelsea", "astronaut", "coffee", "rocket"))}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory, small_images) -> dict[str, Path]:
    """'alone': a 1 GiB entry of zeros and nothing else; 'mixed': that plus two small classes of real photos;
    'lying': 'mixed' with the big entry declared as 1,000 bytes in both its headers."""
    folder = tmp_path_factory.mktemp("bombs")
    alone = write_zeros_entry(folder / "alone.zip", BIG, BIG_ENTRY_BYTES)
    mixed = add_entries(Path(shutil.copy(alone, folder / "mixed.zip")), small_images)
    assert mixed.stat().st_size < 3 * 1024**2
    return {"alone": alone, "mixed": mixed, "lying": understate_size(mixed, folder / "lying.zip", BIG, 1000)}


@pytest.fixture(scope="module")
def warm_model(tiny_vit_dir, photo_path) -> str:
    """The tiny classifier loaded once, so a measured call only measures the zip."""
    classify_files([photo_path], model=str(tiny_vit_dir), top_k=1)
    return str(tiny_vit_dir)


# --- hole 2: a small zip that unpacks huge --------------------------------------------------------------------


def test_an_entry_over_the_image_limit_is_its_own_error_row_and_never_unpacked(bombs, warm_model):
    results, growth = peak_growth(lambda: classify_files([bombs["mixed"]], model=warm_model, top_k=1))
    rows = {result.name: result for result in results}
    assert list(rows) == [f"mixed.zip/{name}" for name in (BIG, *SMALL)]
    limit_mb = f"{MAX_ZIP_ENTRY_BYTES / 1e6:.0f} MB"
    assert rows[f"mixed.zip/{BIG}"].error.startswith(
        f"'mixed.zip/{BIG}' unpacks to more than {limit_mb}; the limit for one image is {limit_mb}"
    )
    assert all(rows[f"mixed.zip/{name}"].ok for name in SMALL)
    assert growth < MEMORY_BUDGET, f"peak grew by {growth / 1e6:.0f} MB"


def test_an_entry_whose_headers_understate_its_size_is_an_error_row_without_inflating(bombs, warm_model):
    results, growth = peak_growth(lambda: classify_files([bombs["lying"]], model=warm_model, top_k=1))
    rows = {result.name: result for result in results}
    assert "cannot be unpacked" in rows[f"lying.zip/{BIG}"].error and "CRC" in rows[f"lying.zip/{BIG}"].error
    assert all(rows[f"lying.zip/{name}"].ok for name in SMALL)
    assert growth < MEMORY_BUDGET, f"peak grew by {growth / 1e6:.0f} MB"


def test_a_bzip2_entry_is_refused_before_it_can_inflate(tmp_path, small_images, warm_model):
    # bzip2 packs 200 MB of zeros into a few hundred bytes, and zipfile inflates each read of it in one call.
    archive = write_zeros_entry(tmp_path / "bz.zip", "bomb.png", 200 * 1024**2, compression=zipfile.ZIP_BZIP2)
    add_entries(archive, {"fine.png": small_images[SMALL[0]]})
    results, growth = peak_growth(lambda: classify_files([archive], model=warm_model, top_k=1))
    assert [result.name for result in results] == ["bz.zip/bomb.png", "bz.zip/fine.png"]
    assert "compressed with bzip2" in results[0].error and results[1].ok
    assert growth < MEMORY_BUDGET


def test_read_zip_images_refuses_an_entry_over_the_image_limit(bombs):
    with pytest.raises(ImageError, match=rf"mixed.zip: the entry '{BIG}' unpacks to more than"):
        read_zip_images(bombs["mixed"])


def test_data_check_skips_a_huge_entry_without_unpacking_it(bombs, tmp_path):
    (report, growth) = peak_growth(lambda: check_data(bombs["mixed"], tmp_path / "work"))
    assert report.classes == ("ants", "bees") and sum(report.train_counts) + sum(report.val_counts) == 4
    reasons = {item.name: item.reason for item in report.skipped}
    assert reasons[BIG].startswith("too large: the file unpacks to more than")
    assert not list((tmp_path / "work").rglob("big.bmp"))  # not a byte of it was written
    assert growth < MEMORY_BUDGET


def test_data_check_skips_an_entry_whose_headers_understate_its_size(bombs, tmp_path):
    report, growth = peak_growth(lambda: check_data(bombs["lying"], tmp_path / "work"))
    reasons = {item.name: item.reason for item in report.skipped}
    assert reasons[BIG].startswith("damaged zip entry") and "CRC" in reasons[BIG]
    assert growth < MEMORY_BUDGET


def test_data_check_of_nothing_but_a_huge_entry_says_why_and_leaves_nothing(bombs, tmp_path):
    with pytest.raises(DataError, match=rf"No images found .*{BIG}: too large"):
        check_data(bombs["alone"], tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


# --- one reader, one set of limits, for the batch tabs and the training data ----------------------------------


@pytest.mark.parametrize(
    "variable, value, refusal",
    [
        ("VIT_STUDIO_MAX_DATA_FILES", "3", "holds 4 files; the limit is 3"),
        ("VIT_STUDIO_MAX_DATA_BYTES", "1000", "unpacks to"),
    ],
)
def test_batch_classify_and_the_data_check_refuse_a_zip_by_the_same_limit(
    variable, value, refusal, tmp_path, small_images, warm_model, monkeypatch
):
    archive = add_entries(tmp_path / "four.zip", small_images)
    monkeypatch.setenv(variable, value)
    results = classify_files([archive], model=warm_model, top_k=1)
    assert [result.name for result in results] == ["four.zip"] and refusal in results[0].error
    assert variable in results[0].error  # the message says which setting raises the limit
    with pytest.raises(DataError) as caught:
        check_data(archive, tmp_path / "work")
    assert str(caught.value) == results[0].error
    assert list((tmp_path / "work").iterdir()) == []
    monkeypatch.delenv(variable)
    assert all(result.ok for result in classify_files([archive], model=warm_model, top_k=1))
    assert check_data(archive, tmp_path / "work").classes == ("ants", "bees")


def test_an_unsafe_name_gets_one_refusal_from_both_readers(tmp_path, small_images, warm_model):
    archive = add_entries(tmp_path / "evil.zip", {**small_images, "../evil.png": small_images[SMALL[0]]})
    results = classify_files([archive], model=warm_model, top_k=1)
    with pytest.raises(DataError) as caught:
        check_data(archive, tmp_path / "work")
    assert [result.name for result in results] == ["evil.zip"] and results[0].error == str(caught.value)
    assert "unsafe entry '../evil.png'" in results[0].error and not (tmp_path / "evil.png").exists()


# --- hole 5: names flagged UTF-8 that are not ----------------------------------------------------------------


def zip_with_a_bad_name(path: Path, entries: dict[str, bytes], good: str, bad: bytes, *, central: bool = True) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)  # a non-ASCII name is written UTF-8 and flagged so
    path.write_bytes(break_utf8_name(buffer.getvalue(), good, bad, central=central))
    return path


def test_zipfile_itself_refuses_such_a_zip(tmp_path, small_images):
    archive = zip_with_a_bad_name(
        tmp_path / "bad.zip", {"café.png": small_images[SMALL[0]]}, "café.png", b"caf\xff\xfe.png"
    )
    with pytest.raises(UnicodeDecodeError):
        zipfile.ZipFile(archive)  # what the fix works around: the whole zip, not one name


def test_a_name_that_is_not_utf8_gets_replacement_characters_and_is_classified(tmp_path, small_images, warm_model):
    entries = {"good.png": small_images[SMALL[0]], "café.png": small_images[SMALL[1]]}
    archive = zip_with_a_bad_name(tmp_path / "names.zip", entries, "café.png", b"caf\xff\xfe.png")
    results = classify_files([archive], model=warm_model, top_k=1)
    assert [result.name for result in results] == ["names.zip/good.png", "names.zip/caf\ufffd\ufffd.png"]
    assert all(result.ok for result in results)
    with open_zip(archive) as opened:
        assert opened.namelist() == ["good.png", "caf\ufffd\ufffd.png"]
        assert opened.read(opened.infolist()[1]) == small_images[SMALL[1]]


def test_a_bad_name_in_a_local_header_only_is_that_entrys_error_row(tmp_path, small_images, warm_model):
    entries = {"good.png": small_images[SMALL[0]], "café.png": small_images[SMALL[1]]}
    archive = zip_with_a_bad_name(tmp_path / "local.zip", entries, "café.png", b"caf\xff\xfe.png", central=False)
    results = classify_files([archive], model=warm_model, top_k=1)
    assert results[0].ok and results[1].name == "local.zip/café.png"
    assert "marked UTF-8 but is not" in results[1].error


def test_data_check_reads_a_zip_with_a_bad_name(tmp_path, small_images):
    entries = {**small_images, "bees/é.png": small_images[SMALL[2]]}
    archive = zip_with_a_bad_name(tmp_path / "names.zip", entries, "bees/é.png", b"bees/\xff\xfe.png")
    report = check_data(archive, tmp_path / "work")
    assert report.classes == ("ants", "bees") and sum(report.train_counts) + sum(report.val_counts) == 5
    unpacked = [path.name for path in (tmp_path / "work").rglob("*.png")]
    assert "\ufffd\ufffd.png" in unpacked


def test_a_refused_data_check_of_such_a_zip_leaves_no_folder(tmp_path, small_images):
    entries = {"ants/a.png": small_images[SMALL[0]], "ants/é.png": small_images[SMALL[1]]}
    archive = zip_with_a_bad_name(tmp_path / "one-class.zip", entries, "ants/é.png", b"ants/\xff\xfe.png")
    with pytest.raises(DataError, match="Only one class"):
        check_data(archive, tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


# --- Streamlit: a new error replaces the last table ----------------------------------------------------------


def test_classify_page_error_after_a_good_batch_clears_its_table(app, photo_files):  # noqa: F811
    at = click(upload(app(), "classify_files", photo_files["chelsea"]), "classify_batch_run")
    assert list(table(at, "file")["file"]) == ["chelsea.jpg"]
    at.file_uploader(key="classify_files").set_value([])
    click(at, "classify_batch_run")
    assert "Upload some images or a zip of images first." in errors(at)
    assert not any(list(frame.value.columns)[:1] == ["file"] for frame in at.dataframe)


def test_train_page_failed_check_after_a_good_one_clears_its_report(app, tmp_path):  # noqa: F811
    at = click(app("train"), "train_check")  # the example data set
    assert list(table(at, "class")["class"]) == ["circle", "square", "triangle"]
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    click(upload(at, "train_zip", broken), "train_check")
    assert any("broken.zip is not a readable zip" in message for message in errors(at)), errors(at)
    assert not any(list(frame.value.columns)[:1] == ["class"] for frame in at.dataframe)
