"""training.data: folders, zips and uploads become checked, split samples, or a DataError that says what to do."""

from __future__ import annotations

import io
import os
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from core import zips as zips_module
from core.images import load_image
from core.zips import is_unsafe_zip_name
from training.data import (
    DataError,
    ImageClassificationData,
    Sample,
    check_data,
    image_transforms,
    prepare_data,
)
from ui.shared.training_data import chosen_source, count_rows, report_summary

HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"
needs_hymenoptera = pytest.mark.skipif(
    not HYMENOPTERA.is_dir(), reason=f"the hymenoptera data set is not at {HYMENOPTERA}"
)
SYMLINK_ATTR = 0o120777 << 16


# --- helpers and fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_photo(photos) -> Image.Image:
    """chelsea at 48x32: a real photo, small enough that hundreds of files stay fast."""
    return Image.fromarray(photos["chelsea"]).resize((48, 32))


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_images(folder: Path, count: int, image: Image.Image, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{prefix}{index:03d}.jpg"
        image.rotate(index * 7).save(path, quality=90)  # different pixels, so no two files are the same
        paths.append(path)
    return paths


def make_class_folders(root: Path, counts: dict[str, int], image: Image.Image) -> Path:
    for name, count in counts.items():
        write_images(root / name, count, image)
    return root


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in entries.items():
            info = zipfile.ZipInfo(name)  # a ZipInfo, so names like '/abs.png' are written exactly as given
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, payload)
    return path


def three_each(*classes: str, payload: bytes) -> dict[str, bytes]:
    """Zip entries: three copies of payload in each class folder."""
    return {f"{name}/{index}.jpg": payload for name in classes for index in range(3)}


def walk_counts(root: Path) -> dict[tuple[str, str], int]:
    """(split folder, class) -> files, the plain os.walk way, to hold prepare_data's counts against."""
    counts: Counter = Counter()
    for folder, _, files in os.walk(root):
        relative = Path(folder).relative_to(root).parts
        if len(relative) == 2:
            counts[relative] += len([name for name in files if not name.startswith(".")])
    return dict(counts)


# --- the real data set --------------------------------------------------------------------------------------


@needs_hymenoptera
def test_hymenoptera_folder_counts_are_what_os_walk_finds():
    prepared = prepare_data(HYMENOPTERA)
    report = prepared.report
    found = walk_counts(HYMENOPTERA)
    skipped = Counter(tuple(Path(item.name).parts[:2]) for item in report.skipped)
    assert prepared.classes == report.classes == ("ants", "bees")
    assert report.split == "train/ and val/ folders as given"
    for index, name in enumerate(report.classes):
        assert report.train_counts[index] == found["train", name] - skipped["train", name]
        assert report.val_counts[index] == found["val", name] - skipped["val", name]
    assert len(prepared.train) == sum(report.train_counts) and len(prepared.val) == sum(report.val_counts)
    assert count_rows(report) == [
        [name, train, val, train + val]
        for name, train, val in zip(report.classes, report.train_counts, report.val_counts)
    ]
    assert all(1 <= len(paths) <= 4 and all(path.is_file() for path in paths) for paths in report.examples)
    assert prepared.id2label == {0: "ants", 1: "bees"}


