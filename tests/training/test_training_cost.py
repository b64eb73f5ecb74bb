"""Every training records what it cost: steps, examples, model forwards and FLOPs counted by
torch's own counter, checked against a hand count and across methods."""

from __future__ import annotations

import torch
from torch import nn

import noiseproof as nf


def data() -> nf.Dataset:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 8, generator=gen), torch.randint(0, 4, (60,), generator=gen)
    return nf.Dataset.from_tensors(x[:50], y[:50], x[50:], y[50:], val_fraction=0.2)


def cost(method, model: nn.Module | None = None) -> dict:
    torch.manual_seed(0)
    model = model or nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    result = nf.train(
        model,
        data(),
        nf.create_method(method),
        nf.TrainConfig(epochs=2, batch_size=16),
        noise=nf.create_noise("relative_gaussian"),
        progress=False,
    )
    return result.cost


def test_flops_of_one_linear_layer_by_hand():
    """Linear(8, 4) on B examples: forward 2*8*4*B multiply-adds-as-two, backward the weight
    gradient 2*8*4*B (no input gradient: the data needs none)."""
    spent = cost("standard", nn.Linear(8, 4))
    assert spent["flops_per_example"] == 2 * 2 * 8 * 4
    assert spent["examples"] == 2 * 40 and spent["steps"] == 2 * 3  # 40 train examples, batch 16
    assert spent["flops"] == spent["examples"] * 128
    assert spent["forwards"] == spent["steps"] and spent["device"] == "cpu"
    assert spent["seconds"] > 0


def test_the_adversarial_attack_costs_its_passes():
    """n_steps 3: the clean pass, three attack passes and the pass at theta*: five forwards and
    five forward+backward FLOPs per step of standard's."""
    standard, attacked = cost("standard"), cost({"name": "adversarial", "n_steps": 3})
    assert attacked["forwards"] == 5 * standard["forwards"]
    assert attacked["flops"] == 5 * standard["flops"]
    assert cost("noise_injection")["flops"] == standard["flops"]
