"""core.caption on real photos, with tiny random ViT-GPT2 and BLIP captioners built offline, loaded by the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_captioners import save_tiny_blip, save_tiny_vit_gpt2

from core.caption import caption, caption_attention, load_captioner
from core.models import ModelLoadError


@pytest.fixture(scope="module")
def tiny_vit_gpt2_dir(tmp_path_factory) -> Path:
    return save_tiny_vit_gpt2(tmp_path_factory.mktemp("tiny-vit-gpt2"))


@pytest.fixture(scope="module")
def reference(tiny_vit_gpt2_dir):
    """The model-card recipe with plain transformers: image processor, generate, batch_decode, in fp32."""
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    model = VisionEncoderDecoderModel.from_pretrained(tiny_vit_gpt2_dir).eval()
    processor = ViTImageProcessor.from_pretrained(tiny_vit_gpt2_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_vit_gpt2_dir)

    def run(arrays: list[np.ndarray], **settings) -> list[str]:
        from PIL import Image

        rgb = [Image.fromarray(array).convert("RGB") for array in arrays]
        pixel_values = processor(images=rgb, return_tensors="pt").pixel_values
        with torch.no_grad():
            ids = model.generate(pixel_values, **settings)
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    return run


def test_one_image_in_gives_a_string(tiny_vit_gpt2_dir, chelsea):
    result = caption(chelsea, model=str(tiny_vit_gpt2_dir), max_new_tokens=8, precision="fp32")
    assert isinstance(result, str)
    assert result  # a random tiny model still writes some tokens


def test_a_list_in_gives_a_list(tiny_vit_gpt2_dir, photos):
    arrays = list(photos.values())
    result = caption(arrays, model=str(tiny_vit_gpt2_dir), max_new_tokens=8, precision="fp32")
    assert isinstance(result, list) and len(result) == len(arrays)
    assert all(isinstance(text, str) for text in result)
    assert caption(arrays[:1], model=str(tiny_vit_gpt2_dir), max_new_tokens=8, precision="fp32") == result[:1]


@pytest.mark.parametrize("num_beams", [1, 3], ids=["greedy", "beam"])
def test_matches_plain_generate(tiny_vit_gpt2_dir, photos, reference, num_beams):
    arrays = list(photos.values())
    expected = reference(arrays, max_new_tokens=10, num_beams=num_beams, do_sample=False)
    # batch_size 2 splits the five photos unevenly: batching must not change any caption.
    actual = caption(
        arrays, model=str(tiny_vit_gpt2_dir), max_new_tokens=10, num_beams=num_beams, precision="fp32", batch_size=2
    )
    assert actual == expected


def test_generation_options_reach_generate(tiny_vit_gpt2_dir, photos, reference):
    arrays = list(photos.values())[:2]
    settings = dict(max_new_tokens=12, num_beams=2, repetition_penalty=1.5, no_repeat_ngram_size=2)
    expected = reference(arrays, do_sample=False, **settings)
    assert caption(arrays, model=str(tiny_vit_gpt2_dir), precision="fp32", **settings) == expected
    assert expected != reference(arrays, max_new_tokens=12, num_beams=2, do_sample=False)  # the options matter


def test_num_return_sequences_gives_that_many(tiny_vit_gpt2_dir, photos, reference):
    arrays = [photos["chelsea"], photos["coffee"]]
    result = caption(
        arrays, model=str(tiny_vit_gpt2_dir), max_new_tokens=8, num_beams=3, num_return_sequences=2, precision="fp32"
    )
    expected = reference(arrays, max_new_tokens=8, num_beams=3, num_return_sequences=2, do_sample=False)
    assert result == [expected[0:2], expected[2:4]]
    single = caption(
        photos["chelsea"],
        model=str(tiny_vit_gpt2_dir),
        max_new_tokens=8,
        num_beams=3,
        num_return_sequences=2,
        precision="fp32",
    )
    assert isinstance(single, list) and len(single) == 2 and single == expected[0:2]


def test_sampling_is_reproducible_with_a_seed(tiny_vit_gpt2_dir, chelsea):
    def sample(seed: int) -> list[str]:
        torch.manual_seed(seed)
        return caption(
            chelsea,
            model=str(tiny_vit_gpt2_dir),
            max_new_tokens=12,
            num_beams=1,
            do_sample=True,
            top_p=0.9,
            temperature=1.5,
            num_return_sequences=4,
            precision="fp32",
        )

    first = sample(0)
    assert sample(0) == first
    assert len(first) == 4
    assert any(sample(seed) != first for seed in (1, 2, 3))  # sampling really samples


def test_bf16_runs(tiny_vit_gpt2_dir, chelsea):
    loaded = load_captioner(str(tiny_vit_gpt2_dir), precision="bf16")
    assert loaded.dtype == torch.bfloat16
    assert isinstance(caption(chelsea, model=str(tiny_vit_gpt2_dir), max_new_tokens=5, precision="bf16"), str)


def test_loads_once(tiny_vit_gpt2_dir, empty_model_cache):
    first = load_captioner(str(tiny_vit_gpt2_dir), precision="fp32")
    assert load_captioner(str(tiny_vit_gpt2_dir), precision="fp32") is first
    assert not first.processor.conditional


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(max_new_tokens=0), "max_new_tokens must be a whole number of at least 1"),
        (dict(num_beams=0), "num_beams must be a whole number of at least 1"),
        (dict(num_beams=2, num_return_sequences=3), "cannot exceed num_beams"),
        (dict(num_return_sequences=0), "num_return_sequences must be a whole number"),
        (dict(do_sample=True, temperature=0), "temperature must be greater than 0"),
        (dict(do_sample=True, temperature=-1.0), "temperature must be greater than 0"),
        (dict(do_sample=True, top_p=0), r"top_p must be in \(0, 1\]"),
        (dict(do_sample=True, top_p=1.5), r"top_p must be in \(0, 1\]"),
        (dict(batch_size=0), "batch_size must be a whole number"),
    ],
)
def test_bad_settings_raise_value_error(tiny_vit_gpt2_dir, chelsea, kwargs, message):
    with pytest.raises(ValueError, match=message):
        caption(chelsea, model=str(tiny_vit_gpt2_dir), **kwargs)


def test_more_sequences_than_beams_is_fine_when_sampling(tiny_vit_gpt2_dir, chelsea):
    result = caption(
        chelsea,
        model=str(tiny_vit_gpt2_dir),
        max_new_tokens=5,
        num_beams=1,
        do_sample=True,
        num_return_sequences=3,
        precision="fp32",
    )
    assert len(result) == 3


def test_empty_image_list_raises(tiny_vit_gpt2_dir):
    with pytest.raises(ValueError, match="No images given"):
        caption([], model=str(tiny_vit_gpt2_dir))


def test_prompt_on_vit_gpt2_says_it_needs_blip(tiny_vit_gpt2_dir, chelsea):
    with pytest.raises(ValueError, match="conditional captioning needs a BLIP model"):
        caption(chelsea, model=str(tiny_vit_gpt2_dir), prompt="a photo of", precision="fp32")


def test_a_classifier_is_not_a_captioner(tiny_vit_dir, chelsea):
    with pytest.raises(ModelLoadError, match="not a captioner"):
        caption(chelsea, model=str(tiny_vit_dir))


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory) -> Path:
    return save_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture(scope="module")
def blip_reference(tiny_blip_dir):
    """The BLIP model-card recipe with plain transformers, in fp32."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(tiny_blip_dir).eval()
    processor = BlipProcessor.from_pretrained(tiny_blip_dir)

    def run(arrays: list[np.ndarray], prompt: str | None = None, **settings) -> list[str]:
        from PIL import Image

        rgb = [Image.fromarray(array).convert("RGB") for array in arrays]
        text = [prompt] * len(rgb) if prompt else None
        inputs = processor(images=rgb, text=text, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(**inputs, **settings)
        return [caption.strip() for caption in processor.batch_decode(ids, skip_special_tokens=True)]

    return run


@pytest.mark.parametrize("num_beams", [1, 3], ids=["greedy", "beam"])
def test_blip_matches_plain_generate(tiny_blip_dir, photos, blip_reference, num_beams):
    arrays = list(photos.values())
    expected = blip_reference(arrays, max_new_tokens=8, num_beams=num_beams, do_sample=False)
    actual = caption(
        arrays, model=str(tiny_blip_dir), max_new_tokens=8, num_beams=num_beams, precision="fp32", batch_size=2
    )
    assert actual == expected
    assert all(actual)


def test_blip_continues_a_prompt(tiny_blip_dir, photos, blip_reference):
    arrays = [photos["chelsea"], photos["rocket"]]
    expected = blip_reference(arrays, prompt="a photo of", max_new_tokens=6, num_beams=3, do_sample=False)
    actual = caption(arrays, model=str(tiny_blip_dir), prompt="a photo of", max_new_tokens=6, precision="fp32")
    assert actual == expected
    assert all(text.startswith("a photo of") for text in actual)  # BLIP's output repeats the prompt
    assert actual != caption(arrays, model=str(tiny_blip_dir), max_new_tokens=6, precision="fp32")


def test_blip_returns_several_sequences(tiny_blip_dir, chelsea, blip_reference):
    result = caption(
        chelsea, model=str(tiny_blip_dir), max_new_tokens=6, num_beams=3, num_return_sequences=3, precision="fp32"
    )
    assert result == blip_reference([chelsea], max_new_tokens=6, num_beams=3, num_return_sequences=3)
    assert load_captioner(str(tiny_blip_dir), precision="fp32").processor.conditional


# ---- where each word came from -----------------------------------------------------------------------------


def generate_cross_attention_maps(folder: Path, array: np.ndarray, max_new_tokens: int):
    """Independent reference: greedy generate() with output_attentions, each step's cross-attention of the new
    position averaged over layers and heads, CLS dropped, max 1; with the decoded caption."""
    from PIL import Image
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    model = VisionEncoderDecoderModel.from_pretrained(folder, attn_implementation="eager").eval()
    pixel_values = ViTImageProcessor.from_pretrained(folder)(
        images=Image.fromarray(array), return_tensors="pt"
    ).pixel_values
    with torch.no_grad():
        out = model.generate(
            pixel_values,
            max_new_tokens=max_new_tokens,
            num_beams=1,
            do_sample=False,
            output_attentions=True,
            return_dict_in_generate=True,
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    new_tokens = out.sequences[0, 1:]
    keep = [i for i, token in enumerate(new_tokens.tolist()) if token not in tokenizer.all_special_ids]
    maps = []
    for step in keep:
        step_attention = torch.stack([layer[0, :, -1] for layer in out.cross_attentions[step]]).mean(dim=(0, 1))
        patches = step_attention[1:].reshape(4, 4).double()
        maps.append((patches / patches.max()).numpy())
    text = tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
    return text, np.stack(maps)


def test_word_maps_match_generate_cross_attentions(tiny_vit_gpt2_dir, chelsea):
    from core.caption import caption_attention

    expected_text, expected_maps = generate_cross_attention_maps(tiny_vit_gpt2_dir, chelsea, max_new_tokens=8)
    result = caption_attention(chelsea, model=str(tiny_vit_gpt2_dir), max_new_tokens=8, num_beams=1, precision="fp32")
    assert result.caption == expected_text
    assert len(result.tokens) == len(result.maps) == len(expected_maps)
    np.testing.assert_allclose(result.maps, expected_maps, atol=1e-5)
    assert result.grid_size == (4, 4) and result.model_input.size == (32, 32)


def test_word_maps_of_a_typed_caption(tiny_vit_gpt2_dir, chelsea):
    from core.caption import caption_attention

    result = caption_attention(chelsea, "a cat sitting on a couch", model=str(tiny_vit_gpt2_dir), precision="fp32")
    assert "".join(result.tokens).replace(" ", "") == "acatsittingonacouch"
    assert result.maps.shape == (len(result.tokens), 4, 4)
    assert np.allclose(result.maps.max(axis=(1, 2)), 1) and result.maps.min() >= 0
    # Each word is predicted from a different decoder position, so the maps are not all the same.
    assert not np.allclose(result.maps[0], result.maps[-1])
    last_layer = caption_attention(
        chelsea, "a cat sitting on a couch", model=str(tiny_vit_gpt2_dir), layer=2, precision="fp32"
    )
    assert not np.allclose(last_layer.maps, result.maps)


def test_blip_word_maps(tiny_blip_dir, chelsea):
    from core.caption import caption_attention

    result = caption_attention(chelsea, "a photo of a cat", model=str(tiny_blip_dir), precision="fp32")
    assert result.tokens == ("a", "photo", "of", "a", "cat")
    assert result.maps.shape == (5, 4, 4) and np.allclose(result.maps.max(axis=(1, 2)), 1)


@pytest.mark.parametrize(
    "text, layer, message",
    [
        ("   ", None, "No caption to map"),
        ("a cat", 3, "The decoder has 2 layers: pick a layer from 1 to 2"),
        ("a cat", -1, "The decoder has 2 layers: pick a layer from 1 to 2"),
    ],
)
def test_word_map_bad_inputs(tiny_vit_gpt2_dir, chelsea, text, layer, message):
    from core.caption import caption_attention

    with pytest.raises(ValueError, match=message):
        caption_attention(chelsea, text, model=str(tiny_vit_gpt2_dir), layer=layer)


# ---- many files ----------------------------------------------------------------------------------------------


def test_caption_files_rows_match_caption(tmp_path, tiny_vit_gpt2_dir, photos, photo_files):
    import io
    import zipfile

    from PIL import Image

    from core.batch import caption_files
    from ui.shared.batch import CAPTION_CSV_COLUMNS, write_caption_csv

    (tmp_path / "broken.jpg").write_text("never a JPEG")
    buffer = io.BytesIO()
    Image.fromarray(photos["rocket"]).save(buffer, format="PNG")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as archive:
        archive.writestr("trip/rocket.png", buffer.getvalue())
        archive.writestr("trip/notes.png", b"not a picture")
    files = [photo_files["chelsea"], tmp_path / "broken.jpg", tmp_path / "more.zip"]

    results = caption_files(
        files,
        model=str(tiny_vit_gpt2_dir),
        max_new_tokens=6,
        num_beams=2,
        num_return_sequences=2,
        batch_size=2,
        precision="fp32",
    )

    assert [r.name for r in results] == [
        "chelsea.jpg",
        "broken.jpg",
        "more.zip/trip/rocket.png",
        "more.zip/trip/notes.png",
    ]
    assert [r.ok for r in results] == [True, False, True, False]
    assert "broken.jpg" in results[1].error and "notes.png" in results[3].error
    expected = caption(
        [photo_files["chelsea"], photos["rocket"]],
        model=str(tiny_vit_gpt2_dir),
        max_new_tokens=6,
        num_beams=2,
        num_return_sequences=2,
        precision="fp32",
    )
    assert [list(results[0].captions), list(results[2].captions)] == expected

    csv_path = write_caption_csv(results, tmp_path / "captions.csv")
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(CAPTION_CSV_COLUMNS) and len(lines) == 5
    assert lines[1].startswith(f"chelsea.jpg,{expected[0][0]},{expected[0][1]}")


def test_caption_files_bad_settings_and_no_files(tiny_vit_gpt2_dir, photo_files):
    from core.batch import caption_files

    with pytest.raises(ValueError, match="No files given"):
        caption_files([], model=str(tiny_vit_gpt2_dir))
    with pytest.raises(ValueError, match="num_beams must be a whole number"):
        caption_files([photo_files["chelsea"]], model=str(tiny_vit_gpt2_dir), num_beams=0)


# ---- what the front ends call --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("greedy", dict(num_beams=1, do_sample=False)),
        ("beam search", dict(num_beams=4, do_sample=False)),
        ("sampling", dict(num_beams=1, do_sample=True, top_p=0.8, temperature=0.7)),
    ],
)
def test_decoding_settings_keep_only_what_the_strategy_uses(strategy, expected):
    from ui.shared.caption import decoding_settings

    settings = decoding_settings(strategy, num_beams=4, top_p=0.8, temperature=0.7, max_new_tokens=12)
    assert settings == dict(max_new_tokens=12, num_return_sequences=1, **expected)
    assert (
        decoding_settings(strategy, repetition_penalty=1.3, no_repeat_ngram_size=2).items()
        >= dict(repetition_penalty=1.3, no_repeat_ngram_size=2).items()
    )
    with pytest.raises(ValueError, match="Unknown decoding 'nucleus'"):
        decoding_settings("nucleus")


