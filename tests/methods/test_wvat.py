"""WVAT: weight reverse, the two pure variants p = 1 and p = 0, the coin, the ascent step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import tiny_data
from noiseproof.chip import chip_params
from noiseproof.config import ExperimentConfig, default_config, read_yaml
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.methods.base import StepContext
from noiseproof.methods.wvat import ascent_step
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.tasks.classification import Classification
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from noiseproof.yamlio import deep_merge
from reference.wvat_reference import wvat_ascent_step_inplace

task_loss = Classification().loss  # the classifier loss the references are written with

NOISE = create_noise({"name": "additive_gaussian", "eta": 0.2, "scale": "layer"})


def fresh(name: str = "mlp", **params) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": name, **params}, (1, 8, 8), 3)


def context(model: nn.Module, noise=NOISE, seed: int = 0) -> StepContext:
    return StepContext(model, chip_params(model), noise, torch.Generator().manual_seed(seed))


def batch(n=32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def sgd_step(model: nn.Module, terms: dict[str, torch.Tensor], lr: float) -> None:
    """What the trainer does with a method's terms: sum, backward, optimiser step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad(set_to_none=True)
    torch.stack(list(terms.values())).sum().backward()
    optimizer.step()


# --- weight reverse ------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_weights_land_where_the_optimiser_alone_puts_them(p):
    """After a step, w = w_before - lr * g(w + delta) exactly: no trace of delta is left."""
    model = fresh(hidden=[16])
    before = {n: w.detach().clone() for n, w in model.named_parameters()}
    sgd_step(model, create_method({"name": "wvat", "p": p}).terms(context(model), *batch()), 0.1)
    for name, w in model.named_parameters():
        alone = torch.add(before[name], w.grad, alpha=-0.1)  # the SGD update on the clean weights
        assert torch.equal(w.detach(), alone), name


def test_gradient_is_taken_at_the_perturbed_weights():
    """p = 1: the gradient equals that of the loss at the very weights the noise model drew."""
    model = fresh(hidden=[16])
    x, y = batch()
    ctx = context(model, seed=5)
    terms = create_method({"name": "wvat", "p": 1.0}).terms(ctx, x, y)
    grads = torch.autograd.grad(terms["task"], list(model.parameters()))
    drawn = NOISE.sample(
        {n: w.detach() for n, w in model.named_parameters()}, context(model, seed=5).generator
    )
    at = {n: w.clone().requires_grad_(True) for n, w in drawn.items()}
    loss = task_loss(torch.func.functional_call(model, at, (x,)), y)
    expected = torch.autograd.grad(loss, list(at.values()))
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_p_zero_matches_the_literal_in_place_perturb_and_reverse_reference():
    x, y = batch()
    ours, ref = fresh(hidden=[16]), fresh(hidden=[16])
    sgd_step(
        ours, create_method({"name": "wvat", "p": 0.0, "rho": 0.2}).terms(context(ours), x, y), 0.1
    )
    wvat_ascent_step_inplace(ref, x, y, rho=0.2, lr=0.1)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        # the reference's in-place add then subtract of delta rounds; ours never touches w
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_p_zero_on_a_batchnorm_vgg_with_momentum_and_decay_matches_the_literal_reference():
    """The paper's setting: a VGG (BatchNorm digital, so not varied) trained by SGD with
    momentum and weight decay; three steps of ours equal three literal perturb / reverse /
    step iterations, so momentum and decay act on the reversed weights in both."""
    spec = {"name": "vgg", "channels": [4, 8], "hidden": 8, "batchnorm": True}
    ours, ref = fresh(**spec), fresh(**spec)
    on_chip = list(chip_params(ours))
    norms = [m for m, module in ours.named_modules() if isinstance(module, nn.BatchNorm2d)]
    assert norms and not any(n.startswith(f"{m}.") for m in norms for n in on_chip)
    sgd = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    opt_ours = torch.optim.SGD(ours.parameters(), **sgd)
    opt_ref = torch.optim.SGD(ref.parameters(), **sgd)
    method = create_method({"name": "wvat", "p": 0.0, "rho": 0.1})
    for step in range(3):
        x, y = batch(seed=10 + step)
        opt_ours.zero_grad(set_to_none=True)
        method.terms(context(ours), x, y)["task"].backward()
        opt_ours.step()
        wvat_ascent_step_inplace(ref, x, y, rho=0.1, lr=0.05, on_chip=on_chip, optimizer=opt_ref)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


