"""`imagefolder`: your own class-per-subfolder image tree, the training split streamed.

    root/train/<class>/<image>.jpg|png|...     (any depth below the class folder)
    root/val/<class>/...
    root/test/<class>/...                      (optional)

Classes are the sorted subfolder names of train/, and every split must have the same ones.
With test/, val/ is the validation split; without it, val/ is the test split and `val_fraction`
of the training images (default none) is held out for validation. Validation and test images
are resized (shorter side to `resize`) and centre-cropped to `size`, then held in memory as
float32 tensors (N x C x size x size x 4 bytes: 602 KB per 224x224 RGB image, 6 GB per 10,000),
because evaluation runs over them many times; `max_test` caps the test split. The training
split is read from disk every epoch through a DataLoader (`num_workers` processes), with the
random-resized crop + flip when `augment` is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from noiseproof.data.augment import BatchAugment, padding_fill
from noiseproof.data.base import Dataset, datasets
from noiseproof.data.builtin import dataset_errors
from noiseproof.data.formats import existing_dir, fail
from noiseproof.data.imagespec import ImageSpec
from noiseproof.data.normalize import channel_stats, standardize
from noiseproof.data.pictures import (
    IMAGE_SUFFIXES,
    random_resized_crop,
    read_image,
    resize_center_crop,
    to_tensor,
)
from noiseproof.data.streaming import StreamedSplit
from noiseproof.errors import NoiseproofError

EVAL_BATCH = 64


def visible(path: Path) -> bool:
    """Whether `path` is not hidden (no leading dot: .DS_Store, .ipynb_checkpoints...)."""
    return not path.name.startswith(".")


def scan_split(folder: Path) -> dict[str, list[Path]]:
    """{class: sorted image paths} of one split folder; a stray file, an empty class folder or
    a file that is not an image (by its suffix) is one line naming it."""
    classes: dict[str, list[Path]] = {}
    for entry in sorted(filter(visible, folder.iterdir())):
        if not entry.is_dir():
            raise fail(entry, f"a file directly in {folder.name}/ (expected one folder per class)")
        files = sorted(
            p
            for p in entry.rglob("*")
            if p.is_file()
            and all(visible(part) for part in p.relative_to(entry).parents)
            and visible(p)
        )
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise fail(path, f"not an image file (expected {', '.join(IMAGE_SUFFIXES)})")
        if not files:
            raise fail(entry, "no images in this class folder")
        classes[entry.name] = files
    if not classes:
        raise fail(folder, "no class folders (expected <split>/<class>/<image>)")
    return classes


def scan_tree(root: Path) -> tuple[list[str], dict[str, tuple[list[Path], Tensor]]]:
    """(classes, {split: (paths, labels)}) for train, val and test (if present)."""
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise fail(root, f"no {split}/ folder (expected {split}/<class>/<image> in the root)")
    splits = {s: scan_split(root / s) for s in ("train", "val", "test") if (root / s).is_dir()}
    classes = list(splits["train"])
    if len(classes) < 2:
        raise fail(root / "train", f"a task needs at least 2 class folders, found {classes}")
    result = {}
    for split, found in splits.items():
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        if missing or extra:
            raise fail(
                root / split,
                f"classes differ from train/: missing {missing or 'none'}, extra {extra or 'none'}",
            )
        paths = [path for name in classes for path in found[name]]
        labels = torch.tensor([k for k, name in enumerate(classes) for _ in found[name]])
        result[split] = (paths, labels)
    return classes, result


class FolderImages(StreamedSplit):
    """Images read from files: evaluation transform (resize + centre crop) or, with a
    generator, the training `recipe`; then normalised with `stats` (mean, std) if given."""

    def __init__(
        self,
        paths: list[Path],
        labels: Tensor,
        *,
        size: int,
        resize: int,
        mode: str,
        recipe: str | None,
        stats: tuple[Tensor, Tensor] | None,
        num_workers: int = 0,
        description: str = "imagefolder",
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.labels = labels
        self.size, self.resize, self.mode, self.recipe, self.stats = (
            size,
            resize,
            mode,
            recipe,
            stats,
        )
        self.num_workers = num_workers
        self.description = description
        self.input_shape = (1 if mode == "L" else 3, size, size)
        self.tensor_augment = (
            BatchAugment(crop="crop" in recipe, flip="flip" in recipe, fill=padding_fill(stats))
            if recipe is not None
            else None
        )

    def load(self, index: int, generator: torch.Generator | None) -> Tensor:
        """Image `index` as float32 [C, size, size] (see the class docstring)."""
        image = read_image(self.paths[index], self.mode)
        if generator is not None and self.recipe == "resized_crop_flip":
            image = random_resized_crop(image, self.size, generator)
        else:
            image = resize_center_crop(image, self.resize, self.size)
        x = to_tensor(image)[None]
        if self.stats is not None:
            x = standardize(x, *self.stats)
        if generator is not None and self.tensor_augment is not None:
            recipe = self.tensor_augment
            if self.recipe == "resized_crop_flip":  # the crop is done: flip only
                recipe = BatchAugment(crop=False, flip=True)
            x = recipe(x, generator)
        return x[0]


class EvaluationView(TorchDataset):
    """Example i of a FolderImages under the evaluation transform, with its label."""

    def __init__(self, images: FolderImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images.load(index, None)


def read_all(images: FolderImages) -> Tensor:
    """Every image of `images` under the evaluation transform, in one float32 tensor."""
    out = torch.empty(len(images), *images.input_shape)
    loader = DataLoader(
        EvaluationView(images), batch_size=EVAL_BATCH, num_workers=images.num_workers
    )
    start = 0
    try:
        for batch in loader:
            out[start : start + len(batch)] = batch
            start += len(batch)
    except NoiseproofError as error:  # from a worker: the original line is the last one
        last = str(error).strip().splitlines()[-1]
        raise NoiseproofError(last.split("NoiseproofError: ", 1)[-1]) from None
    return out


def seeded_subset(n: int, keep: int | None, seed: int) -> Tensor:
    """Sorted indices of `keep` of range(n) chosen by a seeded shuffle (all if None)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:keep].sort().values if keep is not None else torch.arange(n)