def test_prompt_support_from_config(tiny_vit_gpt2_dir, tiny_blip_dir, tmp_path):
    from core.caption import prompt_support

    assert prompt_support(str(tiny_blip_dir)) is True
    assert prompt_support(str(tiny_vit_gpt2_dir)) is False
    assert prompt_support(str(tmp_path / "nowhere")) is None
    assert prompt_support("someone/not-downloaded-captioner") is None


def test_word_overlays_caption_each_word(tiny_vit_gpt2_dir, photos):
    from core.caption import caption_attention
    from ui.shared.caption import word_overlays

    result = caption_attention(photos["astronaut"], "an astronaut in a white suit", model=str(tiny_vit_gpt2_dir))
    tiles = word_overlays(result, photos["astronaut"], max_side=128)
    assert [label for _, label in tiles] == [f"{i}. {token}" for i, token in enumerate(result.tokens, start=1)]
    assert all(max(tile.size) == 128 for tile, _ in tiles)
    assert word_overlays(result)[0][0].size == result.model_input.size


def test_captions_report_what_they_ran_on(tiny_vit_gpt2_dir, photos, photo_files, empty_model_cache):
    from core.batch import caption_files
    from core.caption import caption_attention

    loads, runs = [], []
    caption(
        photos["chelsea"],
        model=str(tiny_vit_gpt2_dir),
        max_new_tokens=4,
        precision="fp32",
        on_load=loads.append,
        on_run=runs.append,
    )
    [run] = runs
    assert loads == [str(tiny_vit_gpt2_dir.resolve())] and run.model == loads[0]
    assert (run.device, run.dtype) == ("cpu", "float32") and run.milliseconds >= 0
    # word maps need eager attention, a second cache entry: announced once, then a hit
    mapped = caption_attention(
        photos["chelsea"], "a cat", model=str(tiny_vit_gpt2_dir), precision="fp32", on_load=loads.append
    )
    caption_attention(photos["chelsea"], "a cat", model=str(tiny_vit_gpt2_dir), precision="fp32", on_load=loads.append)
    assert loads == [mapped.model] * 2 and mapped.run.model == mapped.model and mapped.run.milliseconds >= 0

    runs.clear()
    caption_files(
        [photo_files["chelsea"], photo_files["coffee"], photo_files["rocket"]],
        model=str(tiny_vit_gpt2_dir),
        batch_size=2,
        max_new_tokens=4,
        precision="fp32",
        on_load=loads.append,
        on_run=runs.append,
    )
    [batch_run] = runs  # one report for the whole batch, however many batches
    assert batch_run.model == mapped.model and batch_run.milliseconds >= 0 and len(loads) == 2


