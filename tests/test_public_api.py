"""The one-import API: `import noiseproof as nf`, lazily, and the containers users build."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import noiseproof as nf
from noiseproof.chip import forward
from zoo import DictOut, Keywords


def test_every_public_name_resolves():
    for name in nf.__all__:
        assert getattr(nf, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nf.nope  # noqa: B018


def test_importing_the_package_imports_no_torch():
    code = "import sys, noiseproof; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


class Pairs(torch.utils.data.Dataset):
    """A user's dataset yielding ({'features': x, 'mask': m}, label)."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=gen)
        self.mask = (torch.rand(n, 6, generator=gen) > 0.5).float()
        self.y = torch.randint(0, 3, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return {"features": self.x[i], "mask": self.mask[i]}, int(self.y[i])


def test_dataset_from_torch_keeps_dict_inputs_that_reach_forward_as_keywords():
    data = nf.Dataset.from_torch(Pairs(40, 0), Pairs(10, 1), val_fraction=0.25)
    assert set(data.x_train) == {"features", "mask"}
    assert len(data.y_train) == 30 and len(data.y_val) == 10 and len(data.y_test) == 10
    assert data.input_shape == {"features": (6,), "mask": (6,)}
    assert data.num_classes == 3
    model = Keywords()
    logits = forward(model, None, data.x_test)
    expected = model(features=data.x_test["features"], mask=data.x_test["mask"])
    assert torch.equal(logits, expected)


def test_dataset_from_tensors_splits_validation_by_seed_and_checks_its_input():
    x, y = torch.randn(50, 4), torch.arange(50) % 2
    a = nf.Dataset.from_tensors(x, y, x[:5], y[:5], val_fraction=0.2, split_seed=3)
    b = nf.Dataset.from_tensors(x, y, x[:5], y[:5], val_fraction=0.2, split_seed=3)
    assert torch.equal(a.x_val, b.x_val) and len(a.y_val) == 10 and len(a.y_train) == 40
    assert a.num_classes == 2
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x_train holds NaN"):
        nf.Dataset.from_tensors(bad, y, x[:5], y[:5])
    with pytest.raises(ValueError, match="differ in length"):
        nf.Dataset.from_tensors(x, y[:-1], x[:5], y[:5])
    with pytest.raises(TypeError, match="y_test"):
        nf.Dataset.from_tensors(x, y, x[:5], y[:5].float())


def test_select_output_picks_the_logits_and_can_be_replaced_or_removed():
    model = DictOut()
    x = torch.randn(3, 6)
    with pytest.raises(nf.NoiseproofError, match="model.output"):
        forward(model, None, x)
    nf.select_output(model, "logits")
    assert torch.equal(forward(model, None, x), model.head(torch.relu(model.body(x))))
    nf.select_output(model, "features")
    assert forward(model, None, x).shape == (3, 8)
    assert len(model._forward_hooks) == 1
    nf.select_output(model, None)
    assert isinstance(model(x), dict) and not model._forward_hooks
    with pytest.raises(nf.NoiseproofError, match="'nope' is not in the model's output"):
        forward(nf.select_output(model, "nope"), None, x)


def test_run_transfers_refuses_a_missing_generator():
    model = nn.Linear(4, 2)
    x, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        nf.run_transfers(model, nf.create_noise("relative_gaussian"), x, y, 2, None)