@needs_hymenoptera
def test_hymenoptera_gif_loads_as_rgb_through_the_dataset():
    prepared = prepare_data(HYMENOPTERA)
    gifs = [sample for sample in prepared.train + prepared.val if sample.path.suffix.lower() == ".gif"]
    assert len(gifs) == 1 and prepared.classes[gifs[0].label] == "ants"
    assert load_image(gifs[0].path).mode == "RGB"
    _, eval_transform = image_transforms(tiny_processor())
    item = ImageClassificationData(gifs, eval_transform)[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["labels"] == gifs[0].label


@needs_hymenoptera
def test_hymenoptera_zip_with_a_wrapper_folder_and_mac_litter(tmp_path):
    """A subset zipped the way macOS does it: hymenoptera/train/ants/..., plus __MACOSX and .DS_Store."""
    entries: dict[str, bytes] = {
        "hymenoptera/.DS_Store": b"\0\0\0\1Bud1",
        "hymenoptera/README.txt": b"ants and bees",
    }
    expected: Counter = Counter()
    for split in ("train", "val"):
        for name in ("ants", "bees"):
            files = sorted((HYMENOPTERA / split / name).iterdir())[:6]
            for path in files:
                entries[f"hymenoptera/{split}/{name}/{path.name}"] = path.read_bytes()
                entries[f"__MACOSX/hymenoptera/{split}/{name}/._{path.name}"] = b"\0\5\26\7 resource fork"
            expected[split, name] = len(files)
    archive = make_zip(tmp_path / "hymenoptera.zip", entries)

    prepared = prepare_data(archive, tmp_path / "work")

    assert prepared.classes == ("ants", "bees")
    assert prepared.report.train_counts == (expected["train", "ants"], expected["train", "bees"])
    assert prepared.report.val_counts == (expected["val", "ants"], expected["val", "bees"])
    assert prepared.root.name == "hymenoptera" and prepared.root.is_relative_to(tmp_path / "work")
    reasons = {item.name: item.reason for item in prepared.report.skipped}
    assert reasons == {
        "__MACOSX/": "hidden folder",
        "hymenoptera/.DS_Store": "hidden file",
        "hymenoptera/README.txt": "not an image",
    }
    assert all(sample.path.is_file() for sample in prepared.train + prepared.val)


# --- unsafe and oversized zips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry", ["../evil.png", "photos/../../evil.png", "/abs/evil.png", "C:/evil.png", "..\\evil.png"]
)
def test_zip_entry_outside_its_folder_is_refused_and_nothing_unpacked(tmp_path, small_photo, entry):
    payload = jpeg_bytes(small_photo)
    entries = {"photos/ants/1.jpg": payload, "photos/bees/1.jpg": payload, entry: payload}
    archive = make_zip(tmp_path / "evil.zip", entries)
    work = tmp_path / "work"
    with pytest.raises(DataError, match="unsafe entry") as caught:
        prepare_data(archive, work)
    assert entry in str(caught.value)
    assert list(work.iterdir()) == []
    assert not (tmp_path / "evil.png").exists()


def test_unsafe_names_are_told_apart_from_safe_ones():
    assert not any(map(is_unsafe_zip_name, ["a/b.png", "..a/b.png", "a..b.png", "sea lion/Möwe.png"]))
    assert all(map(is_unsafe_zip_name, ["../a.png", "a/../../b.png", "/a.png", "\\a.png", "d:x.png", "a\\..\\b.png"]))


def test_symlink_entry_is_skipped_not_followed(tmp_path, small_photo):
    payload = jpeg_bytes(small_photo)
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("ants", "bees"):
            for index in range(3):
                zipped.writestr(f"{name}/{index}.jpg", payload)
        link = zipfile.ZipInfo("ants/passwd.jpg")
        link.external_attr = SYMLINK_ATTR
        zipped.writestr(link, "/etc/passwd")

    prepared = prepare_data(archive, tmp_path / "work")

    assert ("ants/passwd.jpg", "symlink") in {(item.name, item.reason) for item in prepared.report.skipped}
    assert prepared.report.train_counts[0] + prepared.report.val_counts[0] == 3
    assert not list((tmp_path / "work").rglob("passwd.jpg"))


