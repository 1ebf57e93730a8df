"""core.caption on real photos, with tiny random ViT-GPT2 and BLIP captioners built offline, loaded by the engine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.caption import caption, load_captioner
from core.models import ModelLoadError

CORPUS = [
    "a cat sitting on a couch",
    "an astronaut in a white suit",
    "a cup of coffee on a table",
    "a rocket on the launch pad",
    "a man holding a camera in a field",
] * 4


def tiny_gpt2_tokenizer():
    """A GPT-2 style byte-level BPE tokenizer trained on a few sentences (the real vocabulary needs the Hub)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    return GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             pad_token="<|endoftext|>")


@pytest.fixture(scope="module")
def tiny_vit_gpt2_dir(tmp_path_factory) -> Path:
    """A tiny random VisionEncoderDecoder (ViT encoder, GPT-2 decoder) saved with its image processor and tokenizer."""
    from transformers import GPT2Config, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig, \
        VisionEncoderDecoderModel

    tokenizer = tiny_gpt2_tokenizer()
    encoder = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    decoder = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=len(tokenizer),
                         add_cross_attention=True, is_decoder=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tokenizer.bos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
    folder = tmp_path_factory.mktemp("tiny-vit-gpt2")
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(tiny_vit_gpt2_dir):
    """The model-card recipe with plain transformers: image processor, generate, batch_decode, in fp32."""
    from transformers import AutoTokenizer, ViTImageProcessor, VisionEncoderDecoderModel

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
    actual = caption(arrays, model=str(tiny_vit_gpt2_dir), max_new_tokens=10, num_beams=num_beams,
                     precision="fp32", batch_size=2)
    assert actual == expected


def test_generation_options_reach_generate(tiny_vit_gpt2_dir, photos, reference):
    arrays = list(photos.values())[:2]
    settings = dict(max_new_tokens=12, num_beams=2, repetition_penalty=1.5, no_repeat_ngram_size=2)
    expected = reference(arrays, do_sample=False, **settings)
    assert caption(arrays, model=str(tiny_vit_gpt2_dir), precision="fp32", **settings) == expected
    assert expected != reference(arrays, max_new_tokens=12, num_beams=2, do_sample=False)  # the options matter


def test_num_return_sequences_gives_that_many(tiny_vit_gpt2_dir, photos, reference):
    arrays = [photos["chelsea"], photos["coffee"]]
    result = caption(arrays, model=str(tiny_vit_gpt2_dir), max_new_tokens=8, num_beams=3,
                     num_return_sequences=2, precision="fp32")
    expected = reference(arrays, max_new_tokens=8, num_beams=3, num_return_sequences=2, do_sample=False)
    assert result == [expected[0:2], expected[2:4]]
    single = caption(photos["chelsea"], model=str(tiny_vit_gpt2_dir), max_new_tokens=8, num_beams=3,
                     num_return_sequences=2, precision="fp32")
    assert isinstance(single, list) and len(single) == 2 and single == expected[0:2]


def test_sampling_is_reproducible_with_a_seed(tiny_vit_gpt2_dir, chelsea):
    def sample(seed: int) -> list[str]:
        torch.manual_seed(seed)
        return caption(chelsea, model=str(tiny_vit_gpt2_dir), max_new_tokens=12, num_beams=1, do_sample=True,
                       top_p=0.9, temperature=1.5, num_return_sequences=4, precision="fp32")

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
    result = caption(chelsea, model=str(tiny_vit_gpt2_dir), max_new_tokens=5, num_beams=1, do_sample=True,
                     num_return_sequences=3, precision="fp32")
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


BLIP_WORDS = sorted({word for sentence in CORPUS for word in sentence.split()} | {"photo", "of", "picture"})


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory) -> Path:
    """A tiny random BLIP captioner with a BERT tokenizer made from a vocabulary file written here."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, \
        BlipProcessor

    folder = tmp_path_factory.mktemp("tiny-blip")
    vocab_file = folder / "vocab-source.txt"
    vocab_file.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *BLIP_WORDS]) + "\n")
    # BLIP's decoder starts from [DEC], its bos token, where BERT would put [CLS].
    # transformers 5 silently ignores vocab_file= here (an empty vocabulary results); vocab= reads the file.
    tokenizer = BertTokenizerFast(vocab=str(vocab_file), bos_token="[DEC]")
    assert tokenizer.convert_tokens_to_ids("photo") != tokenizer.unk_token_id
    text_config = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, max_position_embeddings=64, encoder_hidden_size=32,
                       bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id)
    vision_config = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text_config, vision_config=vision_config,
                                                    projection_dim=32))
    model.save_pretrained(folder)
    # Saved the ordinary transformers 5 way: the image processor nested in processor_config.json only.
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(folder)
    assert not (folder / "preprocessor_config.json").exists()
    return folder


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
    actual = caption(arrays, model=str(tiny_blip_dir), max_new_tokens=8, num_beams=num_beams, precision="fp32",
                     batch_size=2)
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
    result = caption(chelsea, model=str(tiny_blip_dir), max_new_tokens=6, num_beams=3, num_return_sequences=3,
                     precision="fp32")
    assert result == blip_reference([chelsea], max_new_tokens=6, num_beams=3, num_return_sequences=3)
    assert load_captioner(str(tiny_blip_dir), precision="fp32").processor.conditional
