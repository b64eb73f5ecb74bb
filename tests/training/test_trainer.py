"""The training loop: reproducibility, best-validation restore, logging, and the three methods
(standard, dropout, noise_injection) checked step for step against each other and by hand."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

import noiseproof.training.trainer as trainer_module
from noiseproof.chip import chip_params, detached, forward
from noiseproof.data import load_dataset
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.methods.base import Method, StepContext
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.seeding import generator
from noiseproof.tasks.classification import Classification
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train

task_loss = Classification().loss  # the classifier loss the references are written with

CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05, schedule="constant")
NOISE = create_noise({"name": "relative_gaussian", "zeta": 0.3})


@functools.cache
def moons(n_val: int = 48):
    return load_dataset({"name": "moons", "n_train": 160, "n_val": n_val, "n_test": 16})


def mlp(hidden=(16, 16), seed: int = 0) -> nn.Module:
    """A fresh MLP whose initial weights depend only on `seed` (global RNG left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model({"name": "mlp", "hidden": list(hidden)}, (2,), 1)


def run(method, *, seed=0, config=CONFIG, data=None, noise=NOISE, model=None):
    model = model if model is not None else mlp()
    result = train(
        model,
        data if data is not None else moons(),
        create_method(method),
        config,
        noise=noise,
        seed=seed,
        progress=False,
    )
    return model, result


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def differs(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[name], sb[name]) for name in sa)


METHODS = [
    "standard",
    {"name": "dropout", "p": 0.3},
    {"name": "noise_injection"},
]


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m if isinstance(m, str) else m["name"])
def test_same_seed_gives_bit_identical_weights_and_history(method):
    torch.manual_seed(1)  # the global stream must play no part
    first, first_result = run(method, seed=5)
    torch.manual_seed(2)
    second, second_result = run(method, seed=5)
    assert_same_weights(first, second)
    assert without_seconds(first_result.history) == without_seconds(second_result.history)
    assert first_result.best_epoch == second_result.best_epoch
    other, _ = run(method, seed=6)
    assert differs(first, other)
    assert differs(first, mlp())  # it did train


def test_training_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    run({"name": "dropout", "p": 0.5})
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- best validation, logging


def scripted_validation(monkeypatch, scores: list[float]) -> list[dict]:
    """Replace the validation accuracy by `scores`; return the weights seen at each call."""
    seen: list[dict] = []
    queue = list(scores)

    def fake(model, x, y, task, batch_size=2000, seed=0):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"accuracy": queue.pop(0)}

    monkeypatch.setattr(trainer_module, "clean_metrics", fake)
    return seen


def test_best_validation_weights_are_restored(monkeypatch):
    seen = scripted_validation(monkeypatch, [0.5, 0.9, 0.7, 0.6])
    model, result = run("standard", config=CONFIG.model_copy(update={"epochs": 4}))
    assert [row["val_accuracy"] for row in result.history] == [0.5, 0.9, 0.7, 0.6]
    assert result.best_epoch == 2
    assert result.best_val_accuracy == 0.9
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in seen[1].items())
    assert any(not torch.equal(seen[3][k], v) for k, v in seen[1].items())  # later epochs moved


def test_ties_keep_the_earlier_epoch(monkeypatch):
    seen = scripted_validation(monkeypatch, [0.8, 0.8, 0.8])
    model, result = run("standard", config=CONFIG.model_copy(update={"epochs": 3}))
    assert result.best_epoch == 1
    assert all(torch.equal(model.state_dict()[k], v) for k, v in seen[0].items())


def test_real_validation_accuracy_is_logged_and_best_is_its_max():
    model, result = run("standard", config=CONFIG.model_copy(update={"epochs": 3}))
    scores = [row["val_accuracy"] for row in result.history]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert result.best_val_accuracy == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1
    data = moons()
    correct = (model(data.x_val)[:, 0] > 0).long() == data.y_val
    assert float(correct.double().mean()) == result.best_val_accuracy


def test_without_validation_the_last_epoch_is_kept():
    data = moons(n_val=0)
    model, result = run("standard", data=data)
    assert result.best_epoch == CONFIG.epochs
    assert math.isnan(result.best_val_accuracy)
    assert all("val_accuracy" not in row for row in result.history)