def test_zip_declaring_more_bytes_than_the_limit_is_refused_before_unpacking(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_STUDIO_MAX_DATA_BYTES", "100000")
    zeros = bytes(60_000)  # compresses to almost nothing: a small zip that unpacks large
    archive = make_zip(tmp_path / "bomb.zip", {"ants/a.png": zeros, "bees/b.png": zeros})
    assert archive.stat().st_size < 2_000
    with pytest.raises(DataError, match="VIT_STUDIO_MAX_DATA_BYTES") as caught:
        prepare_data(archive, tmp_path / "work")
    assert "bomb.zip" in str(caught.value)
    assert list((tmp_path / "work").iterdir()) == []


def test_zip_byte_limit_holds_while_unpacking_even_if_declared_sizes_passed(tmp_path, monkeypatch):
    monkeypatch.setattr(zips_module, "_check_declared_totals", lambda *args: None)
    zeros = bytes(60_000)
    archive = make_zip(tmp_path / "bomb.zip", {"ants/a.png": zeros, "bees/b.png": zeros})
    with pytest.raises(DataError, match="unpacked to more than"):
        prepare_data(archive, tmp_path / "work", max_bytes=100_000)
    assert list((tmp_path / "work").iterdir()) == []  # the half-unpacked folder is removed


def test_zip_with_too_many_files_is_refused(tmp_path, monkeypatch, small_photo):
    monkeypatch.setenv("VIT_STUDIO_MAX_DATA_FILES", "5")
    payload = jpeg_bytes(small_photo)
    archive = make_zip(tmp_path / "many.zip", three_each("a", "b", payload=payload))
    with pytest.raises(DataError, match="VIT_STUDIO_MAX_DATA_FILES"):
        prepare_data(archive, tmp_path / "work")


def test_folder_with_too_many_files_is_refused(tmp_path, small_photo):
    make_class_folders(tmp_path / "data", {"a": 3, "b": 3}, small_photo)
    with pytest.raises(DataError, match="limit is 5"):
        prepare_data(tmp_path / "data", max_files=5)


def test_zip_that_cannot_be_trained_on_leaves_nothing_unpacked(tmp_path, small_photo):
    archive = make_zip(tmp_path / "one-class.zip", {f"ants/{index}.jpg": jpeg_bytes(small_photo) for index in range(3)})
    with pytest.raises(DataError, match="Only one class"):
        prepare_data(archive, tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


def test_empty_zip_says_there_are_no_images(tmp_path):
    archive = make_zip(tmp_path / "empty.zip", {})
    with pytest.raises(DataError, match="No images found"):
        prepare_data(archive, tmp_path / "work")


def test_damaged_zip_is_refused(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\3\4 this is not really a zip")
    with pytest.raises(DataError, match="broken.zip is not a readable zip"):
        prepare_data(archive, tmp_path / "work")


def test_missing_source_and_single_image_are_refused(tmp_path, small_photo):
    with pytest.raises(DataError, match="does not exist"):
        prepare_data(tmp_path / "nowhere")
    small_photo.save(tmp_path / "one.jpg")
    with pytest.raises(DataError, match="single file"):
        prepare_data(tmp_path / "one.jpg")


# --- checks that stop training ------------------------------------------------------------------------------


def test_empty_folder_says_there_are_no_images(tmp_path):
    (tmp_path / "data" / "ants").mkdir(parents=True)
    (tmp_path / "data" / "ants" / "notes.txt").write_text("no pictures yet")
    with pytest.raises(DataError, match="No images found.*notes.txt: not an image"):
        prepare_data(tmp_path / "data")


def test_one_class_is_refused_and_the_users_folder_left_alone(tmp_path, small_photo):
    make_class_folders(tmp_path / "data", {"ants": 5}, small_photo)
    with pytest.raises(DataError, match="Only one class was found \\('ants'\\)"):
        prepare_data(tmp_path / "data")
    assert len(list((tmp_path / "data" / "ants").iterdir())) == 5


def test_class_with_one_image_is_named(tmp_path, small_photo):
    make_class_folders(tmp_path / "data", {"ants": 5, "bees": 1, "wasps": 4}, small_photo)
    with pytest.raises(DataError, match="at least 2 images.*'bees' \\(1\\)"):
        prepare_data(tmp_path / "data")


def test_class_whose_only_images_are_damaged_is_named(tmp_path, small_photo):
    make_class_folders(tmp_path / "data", {"ants": 5}, small_photo)
    (tmp_path / "data" / "bees").mkdir()
    (tmp_path / "data" / "bees" / "1.jpg").write_bytes(jpeg_bytes(small_photo)[:300])
    (tmp_path / "data" / "bees" / "2.jpg").write_bytes(jpeg_bytes(small_photo))
    with pytest.raises(DataError, match="'bees' \\(1\\)"):
        prepare_data(tmp_path / "data")


@pytest.mark.parametrize("fraction", [0, -0.1, 0.51, 1.0])
def test_val_fraction_outside_the_range_is_refused(tmp_path, small_photo, fraction):
    make_class_folders(tmp_path / "data", {"ants": 4, "bees": 4}, small_photo)
    with pytest.raises(DataError, match="at most 0.5"):
        prepare_data(tmp_path / "data", val_fraction=fraction)


def test_val_class_missing_from_train_is_named(tmp_path, small_photo):
    make_class_folders(tmp_path / "data" / "train", {"ants": 3, "bees": 3}, small_photo)
    make_class_folders(tmp_path / "data" / "validation", {"ants": 2, "bees": 2, "wasps": 2}, small_photo)
    with pytest.raises(DataError, match="validation/ has classes that train/ does not: wasps"):
        prepare_data(tmp_path / "data")


def test_val_folder_without_train_folder_is_refused(tmp_path, small_photo):
    make_class_folders(tmp_path / "data" / "val", {"ants": 3, "bees": 3}, small_photo)
    with pytest.raises(DataError, match="no train/ folder"):
        prepare_data(tmp_path / "data")


# --- files that are skipped, and images that are fine -------------------------------------------------------


def test_hidden_non_image_and_damaged_files_are_skipped_with_reasons(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "data", {"ants": 4, "bees": 4}, small_photo)
    good = jpeg_bytes(small_photo)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "ants" / ".hidden.jpg").write_bytes(good)
    (root / ".ipynb_checkpoints" / "ants").mkdir(parents=True)
    (root / ".ipynb_checkpoints" / "ants" / "copy.jpg").write_bytes(good)
    (root / "ants" / "labels.csv").write_text("file,label\n")
    (root / "bees" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "bees" / "empty.png").write_bytes(b"")
    (root / "bees" / "text.jpg").write_text("not a picture at all")
    (root / "stray.jpg").write_bytes(good)

    report = check_data(root)

    reasons = {item.name: item.reason for item in report.skipped}
    assert reasons[".DS_Store"] == "hidden file"
    assert reasons["ants/.hidden.jpg"] == "hidden file"
    assert reasons[".ipynb_checkpoints/"] == "hidden folder"
    assert reasons["ants/labels.csv"] == "not an image"
    assert reasons["bees/truncated.jpg"].startswith("damaged image:") and "truncated" in reasons["bees/truncated.jpg"]
    assert reasons["bees/empty.png"].startswith("damaged image:") and "empty" in reasons["bees/empty.png"]
    assert reasons["bees/text.jpg"].startswith("damaged image:")
    assert reasons["stray.jpg"] == "not in a class folder"
    assert len(reasons) == 8
    assert [train + val for _, train, val, _ in count_rows(report)] == [4, 4]
    assert report_summary(report) == (
        f"2 classes, {sum(report.train_counts)} training and {sum(report.val_counts)} "
        f"validation images ({report.split}); 8 file(s) skipped."
    )


def test_image_over_the_pixel_limit_is_skipped_as_too_large(tmp_path, small_photo, monkeypatch):
    root = make_class_folders(tmp_path / "data", {"ants": 3, "bees": 3}, small_photo)
    Image.new("RGB", (200, 200)).save(root / "bees" / "huge.png")
    monkeypatch.setattr("core.images.MAX_PIXELS", 10_000)
    reasons = {item.name: item.reason for item in check_data(root).skipped}
    assert reasons["bees/huge.png"].startswith("too large:")


def test_image_modes_and_sizes_all_load_as_rgb(tmp_path, small_photo):
    root = tmp_path / "data"
    (root / "modes").mkdir(parents=True)
    small_photo.convert("CMYK").save(root / "modes" / "cmyk.jpg")
    small_photo.convert("L").resize((20, 50)).save(root / "modes" / "grey.png")
    rgba = small_photo.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "modes" / "rgba.png")
    Image.fromarray((np.arange(64 * 40, dtype=np.uint16).reshape(40, 64) * 25)).save(root / "modes" / "deep.png")
    small_photo.convert("P").save(root / "modes" / "palette.gif")
    write_images(root / "plain", 3, small_photo)
    assert Image.open(root / "modes" / "deep.png").mode.startswith("I")  # really 16-bit on disk

    prepared = prepare_data(root)

    assert prepared.report.skipped == ()
    samples = [sample for sample in prepared.train + prepared.val if prepared.classes[sample.label] == "modes"]
    assert len(samples) == 5
    _, eval_transform = image_transforms(tiny_processor())
    for item in ImageClassificationData(samples, eval_transform):
        assert item["pixel_values"].shape == (3, 32, 32)
    assert all(load_image(sample.path).mode == "RGB" for sample in samples)


def test_class_names_with_spaces_and_accents_are_kept_and_sorted(tmp_path, small_photo):
    decomposed = unicodedata.normalize("NFD", "Möwe")  # how macOS writes the folder name
    make_class_folders(tmp_path / "data", {"sea lion": 3, decomposed: 3, "albatross": 3}, small_photo)
    prepared = prepare_data(tmp_path / "data")
    assert prepared.classes == ("Möwe", "albatross", "sea lion")  # sorted like torchvision's ImageFolder
    assert prepared.classes[0] == unicodedata.normalize("NFC", "Möwe")
    assert prepared.label2id["sea lion"] == 2


def test_symlinked_file_in_a_folder_is_followed_and_a_symlinked_folder_is_not(tmp_path, small_photo):
    elsewhere = write_images(tmp_path / "elsewhere", 2, small_photo)
    root = make_class_folders(tmp_path / "data", {"ants": 3, "bees": 3}, small_photo)
    (root / "ants" / "linked.jpg").symlink_to(elsewhere[0])
    (root / "wasps").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    report = check_data(root)
    assert report.classes == ("ants", "bees")
    assert report.train_counts[0] + report.val_counts[0] == 4
    assert ("wasps/", "symlinked folder (not followed)") in {(item.name, item.reason) for item in report.skipped}


# --- the split ----------------------------------------------------------------------------------------------


def test_stratified_split_is_deterministic_per_seed_and_keeps_every_class_on_both_sides(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "data", {"ants": 20, "bees": 7, "wasps": 2}, small_photo)

    first = prepare_data(root, val_fraction=0.15, seed=0)
    again = prepare_data(root, val_fraction=0.15, seed=0)
    other = prepare_data(root, val_fraction=0.15, seed=1)

    assert first.train == again.train and first.val == again.val
    assert {sample.path for sample in first.val} != {sample.path for sample in other.val}
    assert first.report.val_counts == (3, 1, 1)  # round(20 * .15), at least 1, and 2 images split 1/1
    assert first.report.train_counts == (17, 6, 1)
    assert first.report.split == "stratified 85/15 split (seed 0)"
    train_paths = {sample.path for sample in first.train}
    val_paths = {sample.path for sample in first.val}
    assert not train_paths & val_paths
    assert train_paths | val_paths == set(root.rglob("*.jpg"))


def test_split_of_one_class_does_not_move_when_another_class_is_added(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "data", {"ants": 12, "bees": 12}, small_photo)
    before = {sample.path for sample in prepare_data(root).val if sample.path.parent.name == "ants"}
    write_images(root / "wasps", 5, small_photo)
    after = {sample.path for sample in prepare_data(root).val if sample.path.parent.name == "ants"}
    assert before == after


def test_train_folder_alone_is_split_and_extra_folders_are_left_out_with_a_warning(tmp_path, small_photo):
    root = tmp_path / "data"
    make_class_folders(root / "train", {"ants": 10, "bees": 10}, small_photo)
    make_class_folders(root / "test", {"ants": 2, "bees": 2}, small_photo)
    report = check_data(root, val_fraction=0.2)
    assert report.split == "stratified 80/20 split of train/ (seed 0)"
    assert report.train_counts == (8, 8) and report.val_counts == (2, 2)
    assert any("test/ (4 images)" in warning for warning in report.warnings)


def test_wrapper_folder_around_a_folder_source_is_stepped_into(tmp_path, small_photo):
    make_class_folders(tmp_path / "outer" / "photos", {"ants": 3, "bees": 3}, small_photo)
    prepared = prepare_data(tmp_path / "outer")
    assert prepared.classes == ("ants", "bees")
    assert prepared.root == (tmp_path / "outer" / "photos").absolute()


# --- warnings -----------------------------------------------------------------------------------------------


def test_imbalance_small_classes_and_small_val_split_are_warned_about(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "data", {"many": 40, "few": 4}, small_photo)
    warnings = check_data(root).warnings
    assert any("'many' has 40 images, 'few' only 4 (10.0x)" in warning for warning in warnings)
    assert any("Very small classes: 'few' (4)" in warning for warning in warnings)
    assert any("validation split holds only 7 images" in warning for warning in warnings)


def test_balanced_data_has_no_warnings(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "data", {"ants": 40, "bees": 30}, small_photo)
    assert check_data(root).warnings == ()


def test_given_val_without_a_class_warns_about_it(tmp_path, small_photo):
    make_class_folders(tmp_path / "data" / "train", {"ants": 12, "bees": 12}, small_photo)
    make_class_folders(tmp_path / "data" / "val", {"ants": 12}, small_photo)
    report = check_data(tmp_path / "data")
    assert report.val_counts == (12, 0)
    assert any("No validation images for 'bees'" in warning for warning in report.warnings)


# --- lists of files (multi-file and directory uploads) ------------------------------------------------------


def test_list_of_paths_takes_the_class_from_the_parent_folder(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "upload", {"ants": 4, "bees": 4}, small_photo)
    (root / "ants" / ".DS_Store").write_bytes(b"\0")
    files = sorted(str(path) for path in root.rglob("*") if path.is_file())
    prepared = prepare_data(files, tmp_path / "work")
    assert prepared.classes == ("ants", "bees")
    assert sum(prepared.report.train_counts) + sum(prepared.report.val_counts) == 8
    assert ("ants/.DS_Store", "hidden file") in {(item.name, item.reason) for item in prepared.report.skipped}
    assert all(sample.path.is_relative_to(tmp_path / "work") for sample in prepared.train)


def test_relative_name_pairs_keep_a_train_and_val_layout(tmp_path, small_photo):
    """What a UI passes when it knows each file's path inside the uploaded folder (webkitRelativePath)."""
    flat = tmp_path / "gradio-cache"
    pairs = []
    for split, count in (("train", 3), ("val", 2)):
        for name in ("ants", "bees"):
            for index, path in enumerate(write_images(flat / f"{split}{name}", count, small_photo)):
                pairs.append((f"photos/{split}/{name}/{index}.jpg", path))
    as_json = [list(pair[:1]) + [str(pair[1])] for pair in pairs]  # how pairs look after a trip through JSON
    prepared = prepare_data(as_json, tmp_path / "work")
    assert prepared.report.split == "train/ and val/ folders as given"
    assert prepared.report.train_counts == (3, 3) and prepared.report.val_counts == (2, 2)


def test_relative_name_pairs_with_unsafe_names_are_refused(tmp_path, small_photo):
    path = write_images(tmp_path / "x", 1, small_photo)[0]
    with pytest.raises(DataError, match="points outside"):
        prepare_data([("ants/1.jpg", path), ("../bees/2.jpg", path)], tmp_path / "work")


def test_list_holding_one_zip_is_read_as_the_zip(tmp_path, small_photo):
    payload = jpeg_bytes(small_photo)
    archive = make_zip(tmp_path / "photos.zip", three_each("a", "b", payload=payload))
    assert check_data([str(archive)], tmp_path / "work").classes == ("a", "b")


def test_empty_list_is_refused(tmp_path):
    with pytest.raises(DataError, match="No files were given"):
        prepare_data([], tmp_path / "work")


# --- the torch side -----------------------------------------------------------------------------------------


def tiny_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 32, "width": 32})


