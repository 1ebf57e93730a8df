"""Masked autoencoding (He et al., 2021): hide patches of a photo, let a ViTMAE paint them back, measure the error."""

from __future__ import annotations

import math
import numbers
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from PIL import Image
from transformers import (  # imported up front: lazy resolution is not thread-safe (see core/models.py)
    AutoConfig,
    AutoImageProcessor,
    ViTMAEForPreTraining,
)

from .attention import model_input_image
from .gpu import gpu_work
from .images import ImageInput, load_image
from .models import LoadedModel, _load
from .types import OnLoad, RunInfo, run_since

DEFAULT_MAE = "facebook/vit-mae-base"
MAX_MASK_RATIO = 0.95  # the paper hides 75%; past 95% too little is left on a 14x14 grid to say anything
MASK_GREY = (128, 128, 128)  # the colour hidden patches get in `masked`, as in the paper's figures
_SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes seeds below this (and negatives, which a UI never needs)
_EPSILON = 1.0e-6  # the model's own: norm_pix_loss divides by (var + 1e-6) ** 0.5

# The model reads how many patches to hide from its config (config.mask_ratio) during the forward pass; the cached
# model is shared by every caller, so the ratio is set, used and put back under this lock.
_MASKING_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class MaeReconstruction:
    """One masked-autoencoding pass: the photo, what the model was shown, what it painted, and how far off it was.

    The images are RGB at the model's input size (224x224 for facebook/vit-mae-base); grids are (grid_h, grid_w)
    with patches numbered row by row from the top left, as `hidden` numbers them.
    """

    original: Image.Image  # the resized pixels the model saw, every patch
    masked: Image.Image  # the original with the hidden patches grey (MASK_GREY): what the encoder was given
    reconstruction: Image.Image  # the decoder's prediction for every patch, visible ones included
    pasted: Image.Image  # the reconstruction with the visible patches put back exactly as they were
    # The model's per-patch loss for every patch, hidden and visible: the mean squared error between prediction and
    # target in the space the loss is computed in (each patch normalised by its own mean and variance when the
    # model was trained with norm_pix_loss, else the image processor's normalised pixels). Its mean over the
    # hidden patches is `loss`; the visible patches' values show how well the decoder also copies what it saw
    # (their error never entered the training loss).
    error_map: np.ndarray
    mask: np.ndarray  # (grid_h, grid_w) bool, True where the patch was hidden
    loss: float  # the model's own loss: mean of error_map over hidden patches; NaN when nothing was hidden
    grid_size: tuple[int, int]
    mask_ratio: float  # the share of patches actually hidden
    model: str
    run: RunInfo

    @property
    def hidden_patches(self) -> tuple[int, ...]:
        """The hidden patches' numbers, row by row from the top left (what `hidden` takes)."""
        return tuple(int(index) for index in np.flatnonzero(self.mask))


class MaskedAutoencoder:
    """A from_pretrained for ViTMAEForPreTraining that refuses other checkpoints: transformers would otherwise build
    an MAE from a ViT classifier's config with a random decoder and paint noise."""

    @staticmethod
    def from_pretrained(name: str, **kwargs: Any) -> ViTMAEForPreTraining:
        config = AutoConfig.from_pretrained(
            name,
            local_files_only=kwargs.get("local_files_only", False),
            trust_remote_code=kwargs.get("trust_remote_code", False),
        )
        model_type = getattr(config, "model_type", None)
        architectures = getattr(config, "architectures", None) or []
        # A vit_mae checkpoint saved from ViTMAEModel has no decoder weights: refused like any other non-MAE.
        if model_type != "vit_mae" or (architectures and "ViTMAEForPreTraining" not in architectures):
            kind = architectures[0] if architectures else model_type
            # No "attn" or "sdpa" here: the loader retries with eager attention on errors that mention them.
            raise ValueError(
                f"it is a '{kind}' model, not a masked autoencoder: give a ViTMAEForPreTraining model "
                f"such as {DEFAULT_MAE}."
            )
        return ViTMAEForPreTraining.from_pretrained(name, **kwargs)


def load_mae(
    name: str,
    device: str | None = None,
    precision: str | None = None,
    *,
    on_load: OnLoad = None,
) -> LoadedModel:
    """A ViTMAEForPreTraining and its image processor, from the engine's cache after the first call."""
    return _load(name, MaskedAutoencoder, AutoImageProcessor, device, precision, "sdpa", on_load=on_load)


