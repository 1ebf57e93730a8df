"""Tiny random ViT-GPT2 and BLIP captioners built offline and saved with save_pretrained, for unit and e2e tests."""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "a cat sitting on a couch",
    "an astronaut in a white suit",
    "a cup of coffee on a table",
    "a rocket on the launch pad",
    "a man holding a camera in a field",
] * 4

BLIP_WORDS = sorted({word for sentence in CORPUS for word in sentence.split()} | {"photo", "of", "picture"})


def tiny_gpt2_tokenizer():
    """A GPT-2 style byte-level BPE tokenizer trained on a few sentences (the real vocabulary needs the Hub)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    return GPT2TokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def save_tiny_vit_gpt2(folder: Path) -> Path:
    """A tiny random VisionEncoderDecoder (ViT encoder, GPT-2 decoder) saved with its image processor and tokenizer."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = tiny_gpt2_tokenizer()
    encoder = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    decoder = GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        vocab_size=len(tokenizer),
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tokenizer.bos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_blip(folder: Path) -> Path:
    """A tiny random BLIP captioner with a BERT tokenizer made from a vocabulary file written here."""
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab_file = folder / "vocab-source.txt"
    vocab_file.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *BLIP_WORDS]) + "\n")
    # BLIP's decoder starts from [DEC], its bos token, where BERT would put [CLS].
    # transformers 5 silently ignores vocab_file= here (an empty vocabulary results); vocab= reads the file.
    tokenizer = BertTokenizerFast(vocab=str(vocab_file), bos_token="[DEC]")
    assert tokenizer.convert_tokens_to_ids("photo") != tokenizer.unk_token_id
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        encoder_hidden_size=32,
        bos_token_id=tokenizer.bos_token_id,
        sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    vision_config = dict(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text_config, vision_config=vision_config, projection_dim=32)
    )
    model.save_pretrained(folder)
    # Saved the ordinary transformers 5 way: the image processor nested in processor_config.json only.
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(folder)
    assert not (folder / "preprocessor_config.json").exists()
    return folder