def test_dataset_and_transforms_give_model_inputs_of_the_right_shape(tmp_path, small_photo):
    root = make_class_folders(tmp_path / "data", {"ants": 6, "bees": 6}, small_photo)
    prepared = prepare_data(root)
    train_transform, eval_transform = image_transforms(tiny_processor())
    train_set = ImageClassificationData(prepared.train, train_transform)
    eval_set = ImageClassificationData(prepared.val, eval_transform)

    item = train_set[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["pixel_values"].dtype == torch.float32
    assert item["labels"] == prepared.train[0].label
    assert -1.0 <= float(item["pixel_values"].min()) and float(item["pixel_values"].max()) <= 1.0  # mean=std=0.5
    torch.testing.assert_close(eval_set[0]["pixel_values"], eval_set[0]["pixel_values"])  # eval is deterministic

    batch = next(iter(torch.utils.data.DataLoader(train_set, batch_size=4, shuffle=True)))
    assert batch["pixel_values"].shape == (4, 3, 32, 32)
    assert batch["labels"].dtype == torch.int64 and set(batch["labels"].tolist()) <= {0, 1}


def test_transforms_follow_image_size_and_the_processor_kinds_of_size(small_photo):
    def shape(transform) -> tuple:
        return tuple(transform(small_photo).shape)

    assert shape(image_transforms(tiny_processor(), image_size=24)[0]) == (3, 24, 24)
    shortest_edge = SimpleNamespace(size={"shortest_edge": 20}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    assert [shape(t) for t in image_transforms(shortest_edge)] == [(3, 20, 20), (3, 20, 20)]
    deit_like = SimpleNamespace(
        size={"height": 36, "width": 36},
        crop_size={"height": 28, "width": 28},
        do_center_crop=True,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    assert [shape(t) for t in image_transforms(deit_like)] == [(3, 28, 28), (3, 28, 28)]
    with pytest.raises(ValueError, match="pass image_size"):
        image_transforms(SimpleNamespace(size={}))


def test_without_augmentation_training_images_are_not_cropped_at_random(small_photo):
    train_transform, eval_transform = image_transforms(tiny_processor(), augment=False)
    torch.manual_seed(0)
    first = train_transform(small_photo)
    torch.manual_seed(1)
    torch.testing.assert_close(first, train_transform(small_photo))
    torch.testing.assert_close(first, eval_transform(small_photo))


def test_dataset_reads_a_sample_list_built_by_hand(tmp_path, small_photo):
    path = write_images(tmp_path, 1, small_photo)[0]
    item = ImageClassificationData([Sample(path=path, label=3)])[0]
    assert item["pixel_values"].shape == (3, 32, 48) and item["labels"] == 3


def test_the_users_own_images_come_before_the_example_data_set(tmp_path):
    example = tmp_path / "shapes.zip"
    pairs = [("pets/cat/a.jpg", tmp_path / "a.jpg")]
    assert chosen_source(tmp_path / "mine.zip", pairs, server_path="/data", example=example) == tmp_path / "mine.zip"
    assert chosen_source(None, pairs, server_path="/data", example=example) == pairs
    assert chosen_source(None, None, server_path=" /data ", example=example) == "/data"
    assert chosen_source(None, None, server_path="  ", example=example) == example
    with pytest.raises(DataError, match="Give the images first"):
        chosen_source(None, [], server_path="", example=None)


def test_example_data_set_is_written_once_and_checks_clean(tmp_path):
    from training.examples import EXAMPLE_PER_CLASS, SHAPES, example_data_zip

    zip_path = example_data_zip(tmp_path / "cache")
    written = zip_path.stat().st_mtime_ns
    assert example_data_zip(tmp_path / "cache") == zip_path and zip_path.stat().st_mtime_ns == written
    assert [path.name for path in zip_path.parent.iterdir()] == [zip_path.name]  # no staging folder left
    report = check_data(zip_path, tmp_path / "work")
    assert report.classes == SHAPES
    assert [train + val for train, val in zip(report.train_counts, report.val_counts)] == [EXAMPLE_PER_CLASS] * 3
    assert report.skipped == () and report.warnings == ()
    # The same images every time, so a class sees the same example as its teacher.
    again = example_data_zip(tmp_path / "other")
    with zipfile.ZipFile(zip_path) as first, zipfile.ZipFile(again) as second:
        assert sorted(first.namelist()) == sorted(second.namelist())
        assert all(first.read(name) == second.read(name) for name in first.namelist())


def test_loose_photos_without_class_folders_are_told_the_layout(tmp_path, small_photo):
    """A zip of 4 good photos (and a note) at its top: the classes are the folders, so it shows the layout."""
    entries = {f"IMG_{index}.jpg": jpeg_bytes(small_photo) for index in range(4)}
    archive = make_zip(tmp_path / "photos.zip", {**entries, "notes.txt": b"my photos"})
    with pytest.raises(DataError) as refused:
        prepare_data(archive, tmp_path / "work")
    message = str(refused.value)
    assert message.startswith("The 4 photo(s) (e.g. IMG_") and "not in class folders" in message
    assert "folder named after the class" in message and "cats/ (1.jpg" in message and "dogs/" in message
    assert "No images found" not in message