# --- the pure variants ---------------------------------------------------------------------------


def test_p_one_is_noise_injection_step_for_step():
    data = tiny_data()
    config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05)
    states = {}
    for spec in [{"name": "noise_injection"}, {"name": "wvat", "p": 1.0}]:
        model = fresh(hidden=[16, 16])
        result = train(
            model, data, create_method(spec), config, noise=NOISE, seed=3, progress=False
        )
        states[spec["name"]] = (model.state_dict(), [row["task"] for row in result.history])
    (a, task_a), (b, task_b) = states["noise_injection"], states["wvat"]
    assert task_a == task_b
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_p_zero_is_deterministic_and_needs_no_noise_model():
    """p = 0: every step is the ascent step; no coin, no noise model, no generator draw."""
    model = fresh(hidden=[16])
    ctx = context(model, noise=None)
    state = ctx.generator.get_state()
    method = create_method({"name": "wvat", "p": 0.0})
    first = method.terms(ctx, *batch())["task"]
    second = method.terms(ctx, *batch())["task"]
    assert torch.equal(ctx.generator.get_state(), state)
    assert torch.equal(first, second)
    clean = task_loss(model(batch()[0]), batch()[1])
    assert float(first.detach()) > float(clean.detach())  # the ascent step raised the loss


def test_p_one_needs_a_noise_model():
    with pytest.raises(NoiseproofError, match="needs a noise model"):
        create_method({"name": "wvat", "p": 1.0}).terms(context(fresh(), noise=None), *batch())


def test_probe_forward_leaves_batchnorm_statistics_alone():
    """p = 0 runs two forwards in training mode; the statistics take one update, not two."""
    x, y = batch()
    model = fresh("resnet20", width=4).train()
    create_method({"name": "wvat", "p": 0.0}).terms(context(model), x, y)
    counts = [b for n, b in model.named_buffers() if n.endswith("num_batches_tracked")]
    assert counts and all(int(c) == 1 for c in counts)
    means = [b for n, b in model.named_buffers() if n.endswith("running_mean")]
    assert all(not torch.equal(m, torch.zeros_like(m)) for m in means)


def test_coin_is_a_bernoulli_p_draw_from_the_training_generator():
    method = create_method({"name": "wvat", "p": 0.3})
    ctx = context(fresh(), seed=11)
    n = 4000
    hits = sum(method.random_branch(ctx) for _ in range(n))
    sigma = math.sqrt(n * 0.3 * 0.7)  # binomial std, about 29
    assert abs(hits - n * 0.3) < 4 * sigma
    first, second = context(fresh(), seed=11), context(fresh(), seed=11)
    assert [method.random_branch(first) for _ in range(50)] == [
        method.random_branch(second) for _ in range(50)
    ]


def test_mixed_p_alternates_between_the_two_variants():
    """With 0 < p < 1 each step's loss is either the random or the ascent one of that step."""
    x, y = batch()
    model = fresh(hidden=[16])
    mixed = create_method({"name": "wvat", "p": 0.5})
    ascent = create_method({"name": "wvat", "p": 0.0}).terms(context(model), x, y)["task"]
    ascent = float(ascent.detach())
    ctx = context(model, seed=4)
    kinds = []
    for _ in range(40):
        coin_state = ctx.generator.get_state()
        loss = float(mixed.terms(ctx, x, y)["task"].detach())
        probe = torch.Generator().set_state(coin_state)
        random_branch = bool(torch.rand((), generator=probe) < 0.5)
        if random_branch:
            noisy = NOISE.sample({n: w.detach() for n, w in model.named_parameters()}, probe)
            expected = float(task_loss(torch.func.functional_call(model, noisy, (x,)), y))
            assert loss == pytest.approx(expected, rel=1e-6)
        else:
            assert loss == pytest.approx(ascent, rel=1e-6)
        kinds.append(random_branch)
    assert 0 < sum(kinds) < 40


