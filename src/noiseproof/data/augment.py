"""Training-time image augmentation on batches of tensors: random crop from a padded image and
horizontal flip, drawn per example from an explicit generator on the batch's device.

This is the standard CIFAR recipe of He et al. 2016 (section 4.2, after Lee et al. 2015): pad
4 pixels on each side, take a random 32x32 crop, flip horizontally with probability 1/2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

AUGMENTS = ("crop_flip", "crop", "flip", "resized_crop_flip")
PADDING = 4

AUGMENT_HELP = (
    "training augmentation: false, true (the standard recipe: crop_flip in memory, "
    "resized_crop_flip for imagefolder), crop_flip (random crop, padding 4, + horizontal flip), "
    "crop, flip, resized_crop_flip (random-resized crop + flip, imagefolder only)"
)


def check_augment(value: Any) -> bool | str:
    """The `augment` setting if valid (a bool or one of AUGMENTS), else a one-line ValueError."""
    if isinstance(value, bool) or (isinstance(value, str) and value in AUGMENTS):
        return value
    raise ValueError(f"unknown recipe {value!r} (known: false, true, {', '.join(AUGMENTS)})")


@dataclass(frozen=True)
class BatchAugment:
    """Random crop (zero padding `padding`) and/or horizontal flip of a batch [B, C, H, W].

    `fill` is the value per channel of the padded border: the normalised image's zero, so the
    crop pads black pixels as when padding before normalisation (torchvision's RandomCrop).
    Each example gets its own offsets and coin, drawn from `generator`, which must live on the
    batch's device: the same generator state gives the same batch.
    """

    crop: bool = True
    flip: bool = True
    padding: int = PADDING
    fill: tuple[float, ...] | None = None

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """The augmented batch (a new tensor; `x` is not modified)."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"augment needs image batches [B, C, H, W], got {shape}")
        b, c, h, w = x.shape
        device = x.device
        if self.crop:
            p = self.padding
            padded = x.new_zeros(b, c, h + 2 * p, w + 2 * p)
            for channel, value in enumerate(self.fill or ()):
                padded[:, channel].fill_(value)
            padded[:, :, p : p + h, p : p + w] = x
            offsets = torch.randint(0, 2 * p + 1, (2, b), generator=generator, device=device)
            rows = offsets[0, :, None] + torch.arange(h, device=device)  # [B, H]
            cols = offsets[1, :, None] + torch.arange(w, device=device)  # [B, W]
            x = padded[
                torch.arange(b, device=device)[:, None, None, None],
                torch.arange(c, device=device)[None, :, None, None],
                rows[:, None, :, None],
                cols[:, None, None, :],
            ]
        if self.flip:
            flips = torch.rand(b, generator=generator, device=device) < 0.5
            x = torch.where(flips.view(b, 1, 1, 1), x.flip(-1), x)
        return x


def batch_augment(
    setting: bool | str, fill: tuple[float, ...] | None = None
) -> BatchAugment | None:
    """The in-memory BatchAugment for a checked `augment` setting (None for false); refuses
    resized_crop_flip, which needs the full-size images of an imagefolder."""
    if setting is False:
        return None
    if setting == "resized_crop_flip":
        raise ValueError(
            "augment 'resized_crop_flip' needs the images on disk (dataset imagefolder); "
            "in-memory datasets take crop_flip, crop or flip"
        )
    recipe = "crop_flip" if setting is True else setting
    return BatchAugment(crop="crop" in recipe, flip="flip" in recipe, fill=fill)


def padding_fill(stats: tuple[Tensor, Tensor] | None) -> tuple[float, ...] | None:
    """The per-channel value of a black pixel after normalisation, -mean / std (None: 0)."""
    if stats is None:
        return None
    mean, std = stats
    return tuple(float(v) for v in -mean / std)
