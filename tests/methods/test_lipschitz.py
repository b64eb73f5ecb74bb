"""The `lipschitz` method: terms, validation, norms lowered, composition with noise injection."""

import pytest
import torch
from torch import nn

from noiseproof.chip import chip_params
from noiseproof.errors import NoiseproofError
from noiseproof.methods import StepContext, methods
from noiseproof.noise import noise_models
from noiseproof.tasks.classification import Classification

task_loss = Classification().loss  # the classifier loss the references are written with


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 10),
    )


def context(model: nn.Module, noise=None, seed: int = 0) -> StepContext:
    return StepContext(model, chip_params(model), noise, torch.Generator().manual_seed(seed))


def batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 10, (8,), generator=gen)


def exact_norms(model: nn.Module) -> dict[str, float]:
    from reference.conv_operator import conv_operator_norm

    shapes = {"0": (1, 8, 8), "2": (4, 8, 8)}
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            out[name] = conv_operator_norm(module, shapes[name])
        elif isinstance(module, nn.Linear):
            out[name] = float(torch.linalg.matrix_norm(module.weight.detach(), ord=2))
    return out


def test_terms_and_zero_weight_is_standard_training():
    model, (x, y) = small_cnn(), batch()
    method = methods.create({"name": "lipschitz", "weight": 0.0})
    ctx = context(model)
    with method.attached(ctx):
        terms = method.terms(ctx, x, y)
    assert set(terms) == {"task", "lipschitz"}
    assert float(terms["lipschitz"].detach()) == 0.0
    assert torch.equal(terms["task"], task_loss(model(x), y))


def test_regulariser_lowers_the_norms_it_targets():
    model, (x, y) = small_cnn(), batch()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # every layer well above the target
    before = exact_norms(model)
    target = 0.5
    assert min(before.values()) > 2 * target
    method = methods.create(
        {"name": "lipschitz", "weight": 10.0, "target": target, "iterations": 3}
    )
    ctx = context(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with method.attached(ctx):
        for _ in range(300):
            terms = method.terms(ctx, x, y)
            optimizer.zero_grad()
            terms["lipschitz"].backward()
            optimizer.step()
        with torch.no_grad():
            estimates = {k: float(v) for k, v in method.layer_norms(ctx).items()}
    after = exact_norms(model)
    for name in before:
        assert after[name] < target * 1.1, (name, before[name], after[name])
    # the estimate the penalty used agrees with the exact operator norms
    for name in after:
        assert estimates[name] == pytest.approx(after[name], rel=0.02)


def test_mode_both_pulls_small_norms_up():
    model, (x, y) = small_cnn(), batch()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.05)
    method = methods.create({"name": "lipschitz", "weight": 1.0, "target": 1.0, "mode": "both"})
    above = methods.create({"name": "lipschitz", "weight": 1.0, "target": 1.0})
    ctx = context(model)
    with method.attached(ctx):
        assert float(method.terms(ctx, x, y)["lipschitz"].detach()) > 0
        assert float(above.terms(context(model), x, y)["lipschitz"].detach()) == 0.0


def test_composes_with_noise_injection():
    model, (x, y) = small_cnn(), batch()
    noise = noise_models.create("lognormal")
    clean = task_loss(model(x), y)
    method = methods.create({"name": "lipschitz", "noise_level": 0.0})
    assert torch.allclose(method.terms(context(model, noise), x, y)["task"], clean)
    noisy = methods.create({"name": "lipschitz", "noise_level": 0.5})
    ctx = context(model, noise)
    task = noisy.terms(ctx, x, y)["task"]
    assert not torch.allclose(task, clean)
    task.backward()  # straight-through: gradients reach the clean parameters
    assert all(p.grad is not None for p in ctx.params.values())
    own = methods.create({"name": "lipschitz", "noise": {"name": "lognormal", "sigma": 0.5}})
    assert own.spec()["noise"]["sigma"] == 0.5
    with pytest.raises(NoiseproofError, match="needs a noise model"):
        noisy.terms(context(model, None), x, y)


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"weight": -1.0}, "weight"),
        ({"target": 0.0}, "target"),
        ({"iterations": 0}, "iterations"),
        ({"mode": "below"}, "mode"),
        ({"noise_level": -0.1}, "noise_level"),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(spec, field):
    with pytest.raises(NoiseproofError) as info:
        methods.create({"name": "lipschitz", **spec})
    message = str(info.value)
    assert "\n" not in message and field in message and "lipschitz" in message


def test_no_regularisable_layer_is_an_error():
    model, (x, y) = small_cnn(), batch()
    method = methods.create({"name": "lipschitz", "layers": ["Conv3d"]})
    with pytest.raises(NoiseproofError, match="no on-chip layer"):
        method.terms(context(model), x, y)