@datasets.register("imagefolder")
class ImageFolder(ImageSpec):
    """Your own images: root/train/<class>/, root/val/<class>/ (and optionally root/test/)."""

    in_memory: ClassVar[bool] = False
    root: str = Field(..., description="folder holding train/ and val/ (and optionally test/)")
    size: int = Field(224, gt=0, description="side of the square images the model sees")
    resize: int | None = Field(
        None,
        gt=0,
        description="evaluation: shorter side scaled to this, then the centre crop "
        "(None: size / 0.875, 256 for 224)",
    )
    mode: Literal["RGB", "L"] = Field("RGB", description="RGB (3 channels) or L (greyscale)")
    num_workers: int = Field(
        0, ge=0, description="DataLoader processes reading images (0: the training process)"
    )
    val_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="without test/: share of train held out as validation"
    )

    def load(self) -> Dataset:
        """Scan the tree, read validation and test into memory, stream train."""
        name = self.registered_name
        try:
            root = existing_dir(self.root)
            classes, splits = scan_tree(root)
            if "test" in splits and self.val_fraction > 0:
                raise fail(
                    root, "val_fraction needs no test/ folder (val/ is the validation split)"
                )
            stats = channel_stats(self.normalize, None)
            recipe = None if self.augment is False else self.augment
            recipe = "resized_crop_flip" if recipe is True else recipe
        except (NoiseproofError, ValueError) as error:
            raise NoiseproofError(f"dataset '{name}': {error}") from None
        settings = {
            "size": self.size,
            "resize": self.resize or round(self.size / 0.875),
            "mode": self.mode,
            "stats": stats,
            "num_workers": self.num_workers,
        }
        paths, labels = splits["train"]
        keep = seeded_subset(len(paths), self.max_train, self.split_seed)
        order = keep[
            torch.randperm(len(keep), generator=torch.Generator().manual_seed(self.split_seed))
        ]
        n_val = int(round(len(order) * self.val_fraction)) if "test" not in splits else 0
        held, kept = order[:n_val].sort().values, order[n_val:].sort().values
        train = FolderImages(
            [paths[i] for i in kept],
            labels[kept],
            recipe=recipe,
            description=f"imagefolder {root}/train",
            **settings,
        )
        if "test" in splits:
            val_paths, val_labels = splits["val"]
            test_paths, test_labels = splits["test"]
        else:
            val_paths, val_labels = [paths[i] for i in held], labels[held]
            test_paths, test_labels = splits["val"]
        chosen = seeded_subset(len(test_paths), self.max_test, self.split_seed)
        test_paths, test_labels = [test_paths[i] for i in chosen], test_labels[chosen]
        with dataset_errors(name):
            x_val = read_all(FolderImages(val_paths, val_labels, recipe=None, **settings))
            x_test = read_all(FolderImages(test_paths, test_labels, recipe=None, **settings))
            if not len(train):
                raise NoiseproofError("no training images left (max_train/val_fraction)")
        return Dataset(
            name=name,
            x_train=train,
            y_train=train.labels,
            x_val=x_val,
            y_val=val_labels,
            x_test=x_test,
            y_test=test_labels,
            num_classes=len(classes),
        )
