"""One training step of every registered method on every device present; the same seed gives
the same weights; mixed precision; checkpoints written on a device load on the CPU."""

from __future__ import annotations

import pytest
import torch
from present import DEVICES
from torch import nn

import noiseproof as nf
from helpers import tiny_data
from noiseproof.devices import model_device
from noiseproof.methods import methods
from noiseproof.noise import noise_models
from noiseproof.restore import model_from_checkpoint
from noiseproof.seeding import generator
from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train

ONE_STEP = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=16, eval_batch_size=16)
NOISE = {"name": "relative_gaussian", "zeta": 0.2}
SPECS = {"correctnet": {"name": "correctnet", "base": "standard", "strategy": "greedy"}}
"""Methods whose defaults need something more than their name (none today but correctnet's
search, which only `finish` runs; one step trains its base)."""


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))


def all_on(model: nn.Module, device: str) -> bool:
    return all(t.device.type == device for t in (*model.parameters(), *model.buffers()))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", methods.names())
def test_one_training_step_of_every_method(device, name):
    model, data = small_model(), tiny_data()
    method = methods.create(SPECS.get(name, name))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(
        model,
        data,
        method,
        ONE_STEP,
        noise=noise_models.create(NOISE),
        seed=0,
        progress=False,
        device=device,
    )
    assert all_on(model, device)
    row = result.history[0]
    assert isinstance(row["loss"], float) and torch.isfinite(torch.tensor(row["loss"]))
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k].cpu()) for k in before)


@pytest.mark.parametrize("device", DEVICES)
def test_the_same_seed_gives_the_same_weights_on_one_device(device):
    config = TrainConfig(epochs=2, batch_size=16)
    states = []
    for _ in range(2):
        model = small_model()
        train(
            model,
            tiny_data(),
            methods.create("dropout"),
            config,
            noise=noise_models.create(NOISE),
            seed=3,
            progress=False,
            device=device,
        )
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("device", DEVICES)
def test_generators_are_made_on_the_device_and_draws_stay_there(device):
    gen = generator(0, "x", device=device)
    assert gen.device.type == device
    like = torch.zeros(5, device=device)
    assert nf.create_noise(NOISE).sample({"w": like + 1}, gen)["w"].device.type == device
    again = generator(0, "x", device=device)
    first = nf.create_noise(NOISE).sample({"w": like + 1}, again)["w"]
    other = nf.create_noise(NOISE).sample({"w": like + 1}, generator(0, "x", device=device))["w"]
    assert torch.equal(first, other)


def test_a_cpu_generator_still_serves_a_tensor_elsewhere():
    """Draws are made on the generator's device, then moved: a CPU stream gives the same
    numbers whatever device the tensor is on (here both on the CPU; on CUDA, moved)."""
    target = torch.ones(4, device=DEVICES[-1])
    drawn = nf.create_noise(NOISE).sample({"w": target}, generator(1, "y"))["w"]
    reference = nf.create_noise(NOISE).sample({"w": torch.ones(4)}, generator(1, "y"))["w"]
    assert drawn.device == target.device
    assert torch.equal(drawn.cpu(), reference)


@pytest.mark.parametrize("device", DEVICES)
def test_a_checkpoint_written_on_the_device_loads_on_the_cpu(device, tmp_path):
    model, data = small_model(), tiny_data()
    train(model, data, methods.create("standard"), ONE_STEP, seed=0, progress=False, device=device)
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), {"note": device})
    state, meta = load_checkpoint(path, trained=False)
    assert meta == {"note": device}
    assert all(t.device.type == "cpu" for t in state.values())
    assert all(torch.equal(state[k], v.cpu()) for k, v in model.state_dict().items())


