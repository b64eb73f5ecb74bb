"""The diabetes regression dataset: shapes, standardisation on train, determinism."""

from __future__ import annotations

import torch

from noiseproof.data import load_dataset


def test_shapes_and_float_targets():
    data = load_dataset("diabetes")
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (319, 35, 88)
    assert data.input_shape == (10,) and data.num_classes is None and data.num_outputs == 1
    assert data.targets == "regression" and data.y_train.dtype == torch.float32
    assert data.y_train.shape == (319,)


def test_standardised_on_the_training_split():
    data = load_dataset("diabetes")
    assert torch.allclose(data.x_train.mean(0), torch.zeros(10), atol=1e-5)
    assert torch.allclose(data.x_train.std(0, correction=0), torch.ones(10), atol=1e-5)
    assert abs(float(data.y_train.mean())) < 1e-5
    assert abs(float(data.y_train.std(correction=0)) - 1) < 1e-5
    assert abs(float(data.y_test.mean())) < 0.5  # the test split's own statistics differ
    raw = load_dataset({"name": "diabetes", "standardize_target": False})
    assert float(raw.y_train.min()) >= 25 and float(raw.y_train.max()) <= 346
    assert torch.equal(raw.x_train, data.x_train)


def test_deterministic_and_seeded():
    first, again = load_dataset("diabetes"), load_dataset("diabetes")
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(first, split), getattr(again, split))
    other = load_dataset({"name": "diabetes", "seed": 1})
    assert not torch.equal(first.y_test, other.y_test)
    small = load_dataset({"name": "diabetes", "max_train": 50, "test_fraction": 0.5})
    assert (len(small.x_train), len(small.x_val), len(small.x_test)) == (45, 5, 221)
