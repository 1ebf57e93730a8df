"""Tiny random CLIP models written to folders as real users' models are: open_clip's local-dir format and a
transformers CLIPModel with its CLIPProcessor, built offline (no registry entries, no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

# 32x32 images in 8x8 patches: a 4x4 grid. head_width 16 gives 2 heads (open_clip's default 64 would give 0).
TINY_OPEN_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
# vision_cfg layers as a list makes open_clip build a ModifiedResNet image tower (CLIP's RN50 family).
TINY_RESNET_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def save_tiny_open_clip(folder: Path, model_cfg: dict = TINY_OPEN_CLIP_CFG, seed: int = 0) -> Path:
    """open_clip_config.json (model_cfg + preprocess_cfg) and open_clip_model.safetensors, the file names
    open_clip 3's 'local-dir:' loader looks for; no add_model_config, so another process can load it too."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = CLIP(**model_cfg)
    config = {"model_cfg": model_cfg, "preprocess_cfg": {"size": model_cfg["vision_cfg"]["image_size"]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file(
        {name: tensor.contiguous() for name, tensor in model.state_dict().items()},
        folder / "open_clip_model.safetensors",
    )
    return folder


def tiny_clip_tokenizer():
    """A CLIPTokenizer whose vocabulary is the 256 byte-level characters, each also as a word end ('</w>'),
    plus CLIP's two special tokens: every text tokenizes (a character per token), no file is fetched."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [character + "</w>" for character in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[])


def save_tiny_hf_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny random transformers CLIPModel (32px images, 8px patches, 2 blocks of 2 heads) and its
    CLIPProcessor, as save_pretrained writes them."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            eos_token_id=eos,
            pad_token_id=eos,
            bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
        ),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