def test_noisy_selection_keeps_the_epoch_best_under_noise(monkeypatch):
    scripted_validation(monkeypatch, [0.9, 0.5, 0.6])  # clean accuracy would pick epoch 1
    noisy = iter([0.4, 0.7, 0.6])
    chips: list[tuple] = []

    def fake_noisy(model, data, noise, config, selection, seed, task):
        chips.append((noise.level, config.select_transfers, seed))
        return next(noisy)

    monkeypatch.setattr(trainer_module, "noisy_validation", fake_noisy)
    config = CONFIG.model_copy(update={"epochs": 3, "select": "noisy", "select_level": 0.5})
    _, result = run("standard", config=config, seed=3)
    assert result.best_epoch == 2 and result.best_val_accuracy == 0.7
    assert [row["val_noisy_accuracy"] for row in result.history] == [0.4, 0.7, 0.6]
    assert [row["val_accuracy"] for row in result.history] == [0.9, 0.5, 0.6]
    assert chips == [(0.3, 4, 3)] * 3  # the noise model itself; the level is applied inside


def test_noisy_validation_uses_the_same_chips_every_epoch_at_the_chosen_level():
    model = mlp()
    config = CONFIG.model_copy(update={"select": "noisy", "select_transfers": 3})
    task = Classification()
    first = trainer_module.noisy_validation(model, moons(), NOISE, config, None, 0, task)
    again = trainer_module.noisy_validation(model, moons(), NOISE, config, None, 0, task)
    assert first == again
    zero = config.model_copy(update={"select_level": 0.0})
    clean = trainer_module.clean_metrics(model, moons().x_val, moons().y_val, task)["accuracy"]
    assert trainer_module.noisy_validation(model, moons(), NOISE, zero, None, 0, task) == clean


def test_last_selection_keeps_the_last_epoch(monkeypatch):
    scripted_validation(monkeypatch, [0.9, 0.5, 0.6])
    _, result = run("standard", config=CONFIG.model_copy(update={"epochs": 3, "select": "last"}))
    assert result.best_epoch == 3 and result.best_val_accuracy == 0.6  # its clean accuracy


def test_noisy_selection_without_noise_is_refused():
    config = CONFIG.model_copy(update={"select": "noisy"})
    with pytest.raises(NoiseproofError, match="select 'noisy' needs a noise model"):
        run("standard", config=config, noise=None)


class BatchSize(Method):
    """Test method: terms 'size' = batch size and 'half' = 0.5, plus a zero-valued graph."""

    def terms(self, ctx: StepContext, x, y):
        zero = 0.0 * forward(ctx.model, ctx.params, x).sum()
        return {"size": zero + len(x), "half": zero + 0.5}


