"""Consistency regularisation (Hou et al. 2024): equivalences, reference values, hooks, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import tiny_data
from noiseproof.chip import chip_params
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.methods.base import StepContext
from noiseproof.methods.consistency import block_names, resolve_layers
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from reference.hou_consistency import consistency_loss

NOISE = create_noise({"name": "additive_gaussian", "eta": 0.2, "scale": "layer"})


def fresh(name: str, data: Dataset, **params) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": name, **params}, data.input_shape, data.num_outputs)


def context(model: nn.Module, noise=NOISE, seed: int = 0) -> StepContext:
    return StepContext(model, chip_params(model), noise, torch.Generator().manual_seed(seed))


def value(tensor: torch.Tensor) -> float:
    return float(tensor.detach())


def batch(shape=(1, 8, 8), n=32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, 3, (n,), generator=gen)


# --- lambda 0 is forward noise training, step for step -------------------------------------------


@pytest.mark.parametrize(
    "model", [{"name": "mlp", "hidden": [16, 16]}, {"name": "resnet20", "width": 4}]
)
def test_lambda_zero_equals_noise_injection_step_for_step(model):
    data = tiny_data()
    config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05)
    trained = {}
    for spec in [{"name": "noise_injection"}, {"name": "consistency", "lam": 0.0}]:
        net = fresh(model["name"], data, **{k: v for k, v in model.items() if k != "name"})
        result = train(net, data, create_method(spec), config, noise=NOISE, seed=3, progress=False)
        trained[spec["name"]] = (net.state_dict(), [row["task"] for row in result.history])
    (a, task_a), (b, task_b) = trained["noise_injection"], trained["consistency"]
    assert task_a == task_b
    assert a.keys() == b.keys()
    for key in a:  # weights and BatchNorm running statistics alike
        assert torch.equal(a[key], b[key]), key


# --- zero noise gives a zero term ----------------------------------------------------------------


@pytest.mark.parametrize("distance", ["mse", "cosine", "kl"])
@pytest.mark.parametrize("name", ["mlp", "resnet20"])
def test_zero_noise_gives_zero_consistency(distance, name):
    data = tiny_data()
    model = fresh(name, data).train()
    ctx = context(model, create_noise({"name": "additive_gaussian", "eta": 0.0}))
    terms = create_method({"name": "consistency", "distance": distance}).terms(ctx, *batch())
    # cosine: 1 - cos(a, a) is 0 up to rounding of the norms (float32 eps ~ 1.2e-7)
    assert abs(value(terms["consistency"])) <= (1e-6 if distance == "cosine" else 0.0)
    assert value(terms["task"]) > 0


def test_nonzero_noise_gives_positive_consistency():
    data = tiny_data()
    model = fresh("mlp", data).train()
    for distance in ["mse", "cosine", "kl"]:
        terms = create_method({"name": "consistency", "distance": distance}).terms(
            context(model), *batch()
        )
        assert value(terms["consistency"]) > 1e-4, distance


# --- against a hand-written reference ------------------------------------------------------------


@pytest.mark.parametrize("detach_clean", [True, False])
def test_matches_hand_written_reference_values_and_gradients(detach_clean):
    data = tiny_data()
    model = fresh("mlp", data, hidden=[16, 16]).train()
    x, y = batch()
    method = create_method({"name": "consistency", "lam": 2.5, "detach_clean": detach_clean})
    terms = method.terms(context(model, seed=7), x, y)
    ours = torch.autograd.grad(sum(terms.values()), list(model.parameters()))

    weights = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    gen = torch.Generator().manual_seed(7)
    task, cons = consistency_loss(weights, x, y, 0.2, 2.5, gen, detach_clean=detach_clean)
    theirs = torch.autograd.grad(task + cons, weights)
    torch.testing.assert_close(terms["task"], task)
    torch.testing.assert_close(terms["consistency"], cons)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_detach_clean_changes_the_gradient_and_uses_one_graph():
    data = tiny_data()
    model = fresh("mlp", data, hidden=[16, 16]).train()
    x, y = batch()
    grads = {}
    for detach in (True, False):
        method = create_method({"name": "consistency", "detach_clean": detach})
        term = method.terms(context(model, seed=2), x, y)["consistency"]
        grads[detach] = torch.autograd.grad(term, list(model.parameters()), allow_unused=True)
    # the output layer is not compared: no gradient from the term either way
    assert grads[True][-1] is None and grads[False][-1] is None
    pairs = zip(grads[True][:-2], grads[False][:-2], strict=True)
    assert not any(torch.allclose(a, b) for a, b in pairs)


def test_two_forwards_per_step_and_clean_features_without_graph():
    data = tiny_data()
    model = fresh("mlp", data, hidden=[16, 16]).train()
    calls, clean_grad = [], []
    model.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    model[1].register_forward_hook(lambda m, i, o: clean_grad.append(o.requires_grad))
    create_method("consistency").terms(context(model), *batch())
    assert len(calls) == 2
    assert clean_grad == [True, False]  # noisy branch in the graph, detached clean branch not


# --- hooks never outlive a step ------------------------------------------------------------------


class Explodes(nn.Module):
    """A module that fails on its forward, after the hooked block."""

    def forward(self, x):
        raise RuntimeError("boom")


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_removed_after_a_normal_step():
    data = tiny_data(shape=(1, 28, 28))
    for name in ["mlp", "cnn", "resnet20"]:
        model = fresh(name, data).train()
        create_method("consistency").terms(context(model), *batch(shape=(1, 28, 28), n=4))
        assert hook_count(model) == 0, name


def test_hooks_removed_when_the_step_raises():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 8), Explodes())
    method = create_method({"name": "consistency", "layers": ["1", "3"]})
    with pytest.raises(RuntimeError, match="boom"):
        method.terms(context(model), *batch())
    assert hook_count(model) == 0


def test_hooks_removed_when_a_layer_returns_no_tensor():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 3)

        def forward(self, x):
            return (self.lin(x.flatten(1)), None)

    model = nn.Sequential(Pair(), nn.Identity())
    model[1].forward = lambda pair: pair[0]
    method = create_method({"name": "consistency", "layers": ["0"]})
    with pytest.raises(NoiseproofError, match="returns tuple"):
        method.terms(context(model), *batch())
    assert hook_count(model) == 0


# --- which layers --------------------------------------------------------------------------------


def test_block_names_of_the_builtin_models():
    data = tiny_data(shape=(1, 28, 28))
    mlp = fresh("mlp", data)
    assert block_names(mlp) == ["1", "3"]  # hidden Linear layers, not logits
    resnet = fresh("resnet20", data)
    blocks = block_names(resnet)
    basic = [n for n, m in resnet.named_modules() if type(m).__name__ == "BasicBlock"]
    assert blocks == ["0.0", *basic]  # stem convolution then every BasicBlock
    lenet = fresh("lenet5", data)
    assert block_names(lenet) == ["0.0", "0.3", "1", "3"]


def test_layer_patterns_and_output():
    data = tiny_data()
    model = fresh("resnet20", data)
    assert resolve_layers(model, ("*.conv2",))[0] == "2.conv2"
    assert resolve_layers(model, ("output", "9")) == ["output", "9"]
    assert resolve_layers(model, ("blocks", "output")) == [*block_names(model), "output"]
    assert resolve_layers(model, None) == block_names(model)
    with pytest.raises(NoiseproofError, match="matches no module"):
        resolve_layers(model, ("nope*",))
    method = create_method({"name": "consistency", "layers": "*.conv2", "distance": "cosine"})
    terms = method.terms(context(model.train()), *batch())
    assert value(terms["consistency"]) > 0


def test_model_without_blocks_asks_for_layers():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))  # only the output layer
    with pytest.raises(NoiseproofError, match="name the layers"):
        create_method("consistency").terms(context(model), *batch())
    terms = create_method({"name": "consistency", "layers": "output"}).terms(
        context(model), *batch()
    )
    assert value(terms["consistency"]) > 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"lam": -1}, "lam"),
        ({"distance": "l1"}, "distance"),
        ({"distance": "kl", "layers": ["1"]}, "logits"),
        ({"layers": []}, "at least one"),
        ({"detach": True}, "detach"),
        ({"noise": "nope"}, "unknown noise model"),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(spec, message):
    with pytest.raises(NoiseproofError, match=message) as error:
        create_method({"name": "consistency", **spec})
    assert "\n" not in str(error.value)


def test_needs_a_noise_model():
    data = tiny_data()
    model = fresh("mlp", data)
    with pytest.raises(NoiseproofError, match="needs a noise model"):
        create_method("consistency").terms(context(model, noise=None), *batch())


def test_own_noise_and_level_override_the_experiment():
    data = tiny_data()
    model = fresh("mlp", data).train()
    own = create_method({"name": "consistency", "noise": {"name": "additive_gaussian", "eta": 0}})
    assert value(own.terms(context(model), *batch())["consistency"]) == 0.0
    zero_level = create_method({"name": "consistency", "level": 0.0})
    assert value(zero_level.terms(context(model), *batch())["consistency"]) == 0.0
    assert own.spec()["noise"]["name"] == "additive_gaussian"
