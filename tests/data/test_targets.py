"""The Dataset's targets: class indices, token targets, regression values; every mismatch
refused in one line naming the split; from_tensors/from_torch and the npz loader with each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noiseproof.data import IGNORE_INDEX, Dataset, load_dataset
from noiseproof.data.base import IGNORE_INDEX as BASE_IGNORE_INDEX
from noiseproof.errors import NoiseproofError

X = torch.randn(6, 3)


def make(y_train, y_val, y_test, num_classes, **kwargs) -> Dataset:
    return Dataset(
        "d", X, y_train, X[: len(y_val)], y_val, X[: len(y_test)], y_test, num_classes, **kwargs
    )


def refused(error: type[Exception], *args, **kwargs) -> str:
    with pytest.raises(error) as info:
        make(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_ignore_index_is_exported_from_base():
    assert IGNORE_INDEX == BASE_IGNORE_INDEX == -100


def test_class_indices_as_before():
    y = torch.tensor([0, 1, 2, 0, 1, 2], dtype=torch.int32)
    data = make(y, y[:2], y[:3], 3)
    assert data.y_train.dtype == torch.int64 and data.targets == "classes"
    assert data.num_outputs == 3 and data.vocabulary is None
    binary = make(y % 2, y[:2] % 2, y[:3] % 2, 2, one_logit=True)
    assert binary.num_outputs == 1


def test_token_targets_with_ignore_index():
    y = torch.randint(0, 5, (6, 4))
    y[0, :2] = IGNORE_INDEX
    data = make(y, y[:2], y[:3], 5)
    assert data.targets == "tokens" and data.num_outputs == 5
    assert data.y_train.dtype == torch.int64 and data.y_train.shape == (6, 4)
    every_position_ignored = torch.full((3, 4), IGNORE_INDEX)
    assert make(y, y[:2], every_position_ignored, 5).y_test.shape == (3, 4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_regression_targets_stored_as_float32(dtype):
    y = torch.randn(6).to(dtype)
    data = make(y, y[:2], y[:3], None)
    assert data.y_train.dtype == data.y_test.dtype == torch.float32
    assert data.targets == "regression" and data.num_outputs == 1 and data.num_classes is None
    wide = torch.randn(6, 4, dtype=dtype)
    assert make(wide, wide[:2], wide[:3], None).num_outputs == 4


def test_empty_validation_takes_the_training_targets_kind():
    y = torch.randn(6, 2)
    data = make(y, torch.empty(0, dtype=torch.long), y[:3], None)
    assert data.y_val.shape == (0, 2) and data.y_val.dtype == torch.float32
    tokens = torch.zeros(6, 3, dtype=torch.long)
    assert make(tokens, torch.empty(0), tokens[:3], 2).y_val.shape == (0, 3)


@pytest.mark.parametrize(
    ("error", "args", "message"),
    [
        (
            TypeError,
            (torch.randn(6), torch.randn(2), torch.randn(3), 3),
            "y_train: float targets are regression targets: num_classes must be None",
        ),
        (
            TypeError,
            (
                torch.zeros(6, dtype=torch.long),
                torch.zeros(2, dtype=torch.long),
                torch.zeros(3, dtype=torch.long),
                None,
            ),
            "y_train holds integer targets (class indices): num_classes must be an int >= 2",
        ),
        (
            ValueError,
            (
                torch.tensor([0, 1, 2, 0, 1, 5]),
                torch.zeros(2, dtype=torch.long),
                torch.zeros(3, dtype=torch.long),
                3,
            ),
            "y_train holds labels outside [0, 3)",
        ),
        (
            ValueError,
            (
                torch.tensor([0, 1, 2, 0, 1, -100]),
                torch.zeros(2, dtype=torch.long),
                torch.zeros(3, dtype=torch.long),
                3,
            ),
            "y_train holds labels outside [0, 3)",
        ),
        (
            ValueError,
            (
                torch.zeros(6, 2, dtype=torch.long),
                torch.zeros(2, 2, dtype=torch.long),
                torch.tensor([[0, 1], [-1, 0], [0, 0]]),
                3,
            ),
            "y_test holds labels outside [0, 3) (or the ignore index -100)",
        ),
        (
            ValueError,
            (
                torch.zeros(6, 2, dtype=torch.long),
                torch.zeros(2, 2, dtype=torch.long),
                torch.full((3, 2), 3),
                3,
            ),
            "y_test holds labels outside [0, 3)",
        ),
        (
            ValueError,
            (torch.tensor([0.0, 1.0, float("nan"), 0, 0, 0]), torch.zeros(2), torch.zeros(3), None),
            "y_train holds NaN or infinite values",
        ),
        (
            ValueError,
            (
                torch.zeros(6),
                torch.zeros(2),
                torch.tensor([0.0, 1e300, 0.0], dtype=torch.float64),
                None,
            ),
            "y_test holds NaN or infinite values (as float32)",
        ),
        (
            TypeError,
            (torch.zeros(6), torch.zeros(2, dtype=torch.long), torch.zeros(3), None),
            "y_val holds class indices [N] but y_train holds regression targets",
        ),
        (
            TypeError,
            (
                torch.zeros(6, 2, dtype=torch.long),
                torch.zeros(2, 2, dtype=torch.long),
                torch.zeros(3, dtype=torch.long),
                2,
            ),
            "y_test holds class indices [N] but y_train holds token targets [N, T]",
        ),
        (
            ValueError,
            (
                torch.zeros(6, 2, dtype=torch.long),
                torch.zeros(2, 2, dtype=torch.long),
                torch.zeros(3, 4, dtype=torch.long),
                2,
            ),
            "y_test has targets of shape (4,) per example, y_train (2,)",
        ),
        (
            ValueError,
            (torch.zeros(6, 2), torch.zeros(2, 3), torch.zeros(3, 2), None),
            "y_val has targets of shape (3,) per example, y_train (2,)",
        ),
        (
            TypeError,
            (torch.zeros(6, 2, 2), torch.zeros(2, 2, 2), torch.zeros(3, 2, 2), None),
            "y_train must hold class indices [N]",
        ),
        (
            TypeError,
            (
                [0, 1, 0, 1, 0, 1],
                torch.zeros(2, dtype=torch.long),
                torch.zeros(3, dtype=torch.long),
                2,
            ),
            "y_train must be a tensor of targets",
        ),
        (
            TypeError,
            (torch.zeros(6, dtype=torch.complex64), torch.zeros(2), torch.zeros(3), None),
            "y_train must be a tensor of targets",
        ),
        (
            ValueError,
            (torch.zeros(6, 0), torch.zeros(2, 0), torch.zeros(3, 0), None),
            "y_train has no target per example",
        ),
        (
            ValueError,
            (torch.zeros(5), torch.zeros(2), torch.zeros(3), None),
            "x_train and y_train differ in length (6 vs 5)",
        ),
    ],
)
def test_mismatches_refused_in_one_line(error, args, message):
    assert message in refused(error, *args)


def test_num_classes_rules_keep_their_messages():
    y = torch.zeros(6, dtype=torch.long)
    assert "num_classes must be an int" in refused(TypeError, y, y[:2], y[:3], True)
    assert "num_classes must be >= 2, got 1" in refused(ValueError, y, y[:2], y[:3], 1)
    message = "one_logit needs num_classes == 2"
    assert message in refused(ValueError, y, y[:2], y[:3], 3, one_logit=True)
    floats = torch.zeros(6)
    assert message in refused(ValueError, floats, floats[:2], floats[:3], None, one_logit=True)


def test_vocabulary_is_a_json_ready_dict():
    y = torch.zeros(6, 2, dtype=torch.long)
    vocabulary = {"tokenizer": "char", "tokens": ["a", "b"]}
    data = make(y, y[:2], y[:3], 2, vocabulary=vocabulary)
    vocabulary["tokens"].append("c")  # the Dataset keeps its own copy
    assert data.vocabulary == {"tokenizer": "char", "tokens": ["a", "b"]}
    assert "vocabulary must be a dict" in refused(TypeError, y, y[:2], y[:3], 2, vocabulary="x")
    needs = "needs a string 'tokenizer'"
    assert needs in refused(ValueError, y, y[:2], y[:3], 2, vocabulary={"tokens": []})
    bad = {"tokenizer": "char", "tokens": {1, 2}}
    assert "JSON-serialisable" in refused(ValueError, y, y[:2], y[:3], 2, vocabulary=bad)


# from_tensors / from_torch


def test_from_tensors_float_targets_are_regression():
    x, y = torch.randn(50, 3), torch.randn(50, dtype=torch.float64)
    data = Dataset.from_tensors(x, y, x[:10], y[:10], val_fraction=0.2)
    assert data.num_classes is None and data.targets == "regression" and data.num_outputs == 1
    assert data.y_train.dtype == torch.float32 and (len(data.y_train), len(data.y_val)) == (40, 10)
    with pytest.raises(TypeError, match="num_classes must be None"):
        Dataset.from_tensors(x, y, x[:10], y[:10], num_classes=3)


def test_from_tensors_token_targets_infer_classes_past_the_ignore_index():
    x = torch.randint(0, 7, (20, 5))
    y = torch.randint(0, 6, (20, 5))
    y[:, 0] = IGNORE_INDEX
    y[3, 2] = 6
    data = Dataset.from_tensors(x, y, x[:4], y[:4])
    assert data.num_classes == 7 and data.targets == "tokens" and data.y_val.shape[1:] == (5,)
    every = torch.full((4, 5), IGNORE_INDEX)
    assert Dataset.from_tensors(x[:4], every, x[:4], every).num_classes == 2


def test_from_tensors_refuses_an_absurd_label_unless_num_classes_is_given():
    x, y = torch.randn(10, 2), torch.arange(10) % 3
    y[4] = 2**31 - 1
    with pytest.raises(ValueError, match="y_train holds label 2147483647: more than 1,000,000"):
        Dataset.from_tensors(x, y, x, y % 3, val_fraction=0.0)
    given = Dataset.from_tensors(x, y, x, y % 3, num_classes=2**31)
    assert given.num_classes == 2**31
    with pytest.raises(TypeError, match="y_train must be a tensor of targets"):
        Dataset.from_tensors(x, [0] * 10, x, y)


def test_from_torch_keeps_the_targets_dtype():
    x = torch.randn(12, 2)
    values = [(x[i], float(i) / 10) for i in range(12)]
    tokens = [(x[i], torch.tensor([i % 3, IGNORE_INDEX])) for i in range(12)]
    classes = [(x[i], i % 4) for i in range(12)]
    regression = Dataset.from_torch(values, values[:3])
    assert regression.targets == "regression" and regression.num_classes is None
    assert Dataset.from_torch(tokens, tokens[:3]).y_train.shape[1:] == (2,)
    assert Dataset.from_torch(classes, classes[:3]).num_classes == 4


# the npz dataset


def npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_npz_float_targets_are_regression(tmp_path):
    rng = np.random.default_rng(0)
    path = npz(tmp_path / "r.npz", x=rng.normal(size=(40, 3)), y=rng.normal(size=(40, 2)))
    data = load_dataset({"name": "npz", "train": path})
    assert data.targets == "regression" and data.num_outputs == 2
    assert data.y_train.dtype == torch.float32 and data.x_train.dtype == torch.float32
    # whole-number floats: regression by default, class labels with num_classes
    whole = npz(tmp_path / "w.npz", x=rng.normal(size=(40, 3)), y=np.arange(40.0) % 3)
    assert load_dataset({"name": "npz", "train": whole}).targets == "regression"
    labelled = load_dataset({"name": "npz", "train": whole, "num_classes": 3})
    assert labelled.targets == "classes" and labelled.y_train.dtype == torch.int64
    forced = load_dataset({"name": "npz", "train": whole, "targets": "classes"})
    assert forced.num_classes == 3
    ints = npz(tmp_path / "i.npz", x=rng.normal(size=(40, 3)), y=np.arange(40) % 3)
    assert load_dataset({"name": "npz", "train": ints, "targets": "regression"}).num_outputs == 1


def test_npz_token_targets(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 9, (30, 6))
    y[:, :2] = IGNORE_INDEX
    path = npz(tmp_path / "t.npz", x=rng.normal(size=(30, 6, 2)), y=y)
    data = load_dataset({"name": "npz", "train": path})
    assert data.targets == "tokens" and data.num_classes == int(y.max()) + 1
    assert data.y_train.shape[1:] == (6,)


def test_npz_refusals(tmp_path):
    x = np.zeros((10, 2))
    absurd = npz(tmp_path / "absurd.npz", x=x, y=np.array([0, 1] * 4 + [1, 2**31 - 1]))
    with pytest.raises(NoiseproofError) as info:
        load_dataset({"name": "npz", "train": absurd})
    message = str(info.value)
    assert "\n" not in message and "labels go up to 2147483647" in message
    assert "set num_classes" in message and "dataset 'npz'" in message
    floats = npz(tmp_path / "f.npz", x=x, y=np.linspace(0, 1, 10))
    with pytest.raises(NoiseproofError, match="num_classes and one_logit apply to class labels"):
        load_dataset({"name": "npz", "train": floats, "one_logit": True})
    with pytest.raises(NoiseproofError, match="non-negative integer class labels"):
        load_dataset({"name": "npz", "train": floats, "num_classes": 3})
    nan = npz(tmp_path / "n.npz", x=x, y=np.array([np.nan] + [0.5] * 9))
    with pytest.raises(NoiseproofError, match="'y' holds 1 non-finite value"):
        load_dataset({"name": "npz", "train": nan})
    negative = npz(tmp_path / "neg.npz", x=x, y=np.full((10, 3), -2))
    with pytest.raises(NoiseproofError, match=r"or -100, ignored, in token targets \[N, T\]"):
        load_dataset({"name": "npz", "train": negative})
    train = npz(tmp_path / "train.npz", x=x, y=np.arange(10) % 2)
    test = npz(tmp_path / "test.npz", x=x[:3], y=np.zeros(3))
    with pytest.raises(NoiseproofError, match="differs from the train file's"):
        load_dataset({"name": "npz", "train": train, "test": test})