def test_every_loss_term_is_logged_per_epoch_as_an_example_weighted_mean():
    data = moons(n_val=0)
    config = CONFIG.model_copy(update={"epochs": 3, "batch_size": 50})  # 50, 50, 50, 10
    result = train(mlp(), data, BatchSize(), config, seed=0, progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    for row in result.history:
        assert set(row) == {"epoch", "loss", "size", "half", "lr", "seconds"}
        assert row["size"] == pytest.approx((3 * 50 * 50 + 10 * 10) / 160)
        assert row["half"] == pytest.approx(0.5)
        assert row["loss"] == pytest.approx(row["size"] + 0.5)
        assert row["seconds"] >= 0


def test_standard_task_term_is_the_mean_training_loss():
    model, result = run("standard", config=CONFIG.model_copy(update={"epochs": 1}))
    assert set(result.history[0]) == {"epoch", "loss", "task", "lr", "val_accuracy", "seconds"}
    assert result.history[0]["task"] == result.history[0]["loss"]
    assert 0 < result.history[0]["task"] < 2


# ---------------------------------------------------------------- optimiser and schedule


def test_sgd_with_step_schedule_matches_a_hand_written_loop():
    data = moons(n_val=0)
    config = TrainConfig(
        epochs=3,
        batch_size=40,
        optimizer="sgd",
        lr=0.5,
        momentum=0.9,
        weight_decay=1e-3,
        schedule="step",
        milestones=(1, 2),
        gamma=0.1,
    )
    model, result = run("standard", config=config, data=data, seed=4)
    assert [row["lr"] for row in result.history] == pytest.approx([0.5, 0.05, 0.005])

    by_hand = mlp()
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    gen = generator(4, "shuffle")
    losses = []
    for lr in (0.5, 0.05, 0.005):
        for group in optimizer.param_groups:
            group["lr"] = lr
        by_hand.train()
        total = 0.0
        for index in torch.randperm(len(data.x_train), generator=gen).split(40):
            loss = task_loss(by_hand(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        losses.append(total / len(data.x_train))
    assert_same_weights(model, by_hand)
    assert [row["task"] for row in result.history] == pytest.approx(losses, rel=1e-12)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_logged_lr_is_the_rate_each_epoch_used(schedule):
    config = CONFIG.model_copy(update={"epochs": 4, "schedule": schedule})
    _, result = run("standard", config=config)
    lrs = [row["lr"] for row in result.history]
    if schedule == "constant":
        assert lrs == [0.05] * 4
    else:  # cosine annealing from lr to 0 over the epochs: epoch e uses lr (1 + cos(pi e/E)) / 2
        expected = [0.05 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
        assert lrs == pytest.approx(expected)


# ---------------------------------------------------------------- dropout


def pre_hook_counts(model: nn.Module) -> dict[str, int]:
    return {name: len(m._forward_pre_hooks) for name, m in model.named_modules()}


def test_dropout_hooks_are_removed_after_training(monkeypatch):
    model = mlp(hidden=(16, 16, 16))
    during: list[dict] = []
    real = trainer_module.clean_metrics

    def spy(model_, x, y, task, batch_size=2000, seed=0):
        during.append(pre_hook_counts(model_))
        return real(model_, x, y, task, batch_size, seed=seed)

    monkeypatch.setattr(trainer_module, "clean_metrics", spy)
    run({"name": "dropout"}, model=model)
    # during training: a hook on every Linear but the first (modules '1', '3', '5', '7')
    assert during[0] == {"": 0, "0": 0, "1": 0, "2": 0, "3": 1, "4": 0, "5": 1, "6": 0, "7": 1}
    assert set(pre_hook_counts(model).values()) == {0}


def test_dropout_hooks_are_removed_when_training_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("validation broke")

    monkeypatch.setattr(trainer_module, "clean_metrics", broken)
    model = mlp()
    with pytest.raises(RuntimeError, match="validation broke"):
        run({"name": "dropout"}, model=model)
    assert set(pre_hook_counts(model).values()) == {0}
    assert model.training  # every module's mode as it was before training (a fresh model: train)


def attached_forward(p: float, seed: int, x: torch.Tensor, model: nn.Module):
    """One training-mode forward with dropout attached; returns logits and each Linear's input."""
    inputs: dict[str, torch.Tensor] = {}
    acts: dict[str, torch.Tensor] = {}
    method = create_method({"name": "dropout", "p": p})
    ctx = StepContext(model, chip_params(model), None, torch.Generator().manual_seed(seed))
    with method.attached(ctx):
        handles = []
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear):  # registered after dropout's, so it sees its output

                def record(m, args, name=name):
                    inputs[name] = args[0].detach().clone()

                handles.append(module.register_forward_pre_hook(record))
            if isinstance(module, nn.ReLU):

                def keep(m, args, out, name=name):
                    acts[name] = out.detach().clone()

                handles.append(module.register_forward_hook(keep))
        model.train()
        out = forward(model, ctx.params, x)
        for handle in handles:
            handle.remove()
    return out, inputs, acts


def test_dropout_masks_first_layer_untouched_and_scaling():
    p = 0.3
    model = mlp(hidden=(64, 64))
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    out, inputs, acts = attached_forward(p, 7, x, model)
    assert torch.equal(inputs["1"], x)  # the first on-chip layer sees the raw input
    for linear, act in (("3", "2"), ("5", "4")):
        dropped, clean = inputs[linear], acts[act]
        kept = dropped != 0
        torch.testing.assert_close(dropped[kept], clean[kept] / (1 - p))
        live = clean != 0  # ReLU zeros cannot tell whether they were dropped
        share = float((~kept[live]).double().mean())
        n = int(live.sum())
        assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / n)
    # same generator seed: same masks; another seed: other masks
    again, _, _ = attached_forward(p, 7, x, model)
    other, _, _ = attached_forward(p, 8, x, model)
    assert torch.equal(out, again)
    assert not torch.equal(out, other)


def test_dropout_is_inactive_in_eval_mode():
    model = mlp()
    x = torch.randn(32, 2)
    reference = model.eval()(x)
    ctx = StepContext(model, chip_params(model), None, torch.Generator())
    with create_method("dropout").attached(ctx):
        model.eval()
        assert torch.equal(forward(model, ctx.params, x), reference)


def test_dropout_zero_equals_standard_step_for_step():
    standard, standard_result = run("standard", seed=3)
    dropout, dropout_result = run({"name": "dropout", "p": 0.0}, seed=3)
    assert_same_weights(standard, dropout)
    assert without_seconds(standard_result.history) == without_seconds(dropout_result.history)


# ---------------------------------------------------------------- noise injection


@pytest.mark.parametrize(
    ("method", "noise"),
    [
        ({"name": "noise_injection", "level": 0.0}, NOISE),
        ({"name": "noise_injection"}, create_noise({"name": "lognormal", "sigma": 0.0})),
        (
            {"name": "noise_injection", "noise": {"name": "additive_gaussian", "eta": 0.0}},
            None,
        ),
    ],
    ids=["level-override", "experiment-noise", "own-noise"],
)
def test_noise_injection_at_level_zero_equals_standard_step_for_step(method, noise):
    # one epoch of five steps: noise draws advance the shared training generator, so from the
    # second epoch on the shuffling (drawn from the same stream) differs from standard training
    config = CONFIG.model_copy(update={"epochs": 1})
    standard, standard_result = run("standard", seed=2, config=config)
    injected, injected_result = run(method, seed=2, config=config, noise=noise)
    assert_same_weights(standard, injected)
    assert without_seconds(standard_result.history) == without_seconds(injected_result.history)


def test_noise_injection_gradient_is_the_straight_through_gradient():
    data = moons()
    x, y = data.x_train[:64], data.y_train[:64]
    model = mlp()
    params = chip_params(model)
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.5})
    ctx = StepContext(model, params, noise, torch.Generator().manual_seed(11))
    terms = create_method("noise_injection").terms(ctx, x, y)
    terms["task"].backward()
    # by hand: the same chip, and the loss's gradient taken at the noisy weights
    noisy = noise.sample(detached(params), torch.Generator().manual_seed(11))
    leaves = {name: t.clone().requires_grad_(True) for name, t in noisy.items()}
    loss = task_loss(forward(model, leaves, x), y)
    loss.backward()
    torch.testing.assert_close(terms["task"].detach(), loss.detach())
    for name, param in params.items():
        torch.testing.assert_close(param.grad, leaves[name].grad, rtol=1e-5, atol=1e-7)
    clean_loss = task_loss(forward(model, detached(params), x), y)
    assert not torch.isclose(clean_loss, loss)


def test_noise_injection_level_uses_the_models_with_level():
    data = moons()
    x, y = data.x_train[:32], data.y_train[:32]
    model = mlp()
    params = chip_params(model)
    method = create_method({"name": "noise_injection", "level": 0.2})
    ctx = StepContext(model, params, NOISE, torch.Generator().manual_seed(1))
    got = method.terms(ctx, x, y)["task"]
    noisy = NOISE.with_level(0.2).sample(detached(params), torch.Generator().manual_seed(1))
    torch.testing.assert_close(got.detach(), task_loss(forward(model, noisy, x), y))


def test_noise_injection_without_a_noise_model_is_an_error():
    with pytest.raises(NoiseproofError, match="needs a noise model"):
        run({"name": "noise_injection"}, noise=None)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "dropout", "p": 1.0}, "p"),
        ({"name": "dropout", "p": -0.1}, "p"),
        ({"name": "noise_injection", "level": -1.0}, "level"),
        ({"name": "noise_injection", "noise": "no_such_noise"}, "no_such_noise"),
        ({"name": "standard", "beta": 1.0}, "beta"),
    ],
)
def test_bad_method_parameters_are_one_line_errors(spec, field):
    with pytest.raises(NoiseproofError) as caught:
        create_method(spec)
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)
