"""training.caption_data and training.caption_examples: caption files, folders and zips become checked image +
caption pairs split by image, or a DataError that says what to do; the generated shapes set keeps its grammar."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import training
from training.caption_data import (
    CAPTION_COLUMNS,
    EMPTY_CAPTION,
    IMAGE_COLUMNS,
    MISSING_IMAGE,
    CaptionData,
    DataError,
    load_caption_data,
    sample_pairs,
)
from training.caption_examples import (
    CAPTION_PATTERN,
    COLOUR_WORDS,
    COUNT_WORDS,
    RELATIONS,
    SHAPE_WORDS,
    caption_for,
    example_caption_zip,
    write_captioned_shapes,
    write_captioned_shapes_zip,
)

SYMLINK_ATTR = 0o120777 << 16


# --- helpers ------------------------------------------------------------------------------------------------


def write_images(folder: Path, count: int, prefix: str = "img") -> list[str]:
    """count small PNGs of different noise in folder; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    names = []
    for index in range(count):
        name = f"{prefix}{index:03d}.png"
        Image.fromarray(rng.integers(0, 255, size=(12, 12, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return names


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """zip_path holding folder's files under folder's name, as a user zips a folder."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent).as_posix())
    return zip_path


def captions_of(data: CaptionData) -> dict[str, tuple[str, ...]]:
    return {pair.image.name: pair.captions for pair in (*data.train, *data.val)}


def reasons_of(data: CaptionData) -> dict[str, str]:
    return {item.name: item.reason for item in data.report.skipped}


@pytest.fixture
def folder_with_metadata(tmp_path) -> Path:
    folder = tmp_path / "pets"
    names = write_images(folder, 5)
    write_jsonl(
        folder / "metadata.jsonl", [{"file_name": name, "text": f"pet number {i}"} for i, name in enumerate(names)]
    )
    return folder


@pytest.fixture
def folder_with_captions_csv(tmp_path) -> Path:
    folder = tmp_path / "boats"
    names = write_images(folder / "images", 5)
    write_csv(
        folder / "captions.csv", ["image", "caption"], [[f"images/{n}", f"a boat {i}"] for i, n in enumerate(names)]
    )
    return folder


# --- every input form ---------------------------------------------------------------------------------------


def test_csv_file_with_found_columns(tmp_path):
    names = write_images(tmp_path / "photos", 4)
    table = write_csv(
        tmp_path / "train.csv", ["image_path", "caption"], [[f"photos/{n}", f"photo {i}"] for i, n in enumerate(names)]
    )
    data = load_caption_data(table)
    assert (data.report.image_column, data.report.caption_column) == ("image_path", "caption")
    assert data.report.images == 4 and data.report.pairs == 4
    assert captions_of(data) == {n: (f"photo {i}",) for i, n in enumerate(names)}
    assert all(pair.image.is_absolute() and pair.image.is_file() for pair in (*data.train, *data.val))
    assert data.root == tmp_path and data.unpacked == ()


def test_jsonl_file_with_explicit_columns_wins_over_usual_names(tmp_path):
    names = write_images(tmp_path, 3)
    rows = [
        {"picture": n, "description": f"thing {i}", "text": "not this one", "image": "nor this"}
        for i, n in enumerate(names)
    ]
    table = write_jsonl(tmp_path / "pairs.jsonl", rows)
    data = load_caption_data(table, image_column="picture", caption_column="description")
    assert (data.report.image_column, data.report.caption_column) == ("picture", "description")
    assert captions_of(data) == {n: (f"thing {i}",) for i, n in enumerate(names)}


def test_usual_column_names_are_found_in_order_and_case(tmp_path):
    names = write_images(tmp_path, 2)
    table = write_csv(tmp_path / "x.csv", ["FileName", "Text", "captions"], [[n, "first", "second"] for n in names])
    data = load_caption_data(table)
    assert (data.report.image_column, data.report.caption_column) == ("FileName", "Text")
    assert IMAGE_COLUMNS.index("filename") > IMAGE_COLUMNS.index("image")
    assert CAPTION_COLUMNS[0] == "caption"


def test_folder_with_metadata_jsonl(folder_with_metadata):
    data = load_caption_data(folder_with_metadata)
    assert data.report.images == 5 and (data.report.image_column, data.report.caption_column) == ("file_name", "text")
    assert data.root == folder_with_metadata


def test_folder_with_captions_csv(folder_with_captions_csv):
    data = load_caption_data(folder_with_captions_csv)
    assert data.report.images == 5 and captions_of(data)["img000.png"] == ("a boat 0",)
    assert data.report.skipped == ()


@pytest.mark.parametrize("layout", ["folder_with_metadata", "folder_with_captions_csv"])
def test_zip_of_a_folder_unpacks_under_work_dir(layout, request, tmp_path):
    folder = request.getfixturevalue(layout)
    archive = zip_folder(folder, tmp_path / "upload.zip")
    shutil.rmtree(folder)  # the pairs must come from the zip alone
    work = tmp_path / "work"
    data = load_caption_data(archive, work_dir=work)
    assert data.report.images == 5 and data.report.skipped == ()
    assert len(data.unpacked) == 1 and data.unpacked[0].parent == work
    assert all(
        pair.image.is_relative_to(data.unpacked[0]) and pair.image.is_file() for pair in (*data.train, *data.val)
    )


def test_zip_of_a_lone_csv_with_images_at_its_root(tmp_path):
    names = write_images(tmp_path / "src", 3)
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as archive:
        for name in names:
            archive.write(tmp_path / "src" / name, name)
        archive.writestr("my_pairs.csv", "image,caption\n" + "".join(f"{n},cap {n}\n" for n in names))
        archive.writestr("notes.txt", "left out")
    data = load_caption_data(tmp_path / "flat.zip", work_dir=tmp_path / "work")
    assert data.report.images == 3
    assert reasons_of(data)["notes.txt"] == "not an image or a caption file"


def test_a_json_file_holding_a_list_of_objects(tmp_path):
    names = write_images(tmp_path, 2)
    table = tmp_path / "pairs.json"
    table.write_text(json.dumps([{"image": n, "caption": ["a", "b c"]} for n in names]), encoding="utf-8")
    data = load_caption_data(table)
    assert captions_of(data) == {n: ("a", "b c") for n in names} and data.report.caption_words == (1, 2, 1, 2)


# --- several captions per image -----------------------------------------------------------------------------


def test_repeated_rows_become_one_pair_with_every_caption(tmp_path):
    names = write_images(tmp_path, 2)
    rows = [[names[0], "a cat"], [names[1], "a dog"], [names[0], "a black cat"], [names[0], "a cat"]]
    data = load_caption_data(write_csv(tmp_path / "c.csv", ["image", "caption"], rows))
    assert captions_of(data) == {names[0]: ("a cat", "a black cat"), names[1]: ("a dog",)}
    assert data.report.pairs == 3 and data.report.images == 2


def test_lists_in_json_lines_and_json_lists_in_csv_cells(tmp_path):
    names = write_images(tmp_path, 2)
    jsonl = write_jsonl(tmp_path / "m.jsonl", [{"image": names[0], "captions": ["one", "  two  words ", ""]}])
    assert captions_of(load_caption_data(jsonl)) == {names[0]: ("one", "two words")}
    table = write_csv(tmp_path / "c.csv", ["image", "captions"], [[names[1], json.dumps(["red", "a red thing"])]])
    data = load_caption_data(table)
    assert captions_of(data) == {names[1]: ("red", "a red thing")}
    assert data.report.caption_words == (1, 3)


# --- the split ----------------------------------------------------------------------------------------------


def many_captions_csv(tmp_path: Path, images: int = 30, reverse: bool = False) -> Path:
    names = write_images(tmp_path / "imgs", images)
    rows = [[f"imgs/{n}", f"caption {k} of {n}"] for n in names for k in range(3)]
    return write_csv(
        tmp_path / ("rev.csv" if reverse else "c.csv"), ["image", "caption"], rows[::-1] if reverse else rows
    )


def test_split_holds_out_images_not_captions_with_a_fixed_seed(tmp_path):
    table = many_captions_csv(tmp_path)
    data = load_caption_data(table, seed=3)
    train, val = {p.image for p in data.train}, {p.image for p in data.val}
    assert len(val) == 3 and len(train) == 27 and not train & val
    assert all(len(pair.captions) == 3 for pair in (*data.train, *data.val))  # an image's captions stay together
    assert (data.report.train_images, data.report.val_images, data.report.pairs) == (27, 3, 90)
    assert data.report.split == "held out 10% of images"
    assert {p.image for p in load_caption_data(table, seed=3).val} == val
    assert {p.image for p in load_caption_data(many_captions_csv(tmp_path, reverse=True), seed=3).val} == val
    assert {p.image for p in load_caption_data(table, seed=4).val} != val
    assert len(load_caption_data(table, val_fraction=0.5).val) == 15


def test_two_images_give_one_to_validation_and_one_image_gives_a_warning(tmp_path):
    names = write_images(tmp_path, 2)
    two = load_caption_data(write_csv(tmp_path / "two.csv", ["image", "caption"], [[n, "x y"] for n in names]))
    assert (two.report.train_images, two.report.val_images) == (1, 1)
    one = load_caption_data(write_csv(tmp_path / "one.csv", ["image", "caption"], [[names[0], "x y"]]))
    assert (one.report.train_images, one.report.val_images) == (1, 0)
    assert any("No validation images" in warning for warning in one.report.warnings)
    assert any("Only 1 images" in warning for warning in one.report.warnings)


def test_validation_file_is_used_and_shared_images_stay_out_of_training(tmp_path):
    names = write_images(tmp_path, 6)
    train_csv = write_csv(tmp_path / "train.csv", ["image", "caption"], [[n, f"train {n}"] for n in names[:5]])
    val_jsonl = write_jsonl(tmp_path / "val.jsonl", [{"file_name": n, "text": f"val {n}"} for n in names[4:]])
    data = load_caption_data(train_csv, validation=val_jsonl)
    assert data.report.split == "validation file"
    assert [p.image.name for p in data.val] == names[4:]
    assert [p.image.name for p in data.train] == names[:4]
    assert "also in the validation data" in reasons_of(data)[names[4]]


def test_validation_file_sharing_every_image_is_refused(tmp_path):
    names = write_images(tmp_path, 2)
    table = write_csv(tmp_path / "t.csv", ["image", "caption"], [[n, "x"] for n in names])
    with pytest.raises(DataError, match="Every training image is also in the validation data"):
        load_caption_data(table, validation=table)


def write_imagefolder_splits(folder: Path) -> Path:
    """folder/train and folder/validation, each with images and its own metadata.jsonl (the imagefolder layout)."""
    for split, count in (("train", 6), ("validation", 2)):
        names = write_images(folder / split, count, prefix=split)
        write_jsonl(folder / split / "metadata.jsonl", [{"file_name": n, "text": f"{split} {n}"} for n in names])
    return folder


def test_imagefolder_train_and_validation_folders_give_the_split(tmp_path):
    folder = write_imagefolder_splits(tmp_path / "set")
    data = load_caption_data(folder)
    assert data.report.split == "validation file"
    assert [p.image.name for p in data.val] == ["validation000.png", "validation001.png"]
    assert (data.report.train_images, data.report.val_images) == (6, 2)
    zipped = load_caption_data(zip_folder(folder, tmp_path / "set.zip"), work_dir=tmp_path / "work")
    assert (zipped.report.train_images, zipped.report.val_images, zipped.report.skipped) == (6, 2, ())


@pytest.mark.parametrize("fraction", [0, 0.6, -0.1])
def test_a_bad_validation_fraction_is_refused(tmp_path, fraction):
    with pytest.raises(DataError, match="validation fraction"):
        load_caption_data(tmp_path, val_fraction=fraction)


# --- rows that are skipped ----------------------------------------------------------------------------------


def test_missing_damaged_and_uncaptioned_rows_are_skipped_with_reasons(tmp_path):
    names = write_images(tmp_path, 4)
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    rows = [
        {"file_name": names[0], "text": "kept"},
        {"file_name": names[1], "text": "   "},
        {"file_name": "gone.png", "text": "no file"},
        {"file_name": "broken.png", "text": "damaged"},
        {"file_name": "", "text": "no image"},
        {"file_name": names[2], "text": "kept too"},
    ]
    path = write_jsonl(tmp_path / "metadata.jsonl", rows)
    path.write_text(path.read_text() + "{not json\n[1, 2]\n", encoding="utf-8")
    data = load_caption_data(tmp_path)
    assert sorted(captions_of(data)) == [names[0], names[2]]
    reasons = reasons_of(data)
    assert reasons[names[1]] == EMPTY_CAPTION
    assert reasons["gone.png"] == MISSING_IMAGE
    assert reasons["broken.png"].startswith("damaged image")
    assert "no image named" in reasons["metadata.jsonl line 5"]
    assert reasons["metadata.jsonl line 7"].startswith("not valid JSON")
    assert "not a JSON object" in reasons["metadata.jsonl line 8"]
    assert reasons[names[3]] == "no caption in metadata.jsonl"


def test_a_few_numbers_among_text_captions_are_skipped(tmp_path):
    names = write_images(tmp_path, 2)
    data = load_caption_data(
        write_csv(tmp_path / "c.csv", ["image", "caption"], [[names[0], "a cat"], [names[1], "42"]])
    )
    assert sorted(captions_of(data)) == [names[0]]
    assert reasons_of(data)[names[1]] == "caption is a number, not text"


def test_image_paths_outside_a_zip_are_skipped_and_zip_symlinks_left_out(tmp_path):
    names = write_images(tmp_path / "src", 2)
    outside = tmp_path / "secret.png"
    shutil.copy(tmp_path / "src" / names[0], outside)
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
        archive.write(tmp_path / "src" / names[0], f"set/{names[0]}")
        link = zipfile.ZipInfo(f"set/{names[1]}")
        link.external_attr = SYMLINK_ATTR
        archive.writestr(link, str(outside))
        archive.writestr("set/captions.csv", f"image,caption\n{names[0]},ok\n../../secret.png,escape\n{outside},abs\n")
    data = load_caption_data(tmp_path / "z.zip", work_dir=tmp_path / "work")
    assert [pair.image.name for pair in (*data.train, *data.val)] == [names[0]]
    reasons = reasons_of(data)
    assert "points outside the zip" in reasons["../../secret.png"]
    assert "points outside the zip" in reasons[str(outside)]
    assert reasons[f"set/{names[1]}"] == "symlink"


# --- bad input stops before training ------------------------------------------------------------------------


def test_missing_caption_column_names_the_columns_found(tmp_path):
    names = write_images(tmp_path, 2)
    table = write_csv(tmp_path / "c.csv", ["image", "label", "score"], [[n, "cat", "1"] for n in names])
    with pytest.raises(DataError, match=r"no caption column.*'image', 'label', 'score'.*caption_column"):
        load_caption_data(table)


def test_missing_image_column_and_a_wrong_explicit_column_name_the_columns_found(tmp_path):
    table = write_jsonl(tmp_path / "m.jsonl", [{"path": "a.png", "text": "x"}])
    with pytest.raises(DataError, match=r"no image column: looked for image, image_path.*'path', 'text'"):
        load_caption_data(table)
    with pytest.raises(DataError, match=r"no caption column 'desc'; the columns found are 'path', 'text'"):
        load_caption_data(table, image_column="path", caption_column="desc")


def test_a_caption_column_of_numbers_is_refused(tmp_path):
    names = write_images(tmp_path, 3)
    table = write_csv(
        tmp_path / "c.csv", ["image", "caption", "text"], [[n, str(i), "words"] for i, n in enumerate(names)]
    )
    with pytest.raises(DataError, match=r"caption column 'caption' of c.csv holds numbers.*'image', 'text'"):
        load_caption_data(table)
    json_numbers = write_jsonl(tmp_path / "n.jsonl", [{"image": n, "caption": 1.5} for n in names])
    with pytest.raises(DataError, match="holds numbers"):
        load_caption_data(json_numbers)


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    names = write_images(tmp_path, 1)
    table = tmp_path / "latin.csv"
    table.write_bytes(f"image,caption\n{names[0]},un café crème\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv is not UTF-8 text.*save it again as UTF-8"):
        load_caption_data(table)


def test_a_utf8_file_with_a_byte_order_mark_is_read(tmp_path):
    names = write_images(tmp_path, 1)
    table = tmp_path / "excel.csv"
    table.write_bytes(f"image,caption\n{names[0]},un café crème\n".encode("utf-8-sig"))
    assert captions_of(load_caption_data(table)) == {names[0]: ("un café crème",)}


def test_no_usable_pairs_is_refused_with_the_reason(tmp_path):
    table = write_csv(tmp_path / "c.csv", ["image", "caption"], [["nowhere/a.png", "x"], ["nowhere/b.png", "y"]])
    with pytest.raises(DataError, match=r"no usable image \+ caption pairs.*missing image.*relative to the caption"):
        load_caption_data(table)
    empty = write_csv(tmp_path / "e.csv", ["image", "caption"], [[write_images(tmp_path, 1)[0], ""]])
    with pytest.raises(DataError, match="fill in the captions"):
        load_caption_data(empty)


def test_empty_files_missing_sources_and_folders_without_captions_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty.csv is empty"):
        load_caption_data(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="does not exist"):
        load_caption_data(tmp_path / "nothing.csv")
    write_images(tmp_path / "only_images", 2)
    with pytest.raises(DataError, match="No caption file found.*metadata.jsonl"):
        load_caption_data(tmp_path / "only_images")
    (tmp_path / "photo.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="not a caption file"):
        load_caption_data(tmp_path / "photo.txt")
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        load_caption_data(tmp_path / "fake.zip")


def test_a_zip_with_parent_entries_is_refused_and_leaves_nothing(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("set/metadata.jsonl", '{"file_name": "a.png", "text": "x"}\n')
        archive.writestr("../escape.png", b"x")
    work = tmp_path / "work"
    with pytest.raises(DataError, match=r"unsafe entry '../escape.png'"):
        load_caption_data(tmp_path / "evil.zip", work_dir=work)
    assert not (tmp_path / "escape.png").exists()
    assert list(work.iterdir()) == []


def test_a_failed_load_removes_its_unpacked_zip(tmp_path, folder_with_metadata):
    archive = zip_folder(folder_with_metadata, tmp_path / "ok.zip")
    work = tmp_path / "work"
    with pytest.raises(DataError, match="no caption column"):
        load_caption_data(
            archive,
            caption_column=None,
            validation=write_csv(tmp_path / "v.csv", ["image", "x"], [["a", "b"]]),
            work_dir=work,
        )
    assert list(work.iterdir()) == []


# --- "Check data" thumbnails --------------------------------------------------------------------------------


def test_caption_examples_spread_over_the_set(tmp_path):
    data = load_caption_data(many_captions_csv(tmp_path))
    every = (*data.train, *data.val)
    picked = sample_pairs(data, count=6)
    assert len(picked) == 6 and len(set(picked)) == 6 and picked[0] == every[0]
    assert picked[-1] in every[len(every) // 2 :]
    assert sample_pairs(data, count=100) == every
    assert sample_pairs(data, count=0) == ()
    with pytest.raises(ValueError, match="negative"):
        sample_pairs(data, count=-1)


# --- the generated example set ------------------------------------------------------------------------------


def test_example_captions_follow_the_grammar_and_use_every_word(tmp_path):
    folder = write_captioned_shapes(tmp_path / "shapes", count=120, seed=1)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 120
    matches = [CAPTION_PATTERN.match(row["text"]) for row in rows]
    assert all(matches), [row["text"] for row, match in zip(rows, matches) if not match]
    words = Counter(value for match in matches if match for value in match.groupdict().values())
    assert set(COUNT_WORDS) | set(COLOUR_WORDS) | set(SHAPE_WORDS) | set(RELATIONS) <= set(words)
    for match in matches:
        assert match is not None
        plural = match.group(0).split()[2].endswith("s")
        assert plural == (match["count"] != "one")  # "one red circle", "two red circles"
        assert (match["colour"], match["shape"]) != (match["other_colour"], match["other_shape"])
    with Image.open(folder / rows[0]["file_name"]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    assert caption_for(2, "red", "circle", "above", "blue", "square") == "two red circles above a blue square"


def test_example_set_is_the_same_for_the_same_seed(tmp_path):
    first = write_captioned_shapes(tmp_path / "a", count=5, seed=7)
    second = write_captioned_shapes(tmp_path / "b", count=5, seed=7)
    third = write_captioned_shapes(tmp_path / "c", count=5, seed=8)
    assert (first / "metadata.jsonl").read_text() == (second / "metadata.jsonl").read_text()
    assert (first / "0000.png").read_bytes() == (second / "0000.png").read_bytes()
    assert (first / "metadata.jsonl").read_text() != (third / "metadata.jsonl").read_text()


def test_example_shapes_are_where_the_caption_says(tmp_path):
    """The small shapes' colour lies in the half the relation names: the caption can be read off the pixels."""
    folder = write_captioned_shapes(tmp_path / "s", count=40, seed=2)
    for row in (json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()):
        match = CAPTION_PATTERN.match(row["text"])
        assert match is not None
        pixels = np.asarray(Image.open(folder / row["file_name"])).astype(int)
        target = np.array(COLOUR_WORDS[match["colour"]])
        close = np.abs(pixels - target).sum(axis=2) < 70
        if match["colour"] == match["other_colour"]:
            continue  # both shapes share the colour: nothing to tell apart by it
        ys, xs = np.nonzero(close)
        axis = ys if match["relation"] in ("above", "below") else xs
        first_half = match["relation"] in ("above", "left of")
        assert len(axis) > 0
        assert (axis.max() < 32) if first_half else (axis.min() >= 32), row


def test_example_zip_loads_with_a_ten_percent_split(tmp_path):
    archive = write_captioned_shapes_zip(tmp_path, count=30)
    assert archive.name == "captioned-shapes.zip"
    data = load_caption_data(archive, work_dir=tmp_path / "work")
    assert (data.report.images, data.report.train_images, data.report.val_images) == (30, 27, 3)
    assert data.report.skipped == ()
    assert all(CAPTION_PATTERN.match(pair.captions[0]) for pair in (*data.train, *data.val))


def test_example_caption_zip_is_written_once(tmp_path):
    path = example_caption_zip(tmp_path / "cache")
    stamp = path.stat().st_mtime_ns
    assert example_caption_zip(tmp_path / "cache") == path and path.stat().st_mtime_ns == stamp
    assert [child.name for child in (tmp_path / "cache").iterdir()] == ["captioned-shapes-1200.zip"]
    data = load_caption_data(path, work_dir=tmp_path / "work")
    assert (data.report.images, data.report.val_images) == (1200, 120)
    assert data.report.warnings == ()


def test_the_package_exports_the_caption_data_names():
    for name in (
        "load_caption_data",
        "CaptionData",
        "CaptionPair",
        "CaptionReport",
        "sample_pairs",
        "write_captioned_shapes",
        "write_captioned_shapes_zip",
        "example_caption_zip",
    ):
        assert name in training.__all__ and hasattr(training, name)
