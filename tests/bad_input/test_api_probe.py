"""Python API inputs the model or the noise model cannot take: refused before any work with a
ValueError/TypeError naming the argument (train, compare, run_transfers, the attack and the
landscape probe the model on the first examples: noiseproof.evaluation.arguments.
check_outputs_fit; NoiseModel.sample checks params and generator), never torch's own error
from deep inside a forward or a draw. Organised as test_corpus.py's API_CASES: (id, call on
a namespace of inputs, exception type, fragment)."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import noiseproof as nf


class Single(nn.Module):
    """A forward of one input tensor (a tuple of two is one argument too many)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Custom(nf.NoiseModel):
    """A plugin-style noise model with its own `sample`: the base class checks its arguments."""

    registered_name = "custom-test"
    level_field = "scale"
    scale: float = 0.1

    def sample(self, params, generator):
        return {
            n: t + self.scale * torch.randn(t.shape, generator=generator) for n, t in params.items()
        }


def probe_inputs() -> SimpleNamespace:
    """Five-feature inputs in three classes, models reading 6 features (wrong) or 5 (right)."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 5, generator=gen), torch.randint(0, 3, (48,), generator=gen)
    return SimpleNamespace(
        x=x,
        y=y,
        data=nf.Dataset.from_tensors(x, y, x[:16], y[:16]),
        wide=nf.Dataset.from_tensors(x, y + 5, x[:16], y[:16]),
        pairs=nf.Dataset.from_tensors((x, x), y, (x[:16], x[:16]), y[:16]),
        six=nn.Sequential(nn.Linear(6, 3)),
        five=nn.Sequential(nn.Linear(5, 3)),
        method=nf.create_method("standard"),
        cfg=nf.TrainConfig(epochs=1),
        noise=nf.create_noise("relative_gaussian"),
        faults=nf.create_noise("stuck_at"),
        gen=torch.Generator().manual_seed(0),
        params={"w": torch.ones(3, 2)},
    )


def compare(model, data, **options) -> object:
    """A quick compare (one method, one level, two chips, one epoch) of `model` on `data`."""
    return nf.compare(
        model, data, methods="standard", levels=[0.1], transfers=2, train={"epochs": 1}, **options
    )


PROBE_CASES: list[tuple[str, Callable[[SimpleNamespace], object], type, str]] = [
    (
        "train-x-feature-size",
        lambda a: nf.train(a.six, a.data, a.method, a.cfg, progress=False),
        ValueError,
        "data.x_train: the model cannot run on inputs [8, 5] float32",
    ),
    (
        "train-x-dtype",
        lambda a: nf.train(
            a.five,
            nf.Dataset.from_tensors(a.x.long(), a.y, a.x[:16].long(), a.y[:16]),
            a.method,
            a.cfg,
            progress=False,
        ),
        ValueError,
        "data.x_train: the model cannot run on inputs [8, 5] int64",
    ),
    (
        "train-x-signature",
        lambda a: nf.train(Single(), a.pairs, a.method, a.cfg, progress=False),
        TypeError,
        "data.x_train: the model cannot run on inputs ([8, 5] float32, [8, 5] float32)",
    ),
    (
        "train-y-beyond-outputs",
        lambda a: nf.train(a.five, a.wide, a.method, a.cfg, progress=False),
        ValueError,
        "data.y_train holds labels outside [0, 3)",
    ),
    (
        "transfers-x-feature-size",
        lambda a: nf.run_transfers(a.six, a.noise, a.x, a.y, 3, a.gen),
        ValueError,
        "x: the model cannot run on inputs [8, 5] float32",
    ),
    (
        "transfers-x-nested-list",
        lambda a: nf.run_transfers(a.five, a.noise, a.x.tolist(), a.y, 3, a.gen),
        TypeError,
        "x holds a list",
    ),
    (
        "transfers-y-list",
        lambda a: nf.run_transfers(a.five, a.noise, a.x, a.y.tolist(), 3, a.gen),
        TypeError,
        "y must be a tensor",
    ),
    (
        "transfers-y-beyond-outputs",
        lambda a: nf.run_transfers(a.five, a.noise, a.x, a.y + 5, 3, a.gen),
        ValueError,
        "y holds labels outside [0, 3)",
    ),
    (
        "attack-x-feature-size",
        lambda a: nf.targeted_attack(a.six, a.x, a.y, generator=torch.Generator().manual_seed(0)),
        ValueError,
        "x: the model cannot run on inputs [8, 5]",
    ),
    (
        "landscape-x-feature-size",
        lambda a: nf.loss_landscape(a.six, a.x, a.y, generator=torch.Generator().manual_seed(0)),
        ValueError,
        "x: the model cannot run on inputs [8, 5]",
    ),
    (
        "compare-x-feature-size",
        lambda a: compare(a.six, a.data),
        ValueError,
        "data.x_train: the model cannot run on inputs [8, 5] float32",
    ),
    (
        "compare-function-x-feature-size",
        lambda a: compare(lambda: nn.Linear(6, 3), a.data),
        ValueError,
        "data.x_train: the model cannot run on inputs [8, 5] float32",
    ),
    (
        "compare-y-beyond-outputs",
        lambda a: compare(a.five, a.wide),
        ValueError,
        "data.y_train holds labels outside [0, 3)",
    ),
    (
        "compare-x-list",
        lambda a: compare(a.five, [a.x.tolist(), a.y, a.x, a.y]),
        TypeError,
        "x_train holds a list",
    ),
    (
        "compare-out-x-feature-size",
        lambda a: compare(a.six, a.data, out="run"),
        ValueError,
        "data.x_train: the model cannot run on inputs [8, 5] float32",
    ),
    (
        "compare-out-y-beyond-outputs",
        lambda a: compare(a.five, a.wide, out="run"),
        ValueError,
        "data.y_train holds labels outside [0, 3)",
    ),
    (
        "sample-params-list",
        lambda a: a.noise.sample([torch.ones(3)], a.gen),
        TypeError,
        "params must be a mapping of parameter name -> floating-point tensor",
    ),
    (
        "sample-params-key",
        lambda a: a.noise.sample({0: torch.ones(3)}, a.gen),
        TypeError,
        "params: key 0 is not a parameter name",
    ),
    (
        "sample-params-value",
        lambda a: a.noise.sample({"w": [1.0, 2.0]}, a.gen),
        TypeError,
        "params['w'] must be a tensor, got list",
    ),
    (
        "sample-params-integer",
        lambda a: a.noise.sample({"w": torch.ones(3, dtype=torch.long)}, a.gen),
        TypeError,
        "params['w'] must be a floating-point tensor, got torch.int64",
    ),
    (
        "sample-generator-int",
        lambda a: a.noise.sample(a.params, 0),
        TypeError,
        "generator must be a torch.Generator",
    ),
    (
        "sample-generator-none",
        lambda a: a.noise.sample(a.params, None),
        TypeError,
        "generator must be a torch.Generator",
    ),
    (
        "sample-with-faults-generator",
        lambda a: a.faults.sample_with_faults(a.params, "seed"),
        TypeError,
        "generator must be a torch.Generator",
    ),
    (
        "sample-plugin-params",
        lambda a: Custom().sample((torch.ones(3),), a.gen),
        TypeError,
        "params must be a mapping",
    ),
]


@pytest.mark.parametrize(
    ("call", "kind", "fragment"), [c[1:] for c in PROBE_CASES], ids=[c[0] for c in PROBE_CASES]
)
def test_refused_naming_the_argument_before_any_work(tmp_path, monkeypatch, call, kind, fragment):
    monkeypatch.chdir(tmp_path)
    inputs = probe_inputs()
    state = inputs.gen.get_state()
    weights = {k: v.clone() for k, v in inputs.six.state_dict().items()}
    with pytest.raises(kind) as caught:
        call(inputs)
    assert fragment in str(caught.value), caught.value
    assert "\n" not in str(caught.value)  # one line
    assert os.listdir(tmp_path) == []  # nothing written (compare's out= folder included)
    assert torch.equal(inputs.gen.get_state(), state)  # the caller's generator has not moved
    for name, tensor in inputs.six.state_dict().items():
        assert torch.equal(tensor, weights[name]), name  # nothing trained


def test_a_good_sample_still_draws():
    inputs = probe_inputs()
    out = inputs.noise.sample(inputs.params, inputs.gen)
    assert out["w"].shape == (3, 2) and not torch.equal(out["w"], inputs.params["w"])
    assert Custom().sample(inputs.params, inputs.gen)["w"].shape == (3, 2)
