"""core.classify and core.classify_files on real photos, with tiny random models loaded by the real loader."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from core import FileResult, ImageError, Prediction, classify, classify_files
from core import batch as batch_module
from core.classify import scores_from_logits
from ui.shared.batch import CSV_COLUMNS, write_csv

FP32_TOLERANCE = 1e-5
BF16_TOLERANCE = 0.02


def scores_by_label(predictions: list[Prediction]) -> dict[str, float]:
    return {prediction.label: prediction.score for prediction in predictions}


def assert_same_scores(actual: list[Prediction], expected: list[Prediction], tolerance: float) -> None:
    """Same labels with the same probabilities (rank order may swap among near-ties when tolerance is loose)."""
    actual_scores, expected_scores = scores_by_label(actual), scores_by_label(expected)
    assert actual_scores.keys() == expected_scores.keys()
    for label, score in expected_scores.items():
        assert actual_scores[label] == pytest.approx(score, abs=tolerance), label


def reference_probabilities(model_dir: Path, model_class, arrays: list[np.ndarray]) -> np.ndarray:
    """What the engine should compute, done independently with plain transformers: processor, model, softmax."""
    from transformers import ViTImageProcessor

    model = model_class.from_pretrained(model_dir).eval()
    assert model.dtype == torch.float32
    processor = ViTImageProcessor.from_pretrained(model_dir)
    inputs = processor(images=[Image.fromarray(array).convert("RGB") for array in arrays], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits.softmax(dim=-1).numpy()


def assert_matches_reference(predictions: list[Prediction], probabilities: np.ndarray, labels) -> None:
    expected_order = [labels[index] for index in np.argsort(-probabilities, kind="stable")]
    assert [p.label for p in predictions] == expected_order[: len(predictions)]
    for prediction in predictions:
        assert prediction.score == pytest.approx(probabilities[labels.index(prediction.label)], abs=FP32_TOLERANCE)


# --- shape of the result ------------------------------------------------------------------------------------


def test_one_image_gives_one_list_of_predictions(tiny_vit_dir, chelsea):
    result = classify(chelsea, model=str(tiny_vit_dir), top_k=3)
    assert isinstance(result, list) and len(result) == 3
    assert all(isinstance(prediction, Prediction) for prediction in result)
    assert all(isinstance(prediction.label, str) and isinstance(prediction.score, float) for prediction in result)


def test_list_of_images_gives_a_list_per_image_in_order(tiny_vit_dir, photos):
    names = ["chelsea", "astronaut", "coffee"]
    results = classify([photos[name] for name in names], model=str(tiny_vit_dir), top_k=2, precision="fp32")
    assert isinstance(results, list) and len(results) == 3
    for name, predictions in zip(names, results):
        assert len(predictions) == 2 and all(isinstance(p, Prediction) for p in predictions)
        alone = classify(photos[name], model=str(tiny_vit_dir), top_k=2, precision="fp32")
        assert_same_scores(predictions, alone, FP32_TOLERANCE)


def test_list_of_one_still_gives_a_list_of_lists(tiny_vit_dir, chelsea):
    results = classify([chelsea], model=str(tiny_vit_dir), top_k=2)
    assert len(results) == 1 and len(results[0]) == 2 and isinstance(results[0][0], Prediction)


def test_scores_are_probabilities_best_first_with_the_models_labels(tiny_vit_dir, tiny_labels, photos):
    for photo in photos.values():
        predictions = classify(photo, model=str(tiny_vit_dir), top_k=len(tiny_labels))
        scores = [p.score for p in predictions]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)  # softmax over every label
        assert sorted(p.label for p in predictions) == sorted(tiny_labels)


def test_top_k_larger_than_the_label_count_is_capped(tiny_vit_dir, tiny_labels, chelsea):
    predictions = classify(chelsea, model=str(tiny_vit_dir), top_k=50)
    assert len(predictions) == len(tiny_labels)
    assert len({p.label for p in predictions}) == len(tiny_labels)


def test_top_k_keeps_the_best_ones(tiny_vit_dir, tiny_labels, chelsea):
    everything = classify(chelsea, model=str(tiny_vit_dir), top_k=len(tiny_labels), precision="fp32")
    best_two = classify(chelsea, model=str(tiny_vit_dir), top_k=2, precision="fp32")
    assert [p.label for p in best_two] == [p.label for p in everything[:2]]


def test_different_photos_get_clearly_different_scores(tiny_vit_dir, tiny_labels, photos):
    # Guards the equality tests below: the tiny model is near-uniform, but not blind to its input.
    cat = scores_by_label(classify(photos["chelsea"], model=str(tiny_vit_dir), top_k=5, precision="fp32"))
    rocket = scores_by_label(classify(photos["rocket"], model=str(tiny_vit_dir), top_k=5, precision="fp32"))
    assert max(abs(cat[label] - rocket[label]) for label in tiny_labels) > 1e-3


# --- numbers: against plain transformers, and across precisions ---------------------------------------------


def test_fp32_matches_an_independent_transformers_computation(tiny_vit_dir, tiny_labels, photos):
    from transformers import ViTForImageClassification

    names = ["chelsea", "astronaut", "coffee", "rocket", "camera"]
    arrays = [photos[name] for name in names]
    # batch_size=2 makes the engine split the five photos over three batches
    results = classify(arrays, model=str(tiny_vit_dir), top_k=5, precision="fp32", batch_size=2)
    expected = reference_probabilities(tiny_vit_dir, ViTForImageClassification, arrays)
    for predictions, probabilities in zip(results, expected):
        assert_matches_reference(predictions, probabilities, tiny_labels)


def test_distilled_deit_loads_through_the_same_call(tiny_deit_dir, tiny_labels, photos):
    from transformers import DeiTForImageClassificationWithTeacher

    arrays = [photos["chelsea"], photos["coffee"]]
    results = classify(arrays, model=str(tiny_deit_dir), top_k=3, precision="fp32")
    expected = reference_probabilities(tiny_deit_dir, DeiTForImageClassificationWithTeacher, arrays)
    for predictions, probabilities in zip(results, expected):
        assert_matches_reference(predictions, probabilities, tiny_labels)


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_reduced_precision_agrees_with_fp32(tiny_vit_dir, photos, precision):
    for photo in photos.values():
        full = classify(photo, model=str(tiny_vit_dir), top_k=5, precision="fp32")
        reduced = classify(photo, model=str(tiny_vit_dir), top_k=5, precision=precision)
        assert_same_scores(reduced, full, BF16_TOLERANCE)


def test_multi_label_heads_use_sigmoid_and_others_softmax():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    single = scores_from_logits(logits, SimpleNamespace(problem_type="single_label_classification"))
    multi = scores_from_logits(logits, SimpleNamespace(problem_type="multi_label_classification"))
    torch.testing.assert_close(single, logits.softmax(dim=-1))
    torch.testing.assert_close(multi, logits.sigmoid())


# --- every kind of input gives the same answer as the plain RGB array ---------------------------------------


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


EQUIVALENT_INPUTS = {
    "pil": lambda rgb, path: Image.fromarray(rgb),
    "uint8-array": lambda rgb, path: rgb.copy(),
    "float-0-1-array": lambda rgb, path: rgb.astype(np.float64) / 255.0,
    "uint16-array": lambda rgb, path: rgb.astype(np.uint16) * 257,
    "rgba-array": lambda rgb, path: np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
    "path-str": lambda rgb, path: str(path),
    "path": lambda rgb, path: path,
    "bytes": lambda rgb, path: path.read_bytes(),
}


@pytest.mark.parametrize("kind", list(EQUIVALENT_INPUTS))
def test_every_input_kind_matches_the_rgb_array(tiny_vit_dir, chelsea, photo_path, kind):
    source = EQUIVALENT_INPUTS[kind](chelsea, photo_path)
    expected = classify(chelsea, model=str(tiny_vit_dir), top_k=5, precision="fp32")
    actual = classify(source, model=str(tiny_vit_dir), top_k=5, precision="fp32")
    assert_same_scores(actual, expected, 1e-6)


def test_greyscale_array_matches_the_same_picture_in_rgb(tiny_vit_dir, photos):
    grey = photos["camera"]
    assert grey.ndim == 2
    expected = classify(np.stack([grey] * 3, axis=-1), model=str(tiny_vit_dir), top_k=5, precision="fp32")
    actual = classify(grey, model=str(tiny_vit_dir), top_k=5, precision="fp32")
    assert_same_scores(actual, expected, 1e-6)


# --- argument checks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [0, -1, True, 2.5, "3"])
def test_bad_top_k_is_a_value_error(tiny_vit_dir, chelsea, top_k):
    with pytest.raises(ValueError, match="top_k"):
        classify(chelsea, model=str(tiny_vit_dir), top_k=top_k)


@pytest.mark.parametrize("batch_size", [0, -4])
def test_bad_batch_size_is_a_value_error(tiny_vit_dir, chelsea, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        classify(chelsea, model=str(tiny_vit_dir), batch_size=batch_size)


def test_unknown_precision_is_a_value_error(tiny_vit_dir, chelsea):
    with pytest.raises(ValueError, match="precision 'int3'"):
        classify(chelsea, model=str(tiny_vit_dir), precision="int3")


def test_empty_list_is_an_image_error(tiny_vit_dir):
    with pytest.raises(ImageError, match="No images"):
        classify([], model=str(tiny_vit_dir))


def test_unreadable_image_is_an_image_error_naming_it(tiny_vit_dir, tmp_path, chelsea):
    bad = tmp_path / "scribble.png"
    bad.write_text("not a picture")
    with pytest.raises(ImageError, match="scribble.png"):
        classify([chelsea, bad], model=str(tiny_vit_dir))


# --- many files: classify_files and its CSV -----------------------------------------------------------------


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return path


@pytest.fixture(scope="module")
def upload(tmp_path_factory, photos):
    """An upload as a user makes it: loose photos, one broken file, and a zip with the usual clutter."""
    folder = tmp_path_factory.mktemp("upload")
    Image.fromarray(photos["chelsea"]).save(folder / "chelsea.jpg")
    (folder / "broken.jpg").write_text("this was never a JPEG")
    Image.fromarray(photos["camera"]).save(folder / "camera.png")
    write_zip(
        folder / "album.zip",
        {
            "album/astronaut.png": png_bytes(photos["astronaut"]),
            "__MACOSX/album/._astronaut.png": b"\x00\x05\x16\x07 resource fork",
            "album/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "album/readme.txt": b"photos from the trip",
            "album/corrupt.png": b"\x89PNG\r\n\x1a\n but then nothing",
            "album/coffee.png": png_bytes(photos["coffee"]),
        },
    )
    files = [folder / "chelsea.jpg", folder / "broken.jpg", folder / "album.zip", folder / "camera.png"]
    expected_names = [
        "chelsea.jpg",
        "broken.jpg",
        "album.zip/album/astronaut.png",
        "album.zip/album/corrupt.png",
        "album.zip/album/coffee.png",
        "camera.png",
    ]
    sources = {
        "chelsea.jpg": folder / "chelsea.jpg",
        "album.zip/album/astronaut.png": photos["astronaut"],
        "album.zip/album/coffee.png": photos["coffee"],
        "camera.png": photos["camera"],
    }
    return SimpleNamespace(folder=folder, files=files, expected_names=expected_names, sources=sources)


@pytest.fixture(scope="module")
def upload_results(upload, tiny_vit_dir) -> list[FileResult]:
    return classify_files(upload.files, model=str(tiny_vit_dir), top_k=3, precision="fp32", batch_size=2)


def test_batch_keeps_input_order_and_expands_zips(upload, upload_results):
    assert [result.name for result in upload_results] == upload.expected_names


def test_batch_reports_bad_files_in_their_own_rows(upload_results):
    rows = {result.name: result for result in upload_results}
    for name in ("broken.jpg", "album.zip/album/corrupt.png"):
        assert not rows[name].ok
        assert rows[name].predictions == ()
        assert name.rsplit("/", 1)[-1] in rows[name].error


def test_batch_good_files_get_the_same_predictions_as_classify(upload, upload_results, tiny_vit_dir):
    rows = {result.name: result for result in upload_results}
    assert sorted(name for name, row in rows.items() if row.ok) == sorted(upload.sources)
    for name, source in upload.sources.items():
        assert rows[name].error is None and len(rows[name].predictions) == 3
        expected = classify(source, model=str(tiny_vit_dir), top_k=3, precision="fp32")
        assert [p.label for p in rows[name].predictions] == [p.label for p in expected]
        assert_same_scores(list(rows[name].predictions), expected, FP32_TOLERANCE)


def test_batch_refuses_a_zip_with_a_parent_directory_entry(tmp_path, photos, photo_path, tiny_vit_dir):
    evil = write_zip(tmp_path / "evil.zip", {"ok.png": png_bytes(photos["coffee"]), "../evil.png": b"x"})
    results = classify_files([photo_path, evil], model=str(tiny_vit_dir), top_k=2)
    assert [result.name for result in results] == ["chelsea.png", "evil.zip"]
    assert results[0].ok and len(results[0].predictions) == 2
    assert not results[1].ok and results[1].predictions == ()
    assert "evil.zip" in results[1].error and "unsafe entry '../evil.png'" in results[1].error


def test_batch_of_only_bad_files_reports_them_without_loading_a_model(tmp_path):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    # the model does not exist: it must not be needed when no image could be read
    results = classify_files([bad, tmp_path / "gone.jpg"], model=str(tmp_path / "no-model"))
    assert [r.ok for r in results] == [False, False]
    assert "empty.png" in results[0].error and "gone.jpg" in results[1].error


def test_batch_checks_its_arguments(tiny_vit_dir, photo_path):
    with pytest.raises(ValueError, match="No files"):
        classify_files([], model=str(tiny_vit_dir))
    with pytest.raises(ValueError, match="top_k"):
        classify_files([photo_path], model=str(tiny_vit_dir), top_k=0)
    with pytest.raises(ValueError, match="batch_size"):
        classify_files([photo_path], model=str(tiny_vit_dir), batch_size=0)


def test_batch_decodes_at_most_one_batch_ahead(upload, tiny_vit_dir, monkeypatch):
    # A zip may hold thousands of photos: decoded pixels must not pile up before classification.
    decoded, classified, waiting = [], [], []
    real_load_image, real_predict = batch_module.load_image, batch_module.predict_probabilities

    def counting_load_image(*args, **kwargs):
        image = real_load_image(*args, **kwargs)
        decoded.append(image)
        waiting.append(len(decoded) - len(classified))
        return image

    def counting_predict(loaded, images, **kwargs):
        classified.extend(images)
        return real_predict(loaded, images, **kwargs)

    monkeypatch.setattr(batch_module, "load_image", counting_load_image)
    monkeypatch.setattr(batch_module, "predict_probabilities", counting_predict)
    results = classify_files(upload.files, model=str(tiny_vit_dir), top_k=3, precision="fp32", batch_size=2)

    assert len(decoded) == len(classified) == sum(result.ok for result in results) == 4
    assert max(waiting) <= 2


def test_write_csv_has_the_header_and_one_row_per_image(upload_results, tmp_path):
    path = write_csv(upload_results, tmp_path / "results.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["file", "top1", "score", "top_k", "error"] == list(CSV_COLUMNS)
    assert len(rows) == len(upload_results)
    for row, result in zip(rows, upload_results):
        record = dict(zip(header, row))
        assert record["file"] == result.name
        if result.ok:
            top = result.predictions[0]
            assert record["top1"] == top.label and float(record["score"]) == pytest.approx(top.score, abs=1e-4)
            assert record["top_k"].count("(") == len(result.predictions) and record["error"] == ""
        else:
            assert record["top1"] == record["score"] == record["top_k"] == "" and record["error"] == result.error


def test_a_processor_set_to_a_non_square_size_classifies_with_interpolated_positions(tmp_path, tiny_config, chelsea):
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = tiny_config()
    torch.manual_seed(3)
    model = ViTForImageClassification(ViTConfig(**config))
    model.save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 32, "width": 48}).save_pretrained(tmp_path)

    predictions = classify(chelsea, model=str(tmp_path), top_k=5, precision="fp32")

    pixel_values = ViTImageProcessor.from_pretrained(tmp_path)(images=chelsea, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape[-2:] == (32, 48)
    with torch.no_grad():
        logits = model.eval()(pixel_values=pixel_values, interpolate_pos_encoding=True).logits[0]
    expected = logits.softmax(-1)
    assert [p.label for p in predictions] == [config["id2label"][int(i)] for i in expected.argsort(descending=True)]
    np.testing.assert_allclose([p.score for p in predictions], expected.sort(descending=True).values.numpy(), atol=1e-5)


def test_classify_files_takes_one_path_as_one_file(tiny_vit_dir, photo_path):
    results = classify_files(str(photo_path), model=str(tiny_vit_dir), top_k=1)
    assert [result.name for result in results] == [photo_path.name] and results[0].ok


def test_a_damaged_zip_entry_is_named_in_the_batch_row(tiny_vit_dir, photo_path, tmp_path):
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(photo_path, "cats/one.png")
    payload = bytearray(archive.read_bytes())
    start = payload.index(b"cats/one.png") + len("cats/one.png") + 40  # inside the compressed data
    payload[start : start + 64] = bytes(64)
    archive.write_bytes(bytes(payload))
    results = classify_files([photo_path, archive], model=str(tiny_vit_dir), top_k=1)
    assert results[0].ok
    assert results[1].name == "damaged.zip/cats/one.png"
    assert "'damaged.zip/cats/one.png' cannot be unpacked" in results[1].error


# ---- what ran: RunInfo -------------------------------------------------------------------------------------------


def test_classify_reports_what_it_ran_on_once(tiny_vit_dir, chelsea, empty_model_cache):
    runs, loads = [], []
    predictions = classify(
        chelsea, model=str(tiny_vit_dir), precision="fp32", device="cpu", on_load=loads.append, on_run=runs.append
    )
    assert predictions and loads == [str(tiny_vit_dir.resolve())]
    [run] = runs
    assert run.model == str(tiny_vit_dir.resolve()) and run.device == "cpu" and run.dtype == "float32"
    assert run.milliseconds >= 0
    classify(chelsea, model=str(tiny_vit_dir), precision="bf16", device="cpu", on_run=runs.append)
    assert runs[-1].dtype == "bfloat16" and len(runs) == 2
    classify(chelsea, model=str(tiny_vit_dir), precision="fp32", device="cpu", on_load=loads.append)
    assert len(loads) == 1  # in memory already: nothing to announce


def test_classify_files_reports_one_run_and_none_when_nothing_could_be_read(tiny_vit_dir, photo_files, tmp_path):
    runs = []
    results = classify_files(
        [photo_files["chelsea"], photo_files["coffee"]],
        model=str(tiny_vit_dir),
        precision="fp32",
        batch_size=1,
        on_run=runs.append,
    )
    assert all(result.ok for result in results)
    [run] = runs
    assert run.model == str(tiny_vit_dir.resolve()) and run.dtype == "float32" and run.milliseconds >= 0
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    classify_files([broken], model=str(tiny_vit_dir), on_run=runs.append)
    assert len(runs) == 1  # no file read, no model ran


def test_milliseconds_time_the_computation_and_not_the_load(tiny_vit_dir, chelsea, empty_model_cache, monkeypatch):
    import time

    from core import models

    original = models._from_pretrained

    def slow_load(*args, **kwargs):
        time.sleep(0.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(models, "_from_pretrained", slow_load)
    runs = []
    started = time.perf_counter()
    classify(chelsea, model=str(tiny_vit_dir), precision="fp32", on_run=runs.append)
    total_ms = (time.perf_counter() - started) * 1000
    assert total_ms >= 500 and runs[0].milliseconds < total_ms - 400
