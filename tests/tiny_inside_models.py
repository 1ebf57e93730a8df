"""Tiny random ViTMAE and DINOv2 models, saved as save_pretrained writes them, for the Inside tab's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAE_SIZE = 32
MAE_PATCH = 8  # a 4x4 grid
DINO_CROP = 56  # 4x4 patches of 14 pixels
DINO_KWARGS: dict[str, Any] = dict(
    image_size=28, patch_size=14, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
NUM_REGISTERS = 4


def tiny_mae_config(**changes: Any):
    from transformers import ViTMAEConfig

    settings: dict[str, Any] = dict(
        image_size=MAE_SIZE,
        patch_size=MAE_PATCH,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
        norm_pix_loss=True,
    )
    return ViTMAEConfig(**{**settings, **changes})


def save_mae(model, folder: Path) -> Path:
    """save_pretrained the model with a MAE_SIZE x MAE_SIZE ViTImageProcessor."""
    from transformers import ViTImageProcessor

    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": MAE_SIZE, "width": MAE_SIZE}).save_pretrained(folder)
    return folder


def save_tiny_mae(folder: Path) -> Path:
    """A tiny random ViTMAEForPreTraining (norm_pix_loss) with its processor."""
    import torch
    from transformers import ViTMAEForPreTraining

    torch.manual_seed(0)
    return save_mae(ViTMAEForPreTraining(tiny_mae_config()), folder)


def save_dino(model, folder: Path) -> Path:
    """save_pretrained the model with the image processor facebook/dinov2-small uses, shrunk: resize the short
    side, centre-crop to DINO_CROP, ImageNet mean and std."""
    from transformers import BitImageProcessor

    model.save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": DINO_CROP, "width": DINO_CROP},
        do_center_crop=True,
        do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


def save_tiny_dinov2(folder: Path, *, registers: bool = False) -> Path:
    """A tiny random Dinov2Model, or Dinov2WithRegistersModel with NUM_REGISTERS registers."""
    import torch
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(0)
    if registers:
        model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=NUM_REGISTERS, **DINO_KWARGS))
    else:
        model = Dinov2Model(Dinov2Config(**DINO_KWARGS))
    return save_dino(model, folder)
