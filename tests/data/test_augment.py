"""Augmentation (random crop with padding + flip) and per-channel normalisation, on tensors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from noiseproof.data import load_dataset
from noiseproof.data.augment import BatchAugment, batch_augment, check_augment
from noiseproof.data.normalize import PRESETS, channel_stats, check_normalize, standardize
from noiseproof.errors import NoiseproofError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def candidates(image: torch.Tensor, padding: int, fill: float = 0.0) -> list[torch.Tensor]:
    """Every crop of the padded image and its mirror (the reference of crop + flip)."""
    c, h, w = image.shape
    padded = torch.full((c, h + 2 * padding, w + 2 * padding), fill)
    padded[:, padding : padding + h, padding : padding + w] = image
    crops = [
        padded[:, i : i + h, j : j + w]
        for i in range(2 * padding + 1)
        for j in range(2 * padding + 1)
    ]
    return crops + [crop.flip(-1) for crop in crops]


@pytest.mark.parametrize("device", DEVICES)
def test_crop_flip_gives_a_crop_of_the_padded_image_per_example(device):
    x = torch.rand(64, 2, 6, 5, generator=torch.Generator().manual_seed(0))
    augment = BatchAugment(crop=True, flip=True, padding=2)
    out = augment(x.to(device), torch.Generator(device).manual_seed(3)).cpu()
    assert out.shape == x.shape
    found = []
    for image, result in zip(x, out, strict=True):
        options = candidates(image, 2)
        matches = [k for k, option in enumerate(options) if torch.equal(option, result)]
        assert matches
        found.append(matches[0])
    assert len({k % 25 for k in found}) > 15  # offsets spread over the 5x5 positions
    assert any(k >= 25 for k in found) and any(k < 25 for k in found)  # both flips occur


def test_same_generator_state_same_batch_and_input_untouched():
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    kept = x.clone()
    augment = BatchAugment()
    first = augment(x, torch.Generator().manual_seed(5))
    second = augment(x, torch.Generator().manual_seed(5))
    other = augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(first, second) and not torch.equal(first, other)
    assert torch.equal(x, kept)


def test_flip_only_and_crop_only():
    x = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    flipped = BatchAugment(crop=False, flip=True)(x, torch.Generator().manual_seed(0))
    for image, result in zip(x, flipped, strict=True):
        assert torch.equal(result, image) or torch.equal(result, image.flip(-1))
    cropped = BatchAugment(crop=True, flip=False)(x, torch.Generator().manual_seed(0))
    for image, result in zip(x, cropped, strict=True):
        assert any(torch.equal(result, option) for option in candidates(image, 4)[:81])


def test_padding_fill_is_the_normalised_black_pixel():
    mean, std = torch.tensor([0.5, 0.25]), torch.tensor([0.5, 0.25])
    x = standardize(torch.full((16, 2, 4, 4), 0.75), mean, std)
    augment = batch_augment("crop", fill=tuple((-mean / std).tolist()))
    out = augment(x, torch.Generator().manual_seed(0))
    raw = out * std.view(1, 2, 1, 1) + mean.view(1, 2, 1, 1)  # undo the normalisation
    assert set(raw.unique().tolist()) <= {0.0, 0.75}  # the border is black, as in raw pixels
    assert (raw == 0).any()


def test_augment_setting_checks():
    assert check_augment(True) is True and check_augment("crop") == "crop"
    for bad in ("rotate", 1, None, "CROP_FLIP"):
        with pytest.raises(ValueError, match="unknown recipe"):
            check_augment(bad)
    assert batch_augment(False) is None
    recipe = batch_augment(True)
    assert recipe.crop and recipe.flip and recipe.padding == 4
    with pytest.raises(ValueError, match="imagefolder"):
        batch_augment("resized_crop_flip")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        BatchAugment()(torch.zeros(4, 10), torch.Generator())


def test_normalize_setting_checks_and_stats():
    assert check_normalize("imagenet") == "imagenet"
    assert check_normalize({"mean": [0.5], "std": 0.25}) == {"mean": (0.5,), "std": (0.25,)}
    for bad, message in [
        ("imagenett", "unknown preset"),
        ({"mean": [0.1]}, "keys mean and std"),
        ({"mean": [0.1, 0.2], "std": [0.3]}, "2 means but 1 stds"),
        ({"mean": [0.1], "std": [0.0]}, "> 0"),
        ({"mean": ["a"], "std": [1.0]}, "finite numbers"),
        ({"mean": [float("nan")], "std": [1.0]}, "finite numbers"),
        (3, "must be true, false"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_normalize(bad)
    assert channel_stats(False, None) is None
    mean, std = channel_stats("cifar10", None)
    assert mean.tolist() == pytest.approx(PRESETS["cifar10"][0])
    x = torch.rand(50, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(True, x)
    z = standardize(x, mean, std)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (z.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-5
    with pytest.raises(ValueError, match="training split in memory"):
        channel_stats(True, None)
    with pytest.raises(ValueError, match="3 channel"):
        standardize(torch.zeros(2, 1, 4, 4), mean, std)


def write_cifar(folder, n_train=30, n_test=10):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        batch[b"labels"] = (np.arange(n) % 10).tolist()
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_cifar_keys_normalize_every_split_and_attach_the_augment(tmp_path):
    root = str(write_cifar(tmp_path / "cifar-10-batches-py"))
    raw = load_dataset({"name": "cifar10", "root": root, "normalize": False})
    assert raw.augment is None and raw.x_train.min() >= 0 and raw.x_train.max() <= 1
    preset = load_dataset({"name": "cifar10", "root": root, "normalize": "cifar10"})
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in PRESETS["cifar10"])
    for split in ("x_train", "x_val", "x_test"):
        assert torch.allclose(getattr(preset, split), (getattr(raw, split) - mean) / std)
    given = load_dataset(
        {"name": "cifar10", "root": root, "normalize": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    )
    assert torch.allclose(given.x_test, raw.x_test * 2 - 1)
    augmented = load_dataset({"name": "cifar10", "root": root, "augment": True})
    assert augmented.augment == BatchAugment(fill=augmented.augment.fill)
    stats = channel_stats(True, raw.x_train)
    assert augmented.augment.fill == pytest.approx((-stats[0] / stats[1]).tolist())


def test_bad_keys_are_one_line_naming_the_dataset(tmp_path):
    root = str(write_cifar(tmp_path / "cifar-10-batches-py"))
    cases = [
        ({"normalize": "mnist"}, "1 channel(s)"),
        ({"normalize": "nope"}, "unknown preset 'nope'"),
        ({"augment": "spin"}, "unknown recipe 'spin'"),
        ({"augment": "resized_crop_flip"}, "imagefolder"),
    ]
    for extra, message in cases:
        with pytest.raises(NoiseproofError) as info:
            load_dataset({"name": "cifar10", "root": root, **extra})
        text = str(info.value)
        assert "\n" not in text and message in text and "cifar10" in text


def test_npz_augment_needs_images(tmp_path):
    path = tmp_path / "tab.npz"
    np.savez(path, x=np.random.default_rng(0).random((20, 5)), y=np.arange(20) % 2)
    with pytest.raises(NoiseproofError, match=r"augment needs images \[N, C, H, W\]"):
        load_dataset({"name": "npz", "train": str(path), "augment": True})
    data = load_dataset({"name": "npz", "train": str(path), "normalize": True})
    assert data.x_train.mean(0).abs().max() < 1e-5  # per feature (dimension 1)
