"""hardware_aware (Drolet et al. 2023): straight-through chip draws, stuck dropout, regularisers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noiseproof.chip import chip_params, forward
from noiseproof.errors import NoiseproofError
from noiseproof.methods import methods
from noiseproof.methods.base import StepContext
from noiseproof.noise import noise_models
from noiseproof.noise.crossbar import TiO2Crossbar
from noiseproof.tasks.classification import Classification

task_loss = Classification().loss  # the classifier loss the references are written with


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.Sigmoid(), nn.Linear(8, 1))


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(64, 2, generator=g), (torch.rand(64, generator=g) > 0.5).long()


def context(model: nn.Module, noise, seed: int = 0) -> StepContext:
    return StepContext(
        model=model,
        params=chip_params(model),
        noise=noise,
        generator=torch.Generator().manual_seed(seed),
    )


def grads(model: nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {
        n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for n, p in model.named_parameters()
    }


def test_straight_through_gradients_equal_clean_gradients_without_noise():
    model = net()
    x, y = batch()
    method = methods.create({"name": "hardware_aware", "regularization": "none"})
    terms = method.terms(context(model, TiO2Crossbar(strength=0.0)), x, y)
    assert list(terms) == ["task"]
    got = grads(model, terms["task"])
    want = grads(model, task_loss(model(x), y))
    assert all(torch.equal(got[n], want[n]) for n in want)


def test_forward_uses_a_fresh_hardware_draw_and_clean_gradient_path():
    model = net()
    x, y = batch()
    noise = TiO2Crossbar(stuck=False)
    ctx = context(model, noise, seed=3)
    method = methods.create({"name": "hardware_aware", "regularization": "none"})
    state = ctx.generator.get_state()
    first = method.terms(ctx, x, y)["task"]
    second = method.terms(ctx, x, y)["task"]
    assert not torch.equal(first, second)  # a new chip every forward
    replay = torch.Generator().set_state(state)
    chip = noise.sample({n: p.detach() for n, p in ctx.params.items()}, replay)
    assert torch.equal(first, task_loss(forward(model, chip, x), y))
    # gradient: d loss / d w evaluated at the chip weights, applied to w (straight-through)
    got = grads(model, first)
    leaf = {n: t.clone().requires_grad_(True) for n, t in chip.items()}
    want = torch.autograd.grad(task_loss(forward(model, leaf, x), y), list(leaf.values()))
    for (name, _), g in zip(leaf.items(), want, strict=True):
        torch.testing.assert_close(got[name], g)


def stuck_noise() -> TiO2Crossbar:
    return TiO2Crossbar(stuck_lrs_fraction=0.25, stuck_hrs_fraction=0.25)


def test_restore_mode_leaves_stuck_weights_unchanged_by_the_step():
    model = net()
    x, y = batch()
    noise = stuck_noise()
    ctx = context(model, noise, seed=4)
    method = methods.create({"name": "hardware_aware"})
    replay = torch.Generator().set_state(ctx.generator.get_state())
    _, masks = noise.sample_with_faults({n: p.detach() for n, p in ctx.params.items()}, replay)
    before = {n: p.detach().clone() for n, p in ctx.params.items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    with method.attached(ctx):
        loss = torch.stack(list(method.terms(ctx, x, y).values())).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    stuck_seen = 0
    for name, p in ctx.params.items():
        mask = masks.get(name, torch.zeros_like(p, dtype=torch.bool))
        stuck_seen += int(mask.sum())
        assert torch.equal(p.detach()[mask], before[name][mask])
        assert bool((p.detach()[~mask] != before[name][~mask]).all())
    assert stuck_seen > 0
    # the hook is gone after training: a later step moves every weight
    loss = task_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    snapshot = {n: p.detach().clone() for n, p in ctx.params.items()}
    optimizer.step()
    assert all(bool((p.detach() != snapshot[n]).all()) for n, p in ctx.params.items())


def test_gradient_mode_zeroes_the_gradient_of_stuck_weights():
    model = net()
    x, y = batch()
    noise = stuck_noise()
    ctx = context(model, noise, seed=5)
    method = methods.create(
        {"name": "hardware_aware", "drop_mode": "gradient", "regularization": "none"}
    )
    replay = torch.Generator().set_state(ctx.generator.get_state())
    _, masks = noise.sample_with_faults({n: p.detach() for n, p in ctx.params.items()}, replay)
    got = grads(model, method.terms(ctx, x, y)["task"])
    assert sum(int(m.sum()) for m in masks.values()) > 0
    for name, mask in masks.items():
        assert (got[name][mask] == 0).all()
        assert (got[name][~mask] != 0).all()


def test_weight_decay_term_is_half_lambda_sum_of_squares():
    model = net()
    x, y = batch()
    terms = methods.create({"name": "hardware_aware", "weight_decay": 0.01}).terms(
        context(model, TiO2Crossbar(strength=0.0)), x, y
    )
    squares = sum(float(p.detach().square().sum()) for p in model.parameters())
    assert float(terms["weight_decay"].detach()) == pytest.approx(0.005 * squares, rel=1e-6)
    got = grads(model, terms["weight_decay"])
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], 0.01 * p.detach())


def test_kl_variant_is_finite_and_skips_ideal_elements():
    model = net()
    x, y = batch()
    method = methods.create({"name": "hardware_aware", "regularization": "kl", "kl_weight": 1.0})
    terms = method.terms(context(model, TiO2Crossbar(stuck=False)), x, y)
    assert set(terms) == {"task", "kl"}
    assert torch.isfinite(terms["kl"]) and float(terms["kl"].detach()) > 0
    got = grads(model, terms["kl"])
    assert float(got["2.bias"].abs().sum()) == 0.0  # one-element tensor stays ideal: no sigma
    assert float(got["0.weight"].abs().sum()) > 0.0
    ideal = method.terms(context(model, TiO2Crossbar(strength=0.0)), x, y)
    assert float(ideal["kl"].detach()) == 0.0


NOISES = {
    "relative_gaussian": ({"zeta": 0.1}, {"zeta": 0.0}),
    "additive_gaussian": ({"eta": 0.05}, {"eta": 0.0}),
    "stuck_at": ({"p": 0.1}, {"p": 0.0}),
    "chain": (
        {"models": ["relative_gaussian", "stuck_at"]},
        {"models": [{"name": "relative_gaussian", "zeta": 0.0}, {"name": "stuck_at", "p": 0.0}]},
    ),
}
"""Each kind of noise model (per tensor, additive, stuck devices, a chain), and the same at
level zero."""


def adam_steps(spec: dict | None, steps: int = 3, **settings) -> nn.Module:
    """`steps` Adam steps (lr 0.05) of hardware_aware under the noise `spec`, or of standard
    training when `spec` is None, from net() on batch()."""
    model = net()
    x, y = batch()
    noise = noise_models.create(spec) if spec is not None else None
    ctx = context(model, noise)
    method = methods.create({"name": "hardware_aware", **settings} if spec else "standard")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    with method.attached(ctx):
        for _ in range(steps):
            loss = torch.stack(list(method.terms(ctx, x, y).values())).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def reference_steps(spec: dict, steps: int = 3, weight_decay: float = 1e-4) -> nn.Module:
    """The same steps written out from the paper's rule: draw a chip (and its stuck devices)
    from the same generator, take the task loss's gradient at the chip's weights, apply it
    (plus weight_decay * w) to the weights by Adam, put the stuck weights back."""
    model = net()
    x, y = batch()
    noise, generator = noise_models.create(spec), torch.Generator().manual_seed(0)
    params = dict(model.named_parameters())
    optimizer = torch.optim.Adam(params.values(), lr=0.05)
    for _ in range(steps):
        clean = {name: p.detach().clone() for name, p in params.items()}
        chip, stuck = noise.sample_with_faults(clean, generator)
        leaf = {name: t.clone().requires_grad_(True) for name, t in chip.items()}
        loss = task_loss(forward(model, leaf, x), y)
        grads_at_chip = torch.autograd.grad(loss, list(leaf.values()))
        for (name, p), g in zip(params.items(), grads_at_chip, strict=True):
            p.grad = g + weight_decay * clean[name]
        optimizer.step()
        with torch.no_grad():
            for name, mask in stuck.items():
                params[name].copy_(torch.where(mask, clean[name], params[name]))
    return model


@pytest.mark.parametrize("kind", list(NOISES))
def test_steps_under_every_kind_of_noise_model_follow_the_reference(kind):
    spec = {"name": kind, **NOISES[kind][0]}
    got, want = adam_steps(spec), reference_steps(spec)
    start = net().state_dict()
    for name, value in want.state_dict().items():
        # the forward sees w + (w_hw - w), not w_hw itself: a float32 rounding apart
        torch.testing.assert_close(got.state_dict()[name], value, rtol=1e-5, atol=1e-6)
        assert not torch.equal(value, start[name]), name  # the steps moved every tensor


@pytest.mark.parametrize("kind", list(NOISES))
def test_at_zero_noise_it_trains_as_standard_training(kind):
    spec = {"name": kind, **NOISES[kind][1]}
    got = adam_steps(spec, regularization="none")
    want = adam_steps(None)
    for name, value in want.state_dict().items():
        assert torch.equal(got.state_dict()[name], value), name


def test_own_noise_and_level_override_the_experiments():
    method = methods.create(
        {"name": "hardware_aware", "noise": {"name": "tio2_crossbar", "stuck": False}, "level": 0}
    )
    assert method.spec()["noise"]["stuck"] is False
    assert methods.create(method.spec()) == method
    model = net()
    x, y = batch()
    terms = method.terms(context(model, None), x, y)
    torch.testing.assert_close(terms["task"], task_loss(model(x), y))


def test_errors_are_one_clear_line():
    with pytest.raises(NoiseproofError, match="drop_mode"):
        methods.create({"name": "hardware_aware", "drop_mode": "sometimes"})
    with pytest.raises(NoiseproofError, match="weight_decay"):
        methods.create({"name": "hardware_aware", "weight_decay": -1})
    model = net()
    x, y = batch()
    with pytest.raises(NoiseproofError, match="needs a noise model"):
        methods.create("hardware_aware").terms(context(model, None), x, y)