def _preload_mae_for(call: Mapping[str, Any], on_load: OnLoad) -> None:
    """The model a call of reconstruct will use, loaded into the cache (see core.gpu)."""
    load_mae(call["model"], device=call["device"], precision=call["precision"], on_load=on_load)


@gpu_work(preload=_preload_mae_for)
def reconstruct(
    image: ImageInput,
    model: str = DEFAULT_MAE,
    *,
    mask_ratio: float = 0.75,
    seed: int = 0,
    hidden: Iterable[int] | None = None,
    device: str | None = None,
    precision: str | None = None,
    on_load: OnLoad = None,
) -> MaeReconstruction:
    """Hide patches of the image, let a masked autoencoder reconstruct them, and return every stage as pictures.

    `mask_ratio` (0 to MAX_MASK_RATIO) hides round(mask_ratio x patches) patches picked at random by `seed`: the
    same seed hides the same patches, and with one seed a higher ratio hides the lower ratio's patches and more.
    `hidden` hides exactly the patches it numbers (row by row from the top left, 0 first; "mask what I click")
    and then `mask_ratio` is not used (it is still checked). An empty `hidden` hides nothing.
    `on_load` hears the model's name before a load that may download.
    """
    ratio = check_mask_ratio(mask_ratio)
    check_seed(seed)
    clicked = None if hidden is None else _patch_numbers(hidden)
    picture = load_image(image)
    loaded = load_mae(model, device=device, precision=precision, on_load=on_load)
    started = time.perf_counter()
    net: ViTMAEForPreTraining = loaded.model
    pixel_values = loaded.processor(images=[picture], return_tensors="pt")["pixel_values"].to(
        loaded.device, loaded.dtype
    )
    grid_size = _grid(net, pixel_values)
    num_patches = grid_size[0] * grid_size[1]
    if clicked is None:
        num_hidden = round(ratio * num_patches)
        noise = mask_noise(num_patches, seed)
    else:
        _check_on_grid(clicked, grid_size)
        num_hidden = len(clicked)
        noise = mask_noise(num_patches, seed, hidden=clicked)
    outputs = _masked_pass(net, pixel_values, noise.to(loaded.device), num_hidden)
    mask = outputs.mask[0].bool().cpu()
    if int(mask.sum()) != num_hidden:  # transformers changed how it counts kept patches: say so, not a wrong picture
        raise RuntimeError(f"The model hid {int(mask.sum())} patches instead of {num_hidden}.")
    prediction, errors = _unnormalised_prediction(net, pixel_values, outputs.logits)
    processor = loaded.processor
    original = model_input_image(pixel_values, processor)
    reconstruction = model_input_image(net.unpatchify(prediction, tuple(pixel_values.shape[-2:])), processor)
    grid_mask = mask.numpy().reshape(grid_size)
    hidden_pixels = _pixel_mask(grid_mask, _patch_size(net))
    original_array = np.asarray(original)
    return MaeReconstruction(
        original=original,
        masked=Image.fromarray(
            np.where(hidden_pixels, np.array(MASK_GREY, dtype=np.uint8), original_array).astype(np.uint8)
        ),
        reconstruction=reconstruction,
        pasted=Image.fromarray(np.where(hidden_pixels, np.asarray(reconstruction), original_array).astype(np.uint8)),
        error_map=errors.reshape(grid_size),
        mask=grid_mask,
        loss=float(outputs.loss.float()) if num_hidden else math.nan,  # 0/0 in the model when nothing is hidden
        grid_size=grid_size,
        mask_ratio=num_hidden / num_patches,
        model=loaded.name,
        run=run_since(loaded, started),
    )


def check_mask_ratio(mask_ratio: float) -> float:
    """The ratio as a float, or a ValueError naming the range."""
    if (
        isinstance(mask_ratio, bool)
        or not isinstance(mask_ratio, numbers.Real)
        or not 0 <= float(mask_ratio) <= MAX_MASK_RATIO
    ):
        raise ValueError(
            f"mask_ratio must be a number from 0 to {MAX_MASK_RATIO} (the share of patches to hide), "
            f"not {mask_ratio!r}."
        )
    return float(mask_ratio)


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"seed must be a whole number, 0 or more (below 2^63), not {seed!r}.")


