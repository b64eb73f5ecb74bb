"""Contract: every registered noise model and method works on every model shape of the zoo,
and evaluation (transfers, attack, landscape) leaves the user's module bit-identical.

Components are listed from the registries, never by hand.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

from noiseproof.chip import chip_params, forward
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.attack import AttackConfig, targeted_attack
from noiseproof.evaluation.clean import clean_metrics
from noiseproof.evaluation.landscape import LandscapeConfig, loss_landscape
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.methods import methods
from noiseproof.noise import noise_models
from noiseproof.seeding import generator
from noiseproof.tasks import AUTO, create_task
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from reference.measured_reference import DEVICE_FIXTURE
from zoo import ZOO, Recurrent, Tied

REQUIRED_EXAMPLES = {"models": ["relative_gaussian", "stuck_at"], "file": str(DEVICE_FIXTURE)}
"""Values for required fields of registered components, by field name."""

IDS = [entry.name for entry in ZOO]

REFUSALS = {
    ("consistency", "gru"): "name the layers to compare",
}
"""(method, zoo model) pairs refused in one line that says what to change (consistency finds no
block before the GRU model's output layer). On the snntorch models consistency compares the
neurons' spike rates (noiseproof.methods.spiking_features), so none refuses."""


def task_refusal(method_name: str, entry) -> str | None:
    """The one-line refusal of a method that cannot train the entry's task (its `task_names`,
    read from the registry), else None."""
    allowed = methods.get(method_name).task_names
    task = create_task(AUTO, y=entry.data().y_train, announce=False)
    return None if allowed is None or task.registered_name in allowed else "cannot train task"


NOT_CLEAN_AT_ZERO = {"pcm", "quantize", "chain"}
"""Noise models whose level 0 is not the clean network: PCM's level is the read time (its
programming noise is drawn at t = 0 too); quantization's level is its number of levels (>= 2);
a chain's level is its swept member's (the other members keep their noise)."""


def minimal(registry, name):
    """The registered component `name` with its defaults (required fields from the table)."""
    cls = registry.get(name)
    required = {
        f: REQUIRED_EXAMPLES[f] for f, info in cls.model_fields.items() if info.is_required()
    }
    return registry.create({"name": name, **required})


def snapshot(model: nn.Module) -> dict:
    """Everything a call must leave as it was: tensors, gradients, requires_grad, modes."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "hooks": len(model._forward_hooks),
    }


def assert_unchanged(before: dict, model: nn.Module) -> None:
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    for name, tensor in before["state"].items():
        assert torch.equal(after["state"][name], tensor), name
    for name, grad in before["grads"].items():
        other = after["grads"][name]
        assert (grad is None) == (other is None), name
        assert grad is None or torch.equal(grad, other), name


def with_user_gradients(model: nn.Module) -> nn.Module:
    """Give every parameter a .grad as a user's accumulated gradients would be."""
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    return model


@pytest.mark.parametrize("entry", ZOO, ids=IDS)
@pytest.mark.parametrize("noise_name", noise_models.names())
def test_every_noise_model_transfers_every_zoo_model(entry, noise_name):
    model, data = with_user_gradients(entry.build()), entry.data()
    before = snapshot(model)
    result = run_transfers(
        model,
        minimal(noise_models, noise_name),
        data.x_test,
        data.y_test,
        3,
        generator(0, noise_name),
        selection=entry.selection,
    )
    values = result.metrics[result.task.primary.name]
    assert values.shape == (3,) and bool(torch.isfinite(values).all())
    for name, chips in result.metrics.items():
        if "accuracy" in name:
            assert bool(((chips >= 0) & (chips <= 1)).all()), name
    if noise_name not in NOT_CLEAN_AT_ZERO:  # level 0: every chip is the network itself
        zero = minimal(noise_models, noise_name).with_level(0.0)
        chips = run_transfers(
            model,
            zero,
            data.x_test,
            data.y_test,
            2,
            generator(0, noise_name),
            selection=entry.selection,
        )
        clean = clean_metrics(model, data.x_test, data.y_test, result.task)
        for name, value in clean.items():  # float32 forwards, batched or vmapped: 1e-5
            assert chips.metrics[name].tolist() == pytest.approx([value] * 2, rel=1e-5), name
    assert_unchanged(before, model)


@pytest.mark.parametrize("entry", ZOO, ids=IDS)
@pytest.mark.parametrize("method_name", methods.names())
def test_every_method_trains_every_zoo_model(entry, method_name):
    model, data = entry.build(), entry.data()
    initial = copy.deepcopy(model.state_dict())
    frozen = {n for n, m in model.named_modules() if not m.training}
    refusal = REFUSALS.get((method_name, entry.name)) or task_refusal(method_name, entry)
    with pytest.raises(NoiseproofError, match=refusal) if refusal else contextlib.nullcontext():
        result = train(
            model,
            data,
            minimal(methods, method_name),
            TrainConfig(epochs=1, batch_size=12),
            noise=noise_models.create("relative_gaussian"),
            selection=entry.selection,
            progress=False,
        )
    if refusal:
        return
    terms = {k: v for k, v in result.history[0].items() if k not in ("epoch", "lr", "seconds")}
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values()), terms
    assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items())
    assert {n for n, m in model.named_modules() if not m.training} == frozen


