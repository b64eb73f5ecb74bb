"""The bad files the corpus feeds the commands: configs, data files, checkpoints, run folders.

`make_corpus_files(root)` writes them all once under `root` and returns {key: path as str}, the
keys the corpus table's argv templates name as `{key}`.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from noiseproof.chip import ChipSelection
from noiseproof.cli import cli
from noiseproof.models import models
from noiseproof.training.checkpoints import save_checkpoint
from noiseproof.training.config import TrainConfig

QUICK_RUN = [
    "compare",
    "--dataset",
    "moons",
    "--model",
    "mlp",
    "--epochs",
    "1",
    "--transfers",
    "2",
    "--levels",
    "0,0.1",
    "--set",
    "model.hidden=[8]",
    "--set",
    "methods=[standard]",
]
"""A compare run of a few seconds (moons, 1 epoch, 2 transfers): the finished run folder."""

MOONS_MODEL = {"name": "mlp", "hidden": [8]}
REMOVE = object()
"""A `moons_meta` change that deletes the key."""


def moons_meta(**changes: object) -> dict:
    """Valid metadata of an mlp trained on moons (2 inputs, 1 logit); `changes` applied on top
    (a value of REMOVE deletes the key)."""
    meta = {
        "model": MOONS_MODEL,
        "input_shape": [2],
        "num_outputs": 1,
        "label": "standard",
        "dataset": {"name": "moons"},
        "method": {"name": "standard"},
        "train": TrainConfig().model_dump(mode="json"),
        "train_noise": None,
        "chip": ChipSelection().model_dump(mode="json"),
        "seed": 0,
        "history": [],
    }
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not REMOVE}


def idx_file(path: Path, array: np.ndarray) -> None:
    """An IDX file (float32 0x0D or uint8 0x08) holding `array`."""
    code, dtype = (0x0D, ">f4") if array.dtype.kind == "f" else (0x08, ">u1")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(dtype).tobytes())


def make_corpus_files(root: Path) -> dict[str, str]:
    """Write every bad (and the few good) input files under `root`; {key: path}."""
    files: dict[str, Path] = {}

    def text(key: str, content: str) -> None:
        files[key] = root / f"{key}.yaml"
        files[key].write_text(content)

    files["binary_yaml"] = root / "binary.yaml"
    files["binary_yaml"].write_bytes(bytes(range(256)) * 8)
    text("dup_key", "levels: [0.1]\ntransfers: 3\nlevels: [0.2]\n")
    text("dup_nested_key", "train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    text("broken_yaml", "methods: [standard\nlevels: 0.1\n")
    text("scalar_yaml", "just a string\n")
    text("list_yaml", "- standard\n- dropout\n")
    text("empty_yaml", "")
    text("unknown_key", "levels: [0.1]\nlevles: [0.2]\n")
    text("bad_range_merged", "dataset: {val_fraction: 2.0}\n")
    text("section_type", "train: fast\n")
    text("python_tag", "levels: !!python/object/apply:os.system ['true']\n")

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2

    def npz(key: str, **arrays: np.ndarray) -> None:
        files[key] = root / f"{key}.npz"
        np.savez(files[key], **arrays)

    npz("npz_ok", x=x, y=y)
    npz("npz_nan", x=np.where(np.arange(120).reshape(40, 3) == 7, np.nan, x), y=y)
    npz("npz_inf", x=np.where(np.arange(120).reshape(40, 3) == 9, -np.inf, x), y=y)
    npz("npz_overflow", x=x * 1e300, y=y)  # finite in float64, inf once cast to float32
    npz("npz_negative_label", x=x, y=y - 1)
    npz("npz_fractional_label", x=x, y=y + 0.5)
    npz("npz_no_y", x=x)
    npz("npz_empty", x=np.zeros((0, 3)), y=np.zeros(0, dtype=np.int64))
    npz("npz_one_class", x=x, y=np.zeros(40, dtype=np.int64))
    npz("npz_other_shape", x=rng.normal(size=(10, 5)), y=np.arange(10) % 2)
    npz("npz_text", x=np.array([["a", "b"]] * 4), y=np.arange(4) % 2)
    files["npz_garbage"] = root / "garbage.npz"
    files["npz_garbage"].write_bytes(b"PK\x03\x04 not really a zip archive")

    files["idx_nan"] = root / "idx_nan"
    files["idx_nan"].mkdir()
    images = rng.random((6, 2, 2)).astype(np.float32)
    images[3, 1, 0] = np.nan
    labels = (np.arange(6) % 2).astype(np.uint8)
    for prefix in ("train", "t10k"):
        idx_file(files["idx_nan"] / f"{prefix}-images-idx3-ubyte", images)
        idx_file(files["idx_nan"] / f"{prefix}-labels-idx1-ubyte", labels)

    weights = models.create(MOONS_MODEL).build((2,), 1).state_dict()

    def ckpt(key: str, meta: dict, state: dict | None = None) -> None:
        files[key] = root / f"{key}.pt"
        save_checkpoint(files[key], weights if state is None else state, meta)

    ckpt("ckpt", moons_meta())
    ckpt("ckpt_no_method", moons_meta(method=REMOVE))
    ckpt("ckpt_shape_text", moons_meta(input_shape="2"))
    ckpt("ckpt_outputs_bool", moons_meta(num_outputs=True))
    ckpt("ckpt_model_unnamed", moons_meta(model={"hidden": [8]}))
    ckpt("ckpt_label_int", moons_meta(label=7))
    ckpt("ckpt_dataset_number", moons_meta(dataset=5))
    ckpt("ckpt_unknown_model", moons_meta(model={"name": "mystery-net"}))
    ckpt("ckpt_bad_chip", moons_meta(chip={"layers": ["Linear"], "colour": "red"}))
    ckpt("ckpt_wrong_weights", moons_meta(model={"name": "mlp", "hidden": [16]}))
    ckpt("ckpt_empty_meta", {})
    files["ckpt_garbage"] = root / "garbage.pt"
    files["ckpt_garbage"].write_bytes(b"\x80\x04 this is no checkpoint" * 10)
    files["ckpt_truncated"] = root / "truncated.pt"
    files["ckpt_truncated"].write_bytes(files["ckpt"].read_bytes()[:300])
    files["ckpt_foreign"] = root / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, files["ckpt_foreign"])
    files["ckpt_missing"] = root / "absent.pt"

    files["a_file"] = root / "a_file.txt"
    files["a_file"].write_text("not a folder\n")
    files["run"] = root / "run"
    result = CliRunner().invoke(cli, [*QUICK_RUN, "--out", str(files["run"])])
    assert result.exit_code == 0, result.output
    files["run_truncated"] = root / "run_truncated"
    shutil.copytree(files["run"], files["run_truncated"])
    job = sorted((files["run_truncated"] / "jobs").glob("*.json"))[0]
    job.write_bytes(job.read_bytes()[: len(job.read_bytes()) // 2])
    return {key: str(path) for key, path in files.items()}