# --- the ascent step -----------------------------------------------------------------------------


def test_ascent_step_radius_for_each_normalisation():
    gen = torch.Generator().manual_seed(0)
    w = {"a": torch.randn(5, 4, generator=gen), "b": torch.randn(4, generator=gen)}
    g = {"a": torch.randn(5, 4, generator=gen), "b": torch.randn(4, generator=gen)}
    rho = 0.1
    layer = ascent_step(w, g, rho, "layer")
    for n in w:
        torch.testing.assert_close(layer[n].norm(), rho * w[n].norm())
        assert torch.all(layer[n] * g[n] >= 0)  # along the gradient
    sign = ascent_step(w, g, rho, "sign")
    for n in w:
        torch.testing.assert_close(sign[n], rho * w[n].abs() * g[n].sign())  # up the gradient
    adaptive = ascent_step(w, g, rho, "adaptive")
    scaled = torch.sqrt(sum((adaptive[n] / w[n].abs()).square().sum() for n in w))
    torch.testing.assert_close(scaled, torch.tensor(rho))
    norm = torch.sqrt(sum((w[n].abs() * g[n]).square().sum() for n in w))
    for n in w:
        torch.testing.assert_close(adaptive[n], rho * w[n].square() * g[n] / norm)
        assert torch.all(adaptive[n] * g[n] >= 0)
    zero = ascent_step(w, {n: torch.zeros_like(t) for n, t in g.items()}, rho, "layer")
    assert all(torch.equal(t, torch.zeros_like(t)) for t in zero.values())


@pytest.mark.parametrize("ascent", ["layer", "adaptive", "sign"])
def test_each_ascent_raises_the_loss_at_small_radius(ascent):
    """The variation is an ascent: to first order the loss grows by rho x a positive amount, so
    a flipped step (descent) fails here."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(point):
        return F.cross_entropy(torch.func.functional_call(model, point, (x,)), y)

    probe = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    grads = dict(zip(probe, torch.autograd.grad(loss(probe), list(probe.values())), strict=True))
    delta = ascent_step(params, grads, 1e-3, ascent)
    with torch.no_grad():
        assert float(loss({n: w + delta[n] for n, w in params.items()})) > float(loss(params))
        assert float(loss({n: w - delta[n] for n, w in params.items()})) < float(loss(params))


@pytest.mark.parametrize(
    "spec, message",
    [({"p": 1.5}, "p"), ({"p": -0.1}, "p"), ({"rho": -1}, "rho"), ({"ascent": "l2"}, "ascent")],
)
def test_bad_hyperparameters_are_one_line_errors(spec, message):
    with pytest.raises(NoiseproofError, match=message) as error:
        create_method({"name": "wvat", **spec})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "methods"),
    [
        ("fashion_vgg_wvat.yaml", ["standard", "noise_injection", "wvat"]),
        ("fashion_vgg_wvat_rho.yaml", ["wvat-rho0.02"]),
    ],
)
def test_the_vgg_protocol_configs_stay_valid(name, methods):
    """examples/hou2024's WVAT protocol configs (the README's WVAT tables): a VGG-5 trained by
    SGD, relative Gaussian variation at zeta 0.5, WVAT at p 0.5."""
    path = Path(__file__).parents[2] / "examples" / "hou2024" / name
    config = ExperimentConfig.parse(deep_merge(default_config(), read_yaml(path)))
    assert [entry.label for entry in config.methods] == methods
    assert config.train.optimizer == "sgd"
    assert type(config.model).__name__ == "VGG" and len(config.model.channels) == 3
    assert [type(n.model).__name__ for n in config.noise] == ["RelativeGaussian"]
    assert config.noise[0].model.zeta == 0.5
    for entry in config.methods:
        if entry.method.spec()["name"] == "wvat":
            assert entry.method.p == 0.5
