"""noiseproof.arrays: which tensors share a crossbar array (one rule for PCM, TiO2, export)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noiseproof.arrays import array_groups, bias_name, layer_biases


def named(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters()}


def test_a_bias_belongs_to_its_weight_matrix_with_one_value_per_output():
    model = nn.ModuleDict(
        {
            "fc": nn.Linear(3, 4),
            "conv": nn.Conv2d(2, 5, 3),
            "gru": nn.GRU(2, 3),
            "norm": nn.LayerNorm(4),  # a 1-D weight is no matrix: its bias stays alone
        }
    )
    assert layer_biases(named(model)) == {
        "fc.weight": "fc.bias",
        "conv.weight": "conv.bias",
        "gru.weight_ih_l0": "gru.bias_ih_l0",
        "gru.weight_hh_l0": "gru.bias_hh_l0",
    }
    assert bias_name("a.weight_hh_l1") == "a.bias_hh_l1" and bias_name("a.scale") is None
    wrong_length = {"l.weight": torch.ones(4, 3), "l.bias": torch.ones(3)}
    assert layer_biases(wrong_length) == {}
    outside = {"l.weight": torch.ones(4, 3)}
    assert layer_biases(outside, {"l.bias": torch.ones(4)}) == {"l.weight": "l.bias"}


def test_placements_group_in_order_and_skip_empty_tensors():
    p = {
        "fc.weight": torch.ones(4, 3),
        "fc.bias": torch.ones(4),
        "lone.bias": torch.ones(5),
        "scalar": torch.tensor(0.5),
        "empty.weight": torch.zeros(0, 3),
    }
    assert array_groups(p, "digital") == [("fc.weight",), ("scalar",)]
    assert array_groups(p, "joined") == [("fc.weight", "fc.bias"), ("lone.bias",), ("scalar",)]
    assert array_groups(p, "separate") == [
        ("fc.weight",),
        ("fc.bias",),
        ("lone.bias",),
        ("scalar",),
    ]
    with pytest.raises(ValueError, match="placement"):
        array_groups(p, "row")