@pytest.mark.parametrize("entry", ZOO, ids=IDS)
def test_attack_and_landscape_leave_the_module_bit_identical(entry):
    model, data = with_user_gradients(entry.build()), entry.data()
    before = snapshot(model)
    targeted_attack(
        model,
        data.x_test,
        data.y_test,
        AttackConfig(zetas=(0.1,), n_steps=2, transfers=2),
        selection=entry.selection,
        generator=torch.Generator().manual_seed(0),
    )
    assert_unchanged(before, model)
    loss_landscape(
        model,
        data.x_test,
        data.y_test,
        LandscapeConfig(alphas=(-1.0, 1.0), repeats=1),
        selection=entry.selection,
        generator=torch.Generator().manual_seed(0),
    )
    assert_unchanged(before, model)


def test_tied_weight_is_one_chip_tensor_and_one_draw_reaches_both_uses():
    model = Tied()
    params = chip_params(model)
    assert "a.weight" in params and "b.weight" not in params
    noisy = dict(params)
    noisy["a.weight"] = torch.zeros_like(params["a.weight"])
    x = torch.randn(4, 6)
    h = torch.relu(model.inp(x))
    expected = model.head(torch.relu(model.b.bias + 0 * torch.relu(model.a.bias + 0 * h)))
    assert torch.allclose(forward(model, noisy, x), expected)


def test_recurrent_parameters_are_selected_by_their_kind():
    from noiseproof.chip import ChipSelection

    names = ChipSelection(layers=("GRU",)).names(Recurrent())
    assert names == ["gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0"]


CHEAP_CORRECTNET = {
    "name": "correctnet",
    "base": "standard",
    "strategy": "greedy",
    "correct": {
        "training": {"steps": 4, "batch_size": 8, "eval_every": 2, "validation_transfers": 2},
        "placement": {"search_steps": 2, "search_transfers": 2},
    },
}
"""CorrectNet with tiny budgets: the contract is about shapes and side effects, not accuracy."""


@pytest.mark.parametrize("entry", ZOO, ids=IDS)
def test_correctnet_compensation_leaves_the_trained_module_as_it_was(entry):
    model, data = with_user_gradients(entry.build()), entry.data()
    before = snapshot(model)
    method = methods.create(CHEAP_CORRECTNET)
    refused = task_refusal("correctnet", entry)
    with pytest.raises(NoiseproofError, match=refused) if refused else contextlib.nullcontext():
        wrapped, record = method.finish(
            model,
            data,
            noise_models.create({"name": "relative_gaussian", "zeta": 0.3}),
            selection=entry.selection,
            seed=0,
            log=lambda _: None,
        )
    assert_unchanged(before, model)
    if refused:
        return
    chips = run_transfers(
        wrapped,
        noise_models.create("relative_gaussian"),
        data.x_test,
        data.y_test,
        2,
        generator(0, "chips"),
        selection=entry.selection,
    )
    assert chips.accuracy.shape == (2,)
    assert record["layers"] == list(record["layers"])
