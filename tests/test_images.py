"""core.images: every kind of input becomes a decoded RGB PIL image, or an ImageError that names it."""

from __future__ import annotations

import gc
import io
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from core import ImageError, load_image
from core import images as images_module
from core.images import load_images
from core.zips import read_zip_images

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
EXIF_ORIENTATION = 0x0112


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int32)


def mean_colour(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return pixels(image.crop(box)).reshape(-1, 3).mean(axis=0)


def assert_rgb(image: Image.Image, size: tuple[int, int]) -> None:
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == size


def stored(path: Path) -> SimpleNamespace:
    """What PIL itself reads from a file's header, so a test can check it wrote what it meant to."""
    with Image.open(path) as image:
        return SimpleNamespace(
            mode=image.mode, size=image.size, info=dict(image.info), n_frames=getattr(image, "n_frames", 1)
        )


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return path


# --- numpy arrays -------------------------------------------------------------------------------------------


def test_uint8_rgb_array_keeps_its_pixels(chelsea):
    image = load_image(chelsea)
    assert_rgb(image, (chelsea.shape[1], chelsea.shape[0]))
    np.testing.assert_array_equal(pixels(image), chelsea)


def test_greyscale_array_becomes_three_equal_channels(photos):
    grey = photos["camera"]
    image = load_image(grey)
    assert_rgb(image, (grey.shape[1], grey.shape[0]))
    np.testing.assert_array_equal(pixels(image), np.stack([grey] * 3, axis=-1))


def test_single_channel_array_is_read_as_greyscale(photos):
    grey = photos["camera"]
    np.testing.assert_array_equal(pixels(load_image(grey[:, :, None])), pixels(load_image(grey)))


def test_float_array_in_unit_range_is_scaled_to_0_255(chelsea):
    # skimage's convention: floats in [0, 1]
    np.testing.assert_array_equal(pixels(load_image(chelsea / 255.0)), chelsea)


def test_float_array_beyond_unit_range_is_read_as_0_255(chelsea):
    np.testing.assert_array_equal(pixels(load_image(chelsea.astype(np.float32))), chelsea)


def test_uint16_array_is_scaled_not_clipped(chelsea):
    np.testing.assert_array_equal(pixels(load_image(chelsea.astype(np.uint16) * 257)), chelsea)


def test_opaque_rgba_array_matches_rgb(chelsea):
    rgba = np.dstack([chelsea, np.full(chelsea.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(pixels(load_image(rgba)), chelsea)


def test_bool_array_becomes_black_and_white():
    mask = np.zeros((4, 6), dtype=bool)
    mask[:, 3:] = True
    result = pixels(load_image(mask))
    assert (result[:, :3] == 0).all() and (result[:, 3:] == 255).all()


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.full((4, 4, 3), np.nan), "NaN"),
    ],
    ids=["empty", "two-channels", "four-dims", "nan"],
)
def test_unusable_arrays_are_refused(array, words):
    with pytest.raises(ImageError, match=words):
        load_image(array)


# --- PIL modes ----------------------------------------------------------------------------------------------


def test_l_mode_becomes_rgb_with_same_levels(photos):
    grey = photos["camera"]
    image = load_image(Image.fromarray(grey, mode="L"))
    np.testing.assert_array_equal(pixels(image), np.stack([grey] * 3, axis=-1))


def test_la_mode_transparent_pixels_become_white():
    levels = Image.new("L", (8, 4), 80)
    alpha = Image.new("L", (8, 4), 255)
    alpha.paste(0, (0, 0, 4, 4))  # left half fully transparent
    result = pixels(load_image(Image.merge("LA", (levels, alpha))))
    assert (result[:, :4] == 255).all()
    assert (result[:, 4:] == 80).all()


def test_rgba_mode_is_composited_on_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[:, :, :3] = RED
    rgba[:, 0, 3] = 0  # transparent -> white
    rgba[:, 1, 3] = 128  # half red over white
    rgba[:, 2, 3] = 255  # opaque red
    result = pixels(load_image(Image.fromarray(rgba, mode="RGBA")))
    assert (result[:, 0] == WHITE).all()
    np.testing.assert_allclose(result[:, 1], [[255, 127, 127]] * 2, atol=2)
    assert (result[:, 2] == RED).all()


def test_palette_png_with_transparency_becomes_white_where_transparent(tmp_path):
    palette_image = Image.new("P", (8, 4), 0)
    palette_image.putpalette([0, 0, 0] + list(RED) + [0, 0, 0] * 254)  # index 0 black (transparent), 1 red
    palette_image.paste(1, (4, 0, 8, 4))
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)
    assert stored(path).mode == "P" and "transparency" in stored(path).info

    result = pixels(load_image(path))
    assert (result[:, :4] == WHITE).all()  # not black: the transparency was honoured
    assert (result[:, 4:] == RED).all()