def mask_noise(num_patches: int, seed: int, *, hidden: Iterable[int] = ()) -> torch.Tensor:
    """The (1, num_patches) noise ViTMAE's random_masking sorts: it keeps the patches with the lowest values, so
    the highest ones are hidden. The numbers in `hidden` get 1 added, which sorts them last whatever the seed."""
    generator = torch.Generator().manual_seed(int(seed))  # on the CPU: the same mask on every device
    noise = torch.rand(1, num_patches, generator=generator)
    chosen = list(hidden)
    if chosen:
        noise[0, chosen] += 1.0
    return noise


def _patch_numbers(hidden: Iterable[int]) -> tuple[int, ...]:
    """The clicked patches' numbers, sorted, each once (a patch clicked twice is still one hidden patch)."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Iterable):
        raise ValueError(f"hidden must be a list of patch numbers (row by row from 0 at the top left), not {hidden!r}.")
    numbers_given = list(hidden)
    for number in numbers_given:
        if isinstance(number, bool) or not isinstance(number, numbers.Integral):
            raise ValueError(
                f"hidden must hold whole patch numbers (row by row from 0 at the top left), not {number!r}."
            )
    return tuple(sorted({int(number) for number in numbers_given}))


def _check_on_grid(clicked: tuple[int, ...], grid_size: tuple[int, int]) -> None:
    last = grid_size[0] * grid_size[1] - 1
    outside = [number for number in clicked if not 0 <= number <= last]
    if outside:
        raise ValueError(
            f"Patch {outside[0]} is not on this model's {grid_size[0]}x{grid_size[1]} grid: hidden takes patch "
            f"numbers from 0 to {last}, row by row from the top left."
        )


def _grid(net: ViTMAEForPreTraining, pixel_values: torch.Tensor) -> tuple[int, int]:
    patch = _patch_size(net)
    return pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch


def _patch_size(net: ViTMAEForPreTraining) -> int:
    patch = net.config.patch_size
    if not isinstance(patch, int):  # ViTMAE's patchify squares it: a (height, width) pair would not run anyway
        raise ValueError(f"'{net.name_or_path}' has patches of size {patch!r}; masking needs square patches.")
    return patch


def _masked_pass(net: ViTMAEForPreTraining, pixel_values: torch.Tensor, noise: torch.Tensor, num_hidden: int) -> Any:
    """The model's forward pass with exactly `num_hidden` patches hidden (those with the highest noise)."""
    num_patches = noise.shape[1]
    # random_masking keeps int(num_patches * (1 - config.mask_ratio)) patches. Half a patch below the wanted count
    # keeps that int() away from a float rounding edge (int(16 * (1 - 0.3)) is 11, one fewer than intended).
    ratio = (num_hidden - 0.5) / num_patches if num_hidden else 0.0
    config = net.vit.embeddings.config  # the object random_masking reads
    interpolate = tuple(pixel_values.shape[-2:]) != (net.config.image_size, net.config.image_size)
    with _MASKING_LOCK, torch.inference_mode():
        saved = config.mask_ratio
        config.mask_ratio = ratio
        try:
            return net(pixel_values=pixel_values, noise=noise, interpolate_pos_encoding=interpolate)
        finally:
            config.mask_ratio = saved


def _unnormalised_prediction(
    net: ViTMAEForPreTraining, pixel_values: torch.Tensor, logits: torch.Tensor
) -> tuple[torch.Tensor, np.ndarray]:
    """The prediction as patches in the image processor's normalised pixels, and each patch's loss (see error_map).

    With norm_pix_loss the model predicts every patch normalised by its own mean and variance; like the MAE demo,
    the target patch's own statistics turn the prediction back into pixels (those of hidden patches too: the
    model never learned to guess a patch's brightness, only its pattern)."""
    target = net.patchify(pixel_values.float(), interpolate_pos_encoding=True)
    prediction = logits.float()
    if not net.config.norm_pix_loss:
        return prediction, ((prediction - target) ** 2).mean(dim=-1)[0].cpu().numpy()
    mean = target.mean(dim=-1, keepdim=True)
    scale = (target.var(dim=-1, keepdim=True) + _EPSILON) ** 0.5  # unbiased variance, as the model's loss uses
    errors = ((prediction - (target - mean) / scale) ** 2).mean(dim=-1)[0].cpu().numpy()
    return prediction * scale + mean, errors


def _pixel_mask(grid_mask: np.ndarray, patch_size: int) -> np.ndarray:
    """(grid_h, grid_w) -> (height, width, 1): True on every pixel of a hidden patch."""
    return np.kron(grid_mask, np.ones((patch_size, patch_size), dtype=bool)).astype(bool)[..., None]