def test_decoder_layer_count_reads_the_captioners_decoder(tiny_vit_gpt2_dir, tiny_blip_dir, tiny_vit_dir, tmp_path):
    """What the word maps' layer slider spans: the decoder's layers, from the config, for both kinds."""
    from core import decoder_layer_count

    expected_gpt2 = json.loads((tiny_vit_gpt2_dir / "config.json").read_text())["decoder"]["n_layer"]
    expected_blip = json.loads((tiny_blip_dir / "config.json").read_text())["text_config"]["num_hidden_layers"]
    assert decoder_layer_count(str(tiny_vit_gpt2_dir)) == expected_gpt2
    assert decoder_layer_count(str(tiny_blip_dir)) == expected_blip
    assert decoder_layer_count(str(tiny_vit_dir)) is None  # a classifier has no decoder
    assert decoder_layer_count(str(tmp_path / "nothing")) is None
    # the count caption_attention's layer runs to
    caption_attention(np.zeros((32, 32, 3), np.uint8), "a cat", model=str(tiny_vit_gpt2_dir), layer=expected_gpt2)
    with pytest.raises(ValueError, match=f"pick a layer from 1 to {expected_gpt2}"):
        caption_attention(
            np.zeros((32, 32, 3), np.uint8), "a cat", model=str(tiny_vit_gpt2_dir), layer=expected_gpt2 + 1
        )
