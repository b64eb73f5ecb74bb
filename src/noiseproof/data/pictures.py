"""Image files (JPEG, PNG, ... via Pillow) to tensors: reading, the evaluation resize + centre
crop, and the random-resized crop of Szegedy et al. 2015 drawn from an explicit generator."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from noiseproof.data.formats import fail, reason

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

CROP_SCALE = (0.08, 1.0)  # share of the image area (Szegedy et al. 2015, "Going deeper")
CROP_RATIO = (3 / 4, 4 / 3)  # aspect ratio range of the crop


def read_image(path: str | Path, mode: str) -> Any:
    """The image at `path` converted to Pillow `mode` ('RGB' or 'L'), fully decoded; a file
    Pillow cannot read is one line naming it."""
    from PIL import Image  # here: Pillow is needed only by imagefolder

    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise fail(path, f"not a readable image ({reason(error)})") from None


def resize_center_crop(image: Any, resize: int, size: int) -> Any:
    """The shorter side scaled to `resize` (bilinear), then the central size x size square."""
    from PIL import Image

    width, height = image.size
    scale = resize / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def uniform(low: float, high: float, generator: torch.Generator) -> float:
    """One draw from U(low, high)."""
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_resized_crop(image: Any, size: int, generator: torch.Generator) -> Any:
    """A random crop of CROP_SCALE of the area and CROP_RATIO aspect, resized to size x size
    (Szegedy et al. 2015; torchvision's RandomResizedCrop: 10 tries, then the central crop of
    the clamped aspect ratio)."""
    from PIL import Image

    width, height = image.size
    area = width * height
    log_low, log_high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * uniform(*CROP_SCALE, generator)
        aspect = math.exp(uniform(log_low, log_high, generator))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=generator))
            left = int(torch.randint(0, width - w + 1, (), generator=generator))
            break
    else:
        ratio = width / height
        if ratio < CROP_RATIO[0]:
            w, h = width, round(width / CROP_RATIO[0])
        elif ratio > CROP_RATIO[1]:
            w, h = round(height * CROP_RATIO[1]), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    return image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))


def to_tensor(image: Any) -> Tensor:
    """A Pillow image as float32 [C, H, W] in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).float().div_(255.0)