@pytest.mark.parametrize("device", DEVICES)
def test_a_trained_job_checkpoint_rebuilds_on_the_cpu_and_back_on_the_device(device, tmp_path):
    from noiseproof.experiments.jobs import train_job
    from noiseproof.models import models

    data = nf.load_dataset("digits")
    model, meta = train_job(
        models.create("mlp"),
        data,
        methods.create("standard"),
        TrainConfig(epochs=1, steps_per_epoch=2, batch_size=32),
        noise=None,
        selection=nf.ChipSelection(),
        seed=0,
        progress=False,
        device=device,
    )
    assert model_device(model).type == device
    path = save_checkpoint(tmp_path / "job.pt", model.state_dict(), meta)
    state, loaded = load_checkpoint(path)
    on_cpu = model_from_checkpoint(state, loaded)
    assert model_device(on_cpu).type == "cpu"
    back = model_from_checkpoint(state, loaded, device)
    assert model_device(back).type == device
    x = data.x_test[:32]
    assert torch.allclose(on_cpu(x), back(x.to(device)).cpu(), atol=1e-5)


UNIT_ROUNDOFF = {"fp16": 2.0**-11, "bf16": 2.0**-8}
"""u of each half precision: the relative error of one rounding to it (10 and 7 stored
mantissa bits)."""

SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"}
"""Plain SGD, whose step is linear in the gradient (Adam's first step is lr * sign(g), which
would turn a rounding of a near-zero gradient into a whole step)."""


def trained_in(precision: str, config: TrainConfig, method: str, device: str, **options):
    """(weights on the CPU, history) of small_model() trained with `config` in `precision`."""
    model = small_model()
    result = train(
        model,
        tiny_data(),
        methods.create(method),
        config.model_copy(update={"precision": precision}),
        seed=0,
        progress=False,
        device=device,
        **options,
    )
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a cast
    return {k: v.cpu() for k, v in model.state_dict().items()}, result.history


def assert_close_to_fp32(precision: str, config: TrainConfig, method: str, device: str, **kw):
    """Training in `precision` gives fp32's weights up to its rounding: each SGD step's
    gradient carries a relative error of a few unit roundoffs u (the half-precision matmuls of
    the forward and backward), so after `steps` steps ||w_half - w_fp32|| <= 4 u steps
    ||w_fp32 - w_0|| over all the weights (one norm: a ReLU that a rounding switches on or off
    moves its own weights by more than their share; measured 1.0 u for one fp16 step, 17 u
    for 12 bf16 steps); each epoch's mean loss agrees within the same relative bound."""
    start = small_model().state_dict()
    want, want_rows = trained_in("fp32", config, method, device, **kw)
    got, got_rows = trained_in(precision, config, method, device, **kw)
    steps = config.epochs * (config.steps_per_epoch or len(tiny_data().y_train) // 16)
    bound = 4 * UNIT_ROUNDOFF[precision] * steps

    def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([value.flatten() for value in state.values()])

    moved = float((flat(want) - flat(start)).norm())
    assert moved > 0
    assert float((flat(got) - flat(want)).norm()) <= bound * moved
    for mine, theirs in zip(got_rows, want_rows, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=bound)


def test_bf16_training_gives_fp32_weights_up_to_its_rounding_on_the_cpu():
    config = TrainConfig(epochs=2, batch_size=16, **SGD)  # 6 steps an epoch
    noise = nf.create_noise(NOISE)
    assert_close_to_fp32("bf16", config, "noise_injection", "cpu", noise=noise)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_training_gives_fp32_weights_up_to_its_rounding(device):
    assert_close_to_fp32("fp16", ONE_STEP.model_copy(update=SGD), "standard", device)


def test_fp16_is_refused_in_one_line_by_a_method_that_cannot_use_it():
    config = ONE_STEP.model_copy(update={"precision": "fp16"})
    with pytest.raises(ValueError, match=r"'adversarial' cannot train in .*'fp16'.*fp32 or bf16"):
        train(small_model(), tiny_data(), methods.create("adversarial"), config, progress=False)
    unsupported = [n for n in methods.names() if "fp16" not in methods.get(n).precisions]
    assert {"adversarial", "awp", "wvat", "lipschitz", "correctnet"} <= set(unsupported)