def test_cmyk_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # no cyan, full magenta + yellow = red
    assert (pixels(load_image(cmyk)) == RED).all()
    path = tmp_path / "cmyk.tif"
    cmyk.save(path)
    assert (pixels(load_image(path)) == RED).all()


def test_16_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    levels = np.array([[0, 256, 16384], [32768, 49152, 65535]], dtype=np.uint16)
    path = tmp_path / "scan16.png"
    Image.fromarray(levels).save(path)
    assert stored(path).mode.startswith("I")  # really a 16-bit file, not one PIL made 8-bit

    image = load_image(path)
    assert_rgb(image, (3, 2))
    expected = np.round(levels / 65535.0 * 255.0)
    result = pixels(image)
    for channel in range(3):
        np.testing.assert_allclose(result[:, :, channel], expected, atol=1)
    assert result.min() == 0 and result.max() == 255


def test_a_dark_16_bit_scan_stays_dark(tmp_path):
    # Every level is under 256, yet the file is 16-bit: 200/65535 of full scale is almost black.
    levels = np.full((2, 2), 200, dtype=np.uint16)
    path = tmp_path / "dark16.png"
    Image.fromarray(levels).save(path)
    assert pixels(load_image(path)).max() <= 1


def test_a_folder_is_not_taken_for_a_missing_file(tmp_path):
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)


# --- files: EXIF, animation, limits, damage ----------------------------------------------------------------


def left_red_right_blue(width: int = 60, height: int = 30) -> Image.Image:
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_exif_orientation_6_is_applied(tmp_path, as_bytes):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored sideways; viewers rotate 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    left_red_right_blue(60, 30).save(path, exif=exif, quality=95)
    assert stored(path).size == (60, 30)

    image = load_image(path.read_bytes() if as_bytes else path)

    assert_rgb(image, (30, 60))  # width and height swapped
    top, bottom = mean_colour(image, (0, 0, 30, 30)), mean_colour(image, (0, 30, 30, 60))
    assert top[0] > 200 and top[2] < 60  # the stored left (red) side is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_image_without_exif_orientation_is_not_rotated(tmp_path):
    path = tmp_path / "plain.jpg"
    left_red_right_blue(60, 30).save(path, quality=95)
    image = load_image(path)
    assert_rgb(image, (60, 30))
    assert mean_colour(image, (0, 0, 30, 30))[0] > 200


def two_frame_gif(path: Path) -> Path:
    first, second = Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert stored(path).n_frames == 2
    return path


def test_animated_gif_gives_its_first_frame(tmp_path):
    image = load_image(two_frame_gif(tmp_path / "blink.gif"))
    assert_rgb(image, (16, 16))
    assert (pixels(image) == RED).all()


def test_animated_pil_image_on_a_later_frame_gives_the_first_frame(tmp_path):
    with Image.open(two_frame_gif(tmp_path / "blink.gif")) as animation:
        animation.seek(1)
        assert (pixels(animation.convert("RGB")) == BLUE).all()
        assert (pixels(load_image(animation)) == RED).all()


