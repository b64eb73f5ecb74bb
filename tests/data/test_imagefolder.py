"""`imagefolder`: a small tree of PNG/JPEG images written by the tests; splits, transforms,
streaming through the trainer, and one-line errors for broken trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import noiseproof as nf
from noiseproof.data import load_dataset
from noiseproof.data.batching import train_batches
from noiseproof.data.normalize import PRESETS
from noiseproof.errors import NoiseproofError

CLASSES = ("cat", "dog", "emu")
COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "emu": (0, 0, 255)}


def write_image(path: Path, colour, size=(40, 30), fmt=None) -> None:
    """A solid image of `colour` with a white stripe on the left (so a flip shows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[:] = colour
    array[:, : size[0] // 4] = 255
    Image.fromarray(array).save(path, format=fmt)


def write_tree(root: Path, splits=(("train", 4), ("val", 2)), classes=CLASSES) -> Path:
    for split, per_class in splits:
        for name in classes:
            for k in range(per_class):
                suffix = ".png" if k % 2 == 0 else ".jpg"
                size = (40, 30) if k % 3 else (30, 44)
                write_image(root / split / name / f"{k}{suffix}", COLOURS[name], size)
    return root


def spec(root: Path, **extra) -> dict:
    return {"name": "imagefolder", "root": str(root), "size": 16, **extra}


def error(root_or_spec) -> str:
    with pytest.raises(NoiseproofError) as info:
        load_dataset(root_or_spec)
    text = str(info.value)
    assert "\n" not in text and text.startswith("dataset 'imagefolder': ")
    return text


def test_train_val_tree_streams_train_and_holds_val_as_test(tmp_path):
    data = load_dataset(spec(write_tree(tmp_path)))
    assert data.streamed and len(data.x_train) == len(data.y_train) == 12
    assert data.num_classes == 3 and data.input_shape == (3, 16, 16)
    assert len(data.y_val) == 0 and data.x_test.shape == (6, 3, 16, 16)  # val/ is the test split
    assert data.y_test.tolist() == [0, 0, 1, 1, 2, 2]  # classes: sorted folder names
    assert data.x_test.min() >= 0 and data.x_test.max() <= 1
    # evaluation transform: resize + centre crop keeps the solid colour in the centre
    centre = data.x_test[:, :, 8, 12]
    for label, pixel in zip(data.y_test.tolist(), centre, strict=True):
        expected = torch.tensor(COLOURS[CLASSES[label]]) / 255
        assert torch.allclose(pixel, expected, atol=0.1)
    assert data.example(2).shape == (2, 3, 16, 16)


def test_test_folder_makes_val_the_validation_split(tmp_path):
    root = write_tree(tmp_path, (("train", 4), ("val", 2), ("test", 3)))
    data = load_dataset(spec(root))
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (12, 6, 9)
    held = load_dataset(spec(write_tree(tmp_path / "b"), val_fraction=0.25))
    assert (len(held.y_train), len(held.y_val), len(held.y_test)) == (9, 3, 6)
    small = load_dataset(spec(root, max_train=5, max_test=4, mode="L"))
    assert (len(small.y_train), len(small.y_test), small.input_shape) == (5, 4, (1, 16, 16))


def test_normalize_and_augment_apply_to_the_streamed_and_held_splits(tmp_path):
    root = write_tree(tmp_path)
    raw = load_dataset(spec(root))
    data = load_dataset(spec(root, normalize="imagenet", augment=True))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in PRESETS["imagenet"])
    assert torch.allclose(data.x_test, (raw.x_test - mean) / std, atol=1e-6)

    def batches(d, seed=0, workers=None):
        if workers is not None:
            d.x_train.num_workers = workers
        return list(train_batches(d, 5, torch.Generator().manual_seed(seed)))

    first, again, other = batches(data), batches(data, workers=2), batches(data, seed=1)
    plain = batches(raw)
    assert [x.shape for x, _ in first] == [(5, 3, 16, 16), (5, 3, 16, 16), (2, 3, 16, 16)]
    for (x, y), (x2, y2), (_, y_raw) in zip(first, again, plain, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(y, y_raw)
    assert not torch.equal(first[0][0], ((plain[0][0] - mean) / std))  # random-resized crops
    assert not torch.equal(first[0][0], other[0][0])
    crop_flip = load_dataset(spec(root, augment="crop_flip"))
    assert batches(crop_flip)[0][0].shape == (5, 3, 16, 16)


def test_training_through_the_trainer_is_reproducible(tmp_path):
    data = load_dataset(spec(write_tree(tmp_path), augment=True, normalize="imagenet"))

    def trained():
        torch.manual_seed(0)
        model = nf.build_model("mlp", data.input_shape, data.num_outputs)
        config = nf.TrainConfig(epochs=2, batch_size=4, lr=0.01)
        nf.train(model, data, nf.create_method("standard"), config, seed=3, progress=False)
        return model.state_dict()

    first, second = trained(), trained()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: None, "no such directory"),
        (lambda r: (r / "train").mkdir(parents=True), "no val/ folder"),
        (lambda r: (r / "val").mkdir(parents=True), "no train/ folder"),
    ],
)
def test_missing_root_or_split(tmp_path, breakage, message):
    root = tmp_path / "tree"
    breakage(root)
    assert message in error(spec(root))


def test_broken_trees_are_one_line_naming_the_problem(tmp_path):
    def fresh(name):
        return write_tree(tmp_path / name)

    root = fresh("empty")
    (root / "val" / "emu" / "0.png").unlink()
    (root / "val" / "emu" / "1.jpg").unlink()
    assert "val/emu: no images in this class folder" in error(spec(root))

    root = fresh("text")
    (root / "train" / "dog" / "notes.txt").write_text("not a picture")
    assert "dog/notes.txt: not an image file" in error(spec(root))

    root = fresh("differ")
    write_image(root / "val" / "fox" / "0.png", (9, 9, 9))
    text = error(spec(root))
    assert "classes differ from train/" in text and "extra ['fox']" in text
    root = fresh("missing")
    for path in (root / "val" / "cat").iterdir():
        path.unlink()
    (root / "val" / "cat").rmdir()
    assert "missing ['cat']" in error(spec(root))

    root = fresh("stray")
    (root / "train" / "readme.md").write_text("hi")
    assert "a file directly in train/" in error(spec(root))

    root = fresh("corrupt")
    (root / "val" / "dog" / "0.png").write_bytes(b"\x89PNG broken")
    assert "val/dog/0.png: not a readable image" in error(spec(root))

    one = write_tree(tmp_path / "one", classes=("cat",))
    assert "at least 2 class folders" in error(spec(one))

    root = write_tree(tmp_path / "both", (("train", 2), ("val", 1), ("test", 1)))
    assert "val_fraction needs no test/" in error(spec(root, val_fraction=0.2))
    assert "needs the training split in memory" in error(spec(root, normalize=True))
    assert "size" in error(spec(root, size=0))


def test_hidden_files_are_ignored_and_a_corrupt_training_image_fails_in_one_line(tmp_path):
    root = write_tree(tmp_path)
    (root / "train" / ".DS_Store").write_text("x")
    (root / "train" / "cat" / ".thumb.png").write_text("x")
    (root / "train" / "cat" / "9.png").write_bytes(b"garbage")
    data = load_dataset(spec(root))
    assert len(data.y_train) == 13
    for workers in (0, 2):
        data.x_train.num_workers = workers
        with pytest.raises(NoiseproofError) as info:
            list(train_batches(data, 13, torch.Generator().manual_seed(0)))
        text = str(info.value)
        assert "cat/9.png: not a readable image" in text and "\n" not in text
