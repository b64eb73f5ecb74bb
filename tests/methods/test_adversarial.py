"""Adversarial parameter attack training (Buechel et al. 2022) and AWP (Wu et al. 2020)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noiseproof.ascent import sign_ascent
from noiseproof.chip import chip_params, forward
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.methods.adversarial import output_divergence, relative_box_point
from noiseproof.methods.base import StepContext
from noiseproof.models import build_model
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from reference.adversarial_reference import kl_rows, pga_absolute


def blobs(n: int = 120, seed: int = 0) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = torch.randn(n, 6, generator=gen) + 2.0 * torch.eye(3, 6)[y]
    return Dataset("blobs", x, y, x[:30], y[:30], x[:30], y[:30], num_classes=3)


def fresh(data: Dataset, name: str = "mlp", **params) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": name, "hidden": [16], **params}, data.input_shape, 3)


def context(model: nn.Module, seed: int = 0) -> StepContext:
    return StepContext(model, chip_params(model), None, torch.Generator().manual_seed(seed))


def test_sign_ascent_stays_in_box_and_matches_reference():
    data = blobs()
    model = fresh(data)
    params = {k: v.detach() for k, v in chip_params(model).items()}
    x = data.x_train[:40]
    reference = forward(model, params, x).detach()

    def objective(point):
        return output_divergence(reference, forward(model, point, x))

    zeta, n = 0.1, 7
    offset = sign_ascent(
        params, objective, zeta=zeta, n_steps=n, initial_std=0.5, generator=torch.Generator()
    )
    for name, r in offset.items():
        assert float(r.abs().max()) <= zeta + 1e-7, name  # start clipped into the box
    star = relative_box_point(params, offset)
    for name, t in params.items():
        assert bool(((star[name] - t).abs() <= zeta * t.abs() * (1 + 1e-6) + 1e-12).all()), name

    start_offset = sign_ascent(
        params,
        objective,
        zeta=zeta,
        n_steps=n,
        initial_std=0.001,
        generator=torch.Generator().manual_seed(3),
    )
    # the same run in absolute coordinates, from the same starting draw
    gen = torch.Generator().manual_seed(3)
    names = list(params)
    theta = [params[k] for k in names]
    start = [t + t.abs() * (0.001 * torch.randn(t.shape, generator=gen)) for t in theta]

    def grad_fn(star_list):
        leaves = [s.clone().requires_grad_(True) for s in star_list]
        loss = objective(dict(zip(names, leaves, strict=True)))
        return torch.autograd.grad(loss, leaves)

    expected = pga_absolute(theta, start, grad_fn, zeta, n)
    got = relative_box_point(params, start_offset)
    for name, e in zip(names, expected, strict=True):
        torch.testing.assert_close(got[name], e, atol=1e-6, rtol=1e-5)


def test_attack_raises_the_divergence_it_climbs():
    data = blobs()
    model = fresh(data)
    params = {k: v.detach() for k, v in chip_params(model).items()}
    x = data.x_train
    reference = forward(model, params, x).detach()

    def objective(point):
        return output_divergence(reference, forward(model, point, x))

    values = []
    for n_steps in (1, 3, 10):
        offset = sign_ascent(
            params,
            objective,
            zeta=0.1,
            n_steps=n_steps,
            initial_std=0.001,
            generator=torch.Generator().manual_seed(0),
        )
        values.append(float(objective(relative_box_point(params, offset))))
    start = sign_ascent(
        params,
        objective,
        zeta=0.1,
        n_steps=1,
        initial_std=0.001,
        generator=torch.Generator().manual_seed(0),
    )
    start_value = float(
        objective(relative_box_point(params, {k: v * 0.001 for k, v in start.items()}))
    )
    # a random corner of the same box, for scale: the attack must beat it clearly
    gen = torch.Generator().manual_seed(1)
    corner = {k: 0.1 * torch.sign(torch.randn(v.shape, generator=gen)) for k, v in params.items()}
    random_value = float(objective(relative_box_point(params, corner)))
    assert min(values) > 2 * random_value > 0
    assert values[-1] > 100 * start_value


def test_kl_and_mse_divergences():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    torch.testing.assert_close(
        output_divergence(a, b, "kl").double(), kl_rows(a, b), atol=1e-6, rtol=1e-5
    )
    torch.testing.assert_close(output_divergence(a, b, "mse"), ((a - b) ** 2).mean())
    assert float(output_divergence(a, a, "kl")) == pytest.approx(0.0, abs=1e-6)
    assert float(output_divergence(a, a, "mse")) == 0.0
    # a single binary logit z counts as the probabilities (sigmoid(-z), sigmoid(z))
    z1, z2 = torch.randn(6, 1, generator=gen), torch.randn(6, 1, generator=gen)
    torch.testing.assert_close(
        output_divergence(z1, z2).double(),
        kl_rows(torch.cat([0 * z1, z1], 1), torch.cat([0 * z2, z2], 1)),
        atol=1e-6,
        rtol=1e-5,
    )
    data = blobs()
    for kind in ("kl", "mse"):
        model = fresh(data)
        method = create_method({"name": "adversarial", "divergence": kind, "n_steps": 2})
        terms = method.terms(context(model), data.x_train[:32], data.y_train[:32])
        assert set(terms) == {"task", "robust"} and float(terms["robust"].detach()) > 0


def test_beta_zero_is_standard_training_step_for_step():
    data = blobs()
    config = TrainConfig(epochs=2, batch_size=32, schedule="constant")
    runs = []
    for spec in ("standard", {"name": "adversarial", "beta_rob": 0.0}):
        model = fresh(data)
        result = train(model, data, create_method(spec), config, seed=5, progress=False)
        runs.append((model.state_dict(), [r["task"] for r in result.history]))
    (state_a, hist_a), (state_b, hist_b) = runs
    assert hist_a == hist_b
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


def test_gradient_flows_through_theta_star_unless_detached():
    data = blobs()
    x, y = data.x_train[:32], data.y_train[:32]
    grads = {}
    for detach in (False, True):
        model = fresh(data)
        method = create_method(
            {"name": "adversarial", "n_steps": 3, "beta_rob": 1.0, "detach_attack": detach}
        )
        ctx = context(model, seed=2)
        method.terms(ctx, x, y)["robust"].backward()
        grads[detach] = {k: p.grad.clone() for k, p in ctx.params.items()}
    # the two differ by the theta* path, which the detached variant drops
    diff = sum(float((grads[False][k] - grads[True][k]).abs().sum()) for k in grads[False])
    assert diff > 1e-6
    # d theta* / d theta = 1 + sign(theta) * r, per element
    theta = torch.tensor([0.5, -2.0, 0.0], requires_grad=True)
    r = torch.tensor([0.1, 0.05, -0.1])
    relative_box_point({"w": theta}, {"w": r})["w"].sum().backward()
    torch.testing.assert_close(theta.grad, torch.tensor([1.1, 0.95, 1.0]))


def test_noisy_forward_changes_only_the_task_term_draws():
    data = blobs()
    model = fresh(data)
    method = create_method({"name": "adversarial", "noisy_forward_std": 0.3, "n_steps": 2})
    terms = method.terms(context(model), data.x_train[:32], data.y_train[:32])
    clean = create_method({"name": "adversarial", "beta_rob": 0.0}).terms(
        context(model), data.x_train[:32], data.y_train[:32]
    )
    assert float(terms["task"].detach()) != pytest.approx(float(clean["task"].detach()), abs=1e-6)


def test_works_on_a_cnn_with_a_chosen_selection_and_batchnorm_stats_untouched():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)
    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10)
    model.train()
    from noiseproof.chip import ChipSelection

    params = chip_params(model, ChipSelection(kinds=("weight",)))
    ctx = StepContext(model, params, None, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.named_buffers()}
    create_method({"name": "adversarial", "n_steps": 2}).terms(ctx, x, y)
    # the clean forward updates running stats once; the attack forwards do not
    torch.manual_seed(0)
    twin = build_model("resnet20", (3, 32, 32), 10)
    twin.train()
    twin(x)
    for name, value in model.named_buffers():
        torch.testing.assert_close(value, dict(twin.named_buffers())[name], msg=name)
    assert any(not torch.equal(before[k], v) for k, v in model.named_buffers())


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"name": "adversarial", "n_steps": 0}, "n_steps"),
        ({"name": "adversarial", "zeta_attack": -0.1}, "zeta_attack"),
        ({"name": "adversarial", "beta_rob": float("nan")}, "beta_rob"),
        ({"name": "adversarial", "divergence": "l1"}, "divergence"),
        ({"name": "adversarial", "initial_std": -1}, "initial_std"),
        ({"name": "adversarial", "noisy_forward_std": -0.3}, "noisy_forward_std"),
        ({"name": "adversarial", "steps": 3}, "steps"),
        ({"name": "awp", "gamma": 0}, "gamma"),
        ({"name": "awp", "box": "l2"}, "box"),
    ],
)
def test_bad_hyperparameters_are_one_clear_line(spec, field):
    with pytest.raises(NoiseproofError) as error:
        create_method(spec)
    message = str(error.value)
    assert "\n" not in message and field in message and spec["name"] in message


@pytest.mark.parametrize("box", ["relative", "layer_l2"])
def test_awp_trains_at_a_loss_raising_point_inside_its_box(box):
    data = blobs()
    model = fresh(data)
    x, y = data.x_train[:64], data.y_train[:64]
    ctx = context(model)
    clean = float(torch.nn.functional.cross_entropy(forward(model, ctx.params, x), y).detach())
    method = create_method({"name": "awp", "box": box, "n_steps": 2})
    terms = method.terms(ctx, x, y)
    assert float(terms["task"].detach()) > clean
    terms["task"].backward()
    assert all(p.grad is not None for p in ctx.params.values())
    from noiseproof.methods.awp import layer_l2_ascent

    params = {k: v.detach() for k, v in ctx.params.items()}

    def objective(point):
        return torch.nn.functional.cross_entropy(forward(model, point, x), y)

    delta = layer_l2_ascent(params, objective, gamma=0.1, n_steps=3, buffers={})
    for name, v in delta.items():
        assert float(v.norm()) <= 0.1 * float(params[name].norm()) * (1 + 1e-5)