@pytest.fixture
def decoder_calls(monkeypatch) -> list:
    """Records every time PIL creates a pixel decoder, i.e. starts decoding image data."""
    calls = []
    real_getdecoder = Image._getdecoder

    def spy(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else None)
        return real_getdecoder(*args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", spy)
    return calls


def test_image_over_pixel_limit_is_refused_before_decoding(tmp_path, decoder_calls):
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), RED).save(path)

    with pytest.raises(ImageError) as caught:
        load_image(path, max_pixels=10_000)

    assert decoder_calls == []  # refused from the header alone
    message = str(caught.value)
    assert "wide.png" in message and "200x100" in message
    size, limit = re.search(r"= ([\d.]+) megapixels; the limit is ([\d.]+) megapixels", message).groups()
    assert float(size) == pytest.approx(0.02) and float(limit) == pytest.approx(0.01)

    # the same file under a big enough limit decodes (so the spy above does see decoding)
    load_image(path, max_pixels=20_000)
    assert decoder_calls


def forged_png_header(path: Path, width: int, height: int) -> Path:
    """A small real PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    data = bytearray(png_bytes(Image.new("L", (8, 8), 0)))
    ihdr_start = 8 + 4  # signature, then the chunk length
    assert data[ihdr_start : ihdr_start + 4] == b"IHDR"
    body = (
        bytes(data[ihdr_start : ihdr_start + 4])
        + struct.pack(">II", width, height)
        + bytes(data[ihdr_start + 12 : ihdr_start + 17])
    )
    data[ihdr_start : ihdr_start + 17] = body
    data[ihdr_start + 17 : ihdr_start + 21] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_is_refused_by_default_limit(tmp_path, decoder_calls, monkeypatch):
    side = 60_000  # 3600 megapixels claimed by an 80-byte file: PIL itself refuses to open it
    assert side * side > images_module.MAX_PIXELS
    path = forged_png_header(tmp_path / "bomb.png", side, side)
    with monkeypatch.context() as patched:
        patched.setattr(Image, "MAX_IMAGE_PIXELS", None)
        assert stored(path).size == (side, side)

    with pytest.raises(ImageError, match=r"bomb\.png' is 3600 megapixels; the limit is 50 megapixels"):
        load_image(path)
    assert decoder_calls == []


def test_an_image_over_the_limit_but_under_pils_own_is_refused_with_its_size(tmp_path, decoder_calls):
    side = 10_000  # 100 megapixels: over our 50 MP default, under PIL's ~179 MP refusal
    path = forged_png_header(tmp_path / "scan.png", side, side)
    with pytest.raises(ImageError, match=r"scan\.png' is 10000x10000 = 100 megapixels; the limit is 50"):
        load_image(path)
    assert decoder_calls == []


def test_importing_the_engine_leaves_pils_own_bomb_check_in_place():
    assert Image.MAX_IMAGE_PIXELS is not None


def truncated_jpeg(path: Path, photo: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=90)
    whole = buffer.getvalue()
    path.write_bytes(whole[: len(whole) // 2])


BAD_FILES = {
    "empty.jpg": lambda path, photo: path.write_bytes(b""),
    "half.jpg": truncated_jpeg,
    "notes.jpg": lambda path, photo: path.write_text("shopping list: milk, eggs\n"),
}


@pytest.mark.parametrize("file_name", sorted(BAD_FILES))
def test_bad_file_raises_image_error_naming_it(tmp_path, chelsea, file_name):
    path = tmp_path / file_name
    BAD_FILES[file_name](path, chelsea)
    assert path.exists()

    with pytest.raises(ImageError) as caught:
        load_image(path)

    assert isinstance(caught.value, ValueError)
    assert file_name in str(caught.value)


def test_truncated_jpeg_is_reported_as_damaged_not_padded(tmp_path, chelsea):
    path = tmp_path / "half.jpg"
    truncated_jpeg(path, chelsea)
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(path)


def test_missing_file_raises_image_error_naming_it(tmp_path):
    with pytest.raises(ImageError, match=r"'ghost\.png'.*no such file"):
        load_image(tmp_path / "ghost.png")


def test_files_are_closed_after_reading_even_when_refused(tmp_path, chelsea):
    gif = two_frame_gif(tmp_path / "blink.gif")  # PIL keeps animated files open for the later frames
    half = tmp_path / "half.jpg"
    truncated_jpeg(half, chelsea)
    big = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(big)

    gc.collect()  # what earlier tests left for the collector (a web server's event loop) is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        load_image(gif)
        for path, limit in ((half, None), (big, 100)):
            try:
                load_image(path, max_pixels=limit)
            except ImageError:
                pass
        gc.collect()

    unclosed = [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]
    assert [message for message in unclosed if "file" in message] == [], unclosed


@pytest.mark.parametrize("payload", [b"", b"definitely not an image"], ids=["empty", "text"])
def test_bad_bytes_raise_image_error(payload):
    with pytest.raises(ImageError, match="uploaded data"):
        load_image(payload)


def test_name_argument_is_used_in_messages():
    with pytest.raises(ImageError, match="holiday.jpg"):
        load_image(b"nope", name="holiday.jpg")


def test_unsupported_input_type_is_refused():
    with pytest.raises(ImageError, match="Cannot read an image from a int"):
        load_image(42)


def test_path_str_path_and_bytes_read_the_same_pixels(photo_path, chelsea):
    for source in (photo_path, str(photo_path), photo_path.read_bytes(), bytearray(photo_path.read_bytes())):
        np.testing.assert_array_equal(pixels(load_image(source)), chelsea)


def test_load_images_one_source_gives_a_list_of_one_and_refuses_empty(chelsea):
    assert len(load_images(chelsea)) == 1
    assert len(load_images([chelsea, chelsea[:10]])) == 2
    with pytest.raises(ImageError, match="No images"):
        load_images([])


# --- zips ---------------------------------------------------------------------------------------------------


def test_zip_skips_hidden_files_resource_forks_and_non_images(tmp_path):
    picture = png_bytes(Image.new("RGB", (4, 4), RED))
    path = make_zip(
        tmp_path / "holiday.zip",
        {
            "a.png": picture,
            "__MACOSX/._a.png": b"resource fork",
            ".DS_Store": b"finder junk",
            "notes.txt": b"not an image",
            "trip/.ipynb_checkpoints/b.png": picture,
            "trip/b.JPG": picture,
        },
    )
    entries = read_zip_images(path)
    assert [name for name, _ in entries] == ["a.png", "trip/b.JPG"]
    assert entries[0][1] == picture


def test_zip_from_bytes_is_read_like_a_file(tmp_path):
    picture = png_bytes(Image.new("RGB", (4, 4), RED))
    path = make_zip(tmp_path / "one.zip", {"x.png": picture})
    assert read_zip_images(path.read_bytes()) == [("x.png", picture)]


@pytest.mark.parametrize("entry", ["../evil.png", "pics/../../evil.png", "/etc/evil.png"])
def test_zip_with_unsafe_entry_is_refused(tmp_path, entry):
    picture = png_bytes(Image.new("RGB", (4, 4), RED))
    path = make_zip(tmp_path / "sneaky.zip", {"fine.png": picture, entry: picture})
    with pytest.raises(ImageError, match="unsafe entry") as caught:
        read_zip_images(path)
    assert entry in str(caught.value) and "sneaky.zip" in str(caught.value)


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_bytes(b"PK but not really")
    with pytest.raises(ImageError, match=r"fake\.zip is not a readable zip"):
        read_zip_images(path)


def test_zip_without_images_is_refused(tmp_path):
    path = make_zip(tmp_path / "docs.zip", {"readme.txt": b"hello", ".DS_Store": b""})
    with pytest.raises(ImageError, match="holds no image files"):
        read_zip_images(path)


def test_zip_over_file_count_or_size_limit_is_refused(tmp_path):
    picture = png_bytes(Image.new("RGB", (4, 4), RED))
    path = make_zip(tmp_path / "many.zip", {f"{index}.png": picture for index in range(3)})
    with pytest.raises(ImageError, match="holds 3 files; the limit is 2"):
        read_zip_images(path, max_files=2)
    with pytest.raises(ImageError, match="unpacks to"):
        read_zip_images(path, max_total_bytes=len(picture))
    assert len(read_zip_images(path, max_files=3, max_total_bytes=3 * len(picture))) == 3
