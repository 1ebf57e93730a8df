"""training.collect: class names, saving samples one at a time, counting, removing, and what training needs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training import (
    MIN_PER_CLASS,
    check_class_name,
    check_ready,
    class_samples,
    collection_batch_size,
    prepare_data,
    read_collection,
    remove_class,
    save_sample,
    zip_collection,
)


def frame(value: int, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A webcam-sized RGB frame of one grey level."""
    return np.full((*size, 3), value, np.uint8)


@pytest.mark.parametrize(
    ("typed", "kept"), [("cat", "cat"), ("  thumbs   up ", "thumbs up"), ("Ünïcode_1", "Ünïcode_1"), ("a-b", "a-b")]
)
def test_class_names_are_trimmed(typed, kept):
    assert check_class_name(typed) == kept


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Type a class name first"),
        (None, "Type a class name first"),
        ("   ", "Type a class name first"),
        ("../etc", "only letters, digits"),
        ("a/b", "only letters, digits"),
        (".hidden", "only letters, digits"),
        ("-dash", "start with a letter or digit"),
        ("x" * 41, "at most 40 characters"),
    ],
)
def test_bad_class_names_get_a_sentence(typed, message):
    with pytest.raises(ValueError, match=message):
        check_class_name(typed)


def test_samples_are_numbered_shrunk_and_counted(tmp_path, chelsea):
    first = save_sample(tmp_path, "cat", frame(10))
    second = save_sample(tmp_path, " cat ", chelsea)
    assert (first.name, second.name) == ("0001.png", "0002.png") and first.parent == tmp_path / "cat"
    with Image.open(first) as saved:
        assert max(saved.size) == 256 and saved.mode == "RGB"
    save_sample(tmp_path, "dog", frame(200))
    collected = read_collection(tmp_path)
    assert collected.classes == ("cat", "dog") and collected.counts == (2, 1) and collected.total == 3
    assert class_samples(tmp_path, "cat") == [first, second]


def test_a_removed_image_number_is_not_reused(tmp_path):
    save_sample(tmp_path, "cat", frame(1))
    second = save_sample(tmp_path, "cat", frame(2))
    (tmp_path / "cat" / "0001.png").unlink()
    assert second.name == "0002.png" and save_sample(tmp_path, "cat", frame(3)).name == "0003.png"


def test_remove_a_class(tmp_path):
    save_sample(tmp_path, "cat", frame(1))
    save_sample(tmp_path, "dog", frame(2))
    remove_class(tmp_path, "cat")
    assert read_collection(tmp_path).classes == ("dog",)
    with pytest.raises(ValueError, match="no class 'cat'"):
        remove_class(tmp_path, "cat")
    assert read_collection(tmp_path / "nothing-yet").classes == ()


def test_not_an_image_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError):
        save_sample(tmp_path, "cat", b"not an image")
    assert read_collection(tmp_path).total == 0


def test_training_needs_two_classes_with_enough_images(tmp_path):
    with pytest.raises(ValueError, match="at least two classes.*none yet"):
        check_ready(tmp_path)
    save_sample(tmp_path, "cat", frame(1))
    with pytest.raises(ValueError, match="only 'cat'"):
        check_ready(tmp_path)
    save_sample(tmp_path, "dog", frame(2))
    with pytest.raises(ValueError, match="'cat' has 1, 'dog' has 1"):
        check_ready(tmp_path)
    for value in range(MIN_PER_CLASS * 2):
        save_sample(tmp_path, "cat", frame(value))
        save_sample(tmp_path, "dog", frame(255 - value))
    assert check_ready(tmp_path).classes == ("cat", "dog")
    # The collection is an ImageFolder that training takes as it is.
    data = prepare_data(tmp_path, tmp_path.parent / "work")
    assert data.classes == ("cat", "dog") and len(data.train) + len(data.val) == read_collection(tmp_path).total


def test_a_collection_zips_as_a_data_set_training_takes(tmp_path):
    root = tmp_path / "collected"
    for value in range(3):
        save_sample(root, "cat", frame(value))
        save_sample(root, "dog", frame(250 - value))
    archive = zip_collection(root, tmp_path)
    assert archive == tmp_path / "collected.zip"
    data = prepare_data(archive, tmp_path / "work")
    assert data.classes == ("cat", "dog") and len(data.train) + len(data.val) == 6
    (root / "dog").joinpath("0001.png").unlink()
    (root / "dog").joinpath("0002.png").unlink()
    with pytest.raises(ValueError, match="'dog' has 1"):
        zip_collection(root, tmp_path / "again")


@pytest.mark.parametrize(("per_class", "classes", "batch"), [(2, 3, 3), (4, 2, 4), (40, 3, 16)])
def test_the_batch_size_fits_the_training_part_of_the_split(tmp_path, per_class, classes, batch):
    for name in ("a", "b", "c")[:classes]:
        for value in range(per_class):
            save_sample(tmp_path / "c", name, frame(value, (8, 8)))
    collected = read_collection(tmp_path / "c")
    assert collection_batch_size(collected, 16) == batch
    data = prepare_data(tmp_path / "c", tmp_path / "work")
    assert batch <= len(data.train)
