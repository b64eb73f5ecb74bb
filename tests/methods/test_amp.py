"""AMP (Zheng et al., CVPR 2021): the literal perturb / step / restore reference, the ball, the
ascent, epsilon 0 as standard training, BatchNorm statistics, neuron ranges, refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import tiny_data
from noiseproof.chip import ChipSelection, chip_params, detached
from noiseproof.config import ExperimentConfig, read_yaml
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.methods.amp import amp_ascent, project
from noiseproof.methods.base import StepContext
from noiseproof.models import build_model
from noiseproof.physical import limit
from noiseproof.tasks import tasks
from noiseproof.tasks.classification import Classification
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from reference.amp_reference import amp_step_inplace
from zoo import Spiking, sequence_data

task_loss = Classification().loss  # the classifier loss the references are written with


def fresh(name: str = "mlp", **params) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": name, **params}, (1, 8, 8), 3)


def context(model: nn.Module, seed: int = 0) -> StepContext:
    return StepContext(model, chip_params(model), None, torch.Generator().manual_seed(seed))


def batch(n=32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def global_norm(delta: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(d.square().sum()) for d in delta.values()))


# --- the literal reference -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "epsilon, inner_lr, inner_steps, ball",
    [
        (0.5, 1.0, 1, "global"),  # the released defaults: the first step already leaves the ball
        (0.05, 1.0, 3, "global"),  # projected at every step
        (20.0, 0.05, 2, "global"),  # never projected: plain gradient ascent
        (0.05, 1.0, 2, "per_tensor"),  # the released amp.py's per-tensor clip
    ],
)
def test_matches_the_literal_perturb_step_restore_reference(epsilon, inner_lr, inner_steps, ball):
    """Three SGD-with-momentum steps of ours equal three literal iterations of Algorithm 1 on a
    tiny MLP: N ascent steps written into the weights with the projection, the gradient there,
    the weights restored, the optimiser step (momentum then acts on the restored weights)."""
    ours, ref = fresh(hidden=[16]), fresh(hidden=[16])
    sgd = {"lr": 0.05, "momentum": 0.9}
    opt_ours = torch.optim.SGD(ours.parameters(), **sgd)
    opt_ref = torch.optim.SGD(ref.parameters(), **sgd)
    spec = {"epsilon": epsilon, "inner_lr": inner_lr, "inner_steps": inner_steps, "ball": ball}
    method = create_method({"name": "amp", **spec})
    for step in range(3):
        x, y = batch(seed=10 + step)
        opt_ours.zero_grad(set_to_none=True)
        method.terms(context(ours), x, y)["task"].backward()
        opt_ours.step()
        amp_step_inplace(
            ref,
            x,
            y,
            opt_ref,
            epsilon=epsilon,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            per_tensor=ball == "per_tensor",
        )
    with torch.no_grad():
        pairs = zip(ref.parameters(), fresh(hidden=[16]).parameters(), strict=True)
        moved = max(float((a - b).abs().max()) for a, b in pairs)
    assert moved > 1e-3  # the three steps did move the weights
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_batchnorm_vgg_with_decay_matches_the_reference_on_the_chip_tensors():
    """A VGG whose BatchNorm is digital (not perturbed, statistics updated once per step), SGD
    with momentum and weight decay: ours equals the literal reference on the on-chip tensors,
    BatchNorm running statistics included."""
    spec = {"name": "vgg", "channels": [4, 8], "hidden": 8, "batchnorm": True}
    ours, ref = fresh(**spec), fresh(**spec)
    on_chip = list(chip_params(ours))
    norms = [m for m, module in ours.named_modules() if isinstance(module, nn.BatchNorm2d)]
    assert norms and not any(n.startswith(f"{m}.") for m in norms for n in on_chip)
    sgd = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    opt_ours = torch.optim.SGD(ours.parameters(), **sgd)
    opt_ref = torch.optim.SGD(ref.parameters(), **sgd)
    method = create_method({"name": "amp", "epsilon": 0.1, "inner_steps": 2})
    for step in range(3):
        x, y = batch(seed=20 + step)
        opt_ours.zero_grad(set_to_none=True)
        method.terms(context(ours), x, y)["task"].backward()
        opt_ours.step()
        amp_step_inplace(
            ref, x, y, opt_ref, epsilon=0.1, inner_lr=1.0, inner_steps=2, on_chip=on_chip
        )
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


# --- the ball ------------------------------------------------------------------------------------


def test_projection_keeps_the_perturbation_inside_the_ball():
    """A step of 1e3 x the gradient leaves the ball by far: the projection puts Delta on its
    surface, along the gradient (global: the whole vector; per_tensor: each tensor)."""
    model = fresh(hidden=[16])
    x, y = batch()
    params = detached(chip_params(model))
    calls = []

    def objective(point):
        calls.append(1)
        return task_loss(torch.func.functional_call(model, point, (x,)), y)

    for steps in (1, 3):
        delta = amp_ascent(params, objective, epsilon=0.3, inner_lr=1e3, n_steps=steps)
        assert global_norm(delta) == pytest.approx(0.3, rel=1e-5)
        per = amp_ascent(
            params, objective, epsilon=0.3, inner_lr=1e3, n_steps=steps, ball="per_tensor"
        )
        for name, d in per.items():
            assert float(d.norm()) == pytest.approx(0.3, rel=1e-5), name
    assert len(calls) == 8  # one forward per ascent step, no more
    small = amp_ascent(params, objective, epsilon=100.0, inner_lr=0.01, n_steps=1)
    probe = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    grads = torch.autograd.grad(objective(probe), list(probe.values()))
    for (name, d), g in zip(small.items(), grads, strict=True):  # inside: the plain step
        torch.testing.assert_close(d, 0.01 * g, msg=name)


def test_project_scales_only_what_lies_outside():
    inside = {"a": torch.tensor([0.3, 0.4])}  # norm 0.5
    project(inside, 1.0)
    assert torch.equal(inside["a"], torch.tensor([0.3, 0.4]))
    outside = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([0.0, 4.0])}  # norm 5
    project(outside, 1.0)
    torch.testing.assert_close(outside["a"], torch.tensor([0.6, 0.0]))
    torch.testing.assert_close(outside["b"], torch.tensor([0.0, 0.8]))
    each = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([0.0, 0.5])}
    project(each, 1.0, "per_tensor")
    torch.testing.assert_close(each["a"], torch.tensor([1.0, 0.0]))
    assert torch.equal(each["b"], torch.tensor([0.0, 0.5]))
    zero = {"a": torch.zeros(3)}
    project(zero, 1.0)
    assert torch.equal(zero["a"], torch.zeros(3))


# --- the ascent ----------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 3])
def test_the_ascent_raises_the_loss(steps):
    """Delta is an ascent direction: the loss at theta + Delta is above the clean loss and the
    loss at theta - Delta below it (small ball, first order), so a flipped sign fails here;
    the method's task term is the loss at theta + Delta."""
    model = fresh(hidden=[16])
    x, y = batch()
    params = detached(chip_params(model))

    def loss(point):
        return task_loss(torch.func.functional_call(model, point, (x,)), y)

    delta = amp_ascent(params, loss, epsilon=1e-2, inner_lr=1.0, n_steps=steps)
    with torch.no_grad():
        clean = float(loss(params))
        assert float(loss({n: w + delta[n] for n, w in params.items()})) > clean
        assert float(loss({n: w - delta[n] for n, w in params.items()})) < clean
    method = create_method({"name": "amp", "epsilon": 0.5, "inner_steps": steps})
    task = float(method.terms(context(model), x, y)["task"].detach())
    assert task > clean + 1e-3


def test_more_ascent_steps_find_a_worse_point_in_the_same_ball():
    """Several projected steps of a small size climb higher than one, inside the same ball."""
    model = fresh(hidden=[16])
    x, y = batch()
    ctx = context(model)
    losses = [
        float(
            create_method({"name": "amp", "epsilon": 0.5, "inner_lr": 0.2, "inner_steps": n})
            .terms(ctx, x, y)["task"]
            .detach()
        )
        for n in (1, 5)
    ]
    assert losses[1] > losses[0]


# --- epsilon 0, determinism, buffers -------------------------------------------------------------


def test_epsilon_zero_is_standard_training_step_for_step():
    data = tiny_data()
    config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9)
    states = {}
    for spec in [{"name": "standard"}, {"name": "amp", "epsilon": 0.0}]:
        model = fresh(hidden=[16, 16])
        result = train(model, data, create_method(spec), config, seed=3, progress=False)
        states[spec["name"]] = (model.state_dict(), [row["task"] for row in result.history])
    (a, task_a), (b, task_b) = states["standard"], states["amp"]
    assert task_a == task_b
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_no_random_draw_and_the_same_loss_twice():
    """Delta starts at 0: the training generator is never read, and a step is deterministic."""
    model = fresh(hidden=[16])
    ctx = context(model)
    state = ctx.generator.get_state()
    method = create_method({"name": "amp", "inner_steps": 2})
    first = method.terms(ctx, *batch())["task"]
    second = method.terms(ctx, *batch())["task"]
    assert torch.equal(ctx.generator.get_state(), state)
    assert torch.equal(first, second)


def test_probe_forwards_leave_batchnorm_statistics_alone():
    """inner_steps = 3 runs four training-mode forwards; the statistics take one update, the
    same as the standard step's, digital or on the chip."""
    x, y = batch()
    for selection in (None, ChipSelection(include=("*.running_mean", "*.running_var"))):
        states = []
        for spec in ({"name": "standard"}, {"name": "amp", "inner_steps": 3}):
            model = fresh("resnet20", width=4).train()
            params = chip_params(model, selection)
            ctx = StepContext(model, params, None, torch.Generator().manual_seed(0))
            create_method(spec).terms(ctx, x, y)
            states.append({n: b.clone() for n, b in model.named_buffers()})
        counts = [b for n, b in states[1].items() if n.endswith("num_batches_tracked")]
        assert counts and all(int(c) == 1 for c in counts)
        for name, buffer in states[0].items():
            # the last forward is at theta + Delta, so the new batch statistics differ a little
            torch.testing.assert_close(states[1][name], buffer, rtol=0.1, atol=0.05, msg=name)


@pytest.mark.parametrize("ball", ["global", "per_tensor"])
def test_neuron_parameters_move_within_their_physical_ranges(ball):
    """A ball of radius 5 around beta = 0.9 (per tensor: beta alone may move by 5): every point
    the ascent and the task term use keeps beta in [0, 1] and the threshold positive, and beta
    does move."""
    torch.manual_seed(0)
    model = Spiking("RLeaky", False)
    params = chip_params(model, ChipSelection(include=("*.beta", "*.threshold")))
    data = sequence_data()
    x, y = 3 * data.x_train[:16], data.y_train[:16]
    ctx = StepContext(model, params, None, torch.Generator().manual_seed(0))
    points = []
    forward = ctx.forward

    def recording(point, inputs):
        points.append(detached(point))
        return forward(point, inputs)

    ctx.forward = recording
    spec = {"epsilon": 5.0, "inner_lr": 100.0, "inner_steps": 3, "ball": ball}
    method = create_method({"name": "amp", **spec})
    method.terms(ctx, x, y)["task"].backward()
    assert len(points) == 4  # three probes, then the task term
    for point in points:
        assert all(torch.equal(limit(n, t), t) for n, t in point.items())
    assert not torch.equal(points[-1]["lif.beta"], params["lif.beta"].detach())


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"epsilon": float("inf")}, "epsilon"),
        ({"inner_lr": 0}, "inner_lr"),
        ({"inner_lr": -1.0}, "inner_lr"),
        ({"inner_steps": 0}, "inner_steps"),
        ({"inner_steps": 1.5}, "inner_steps"),
        ({"ball": "l2"}, "ball"),
        ({"zeta": 1.0}, "zeta"),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(spec, field):
    with pytest.raises(NoiseproofError) as error:
        create_method({"name": "amp", **spec})
    message = str(error.value)
    assert "\n" not in message and field in message and "amp" in message


def test_fp16_is_refused_in_one_line():
    with pytest.raises(ValueError, match="fp16") as error:
        create_method("amp").check_precision("fp16")
    assert "\n" not in str(error.value)
    create_method("amp").check_precision("bf16")


def test_defaults_are_the_released_training_scripts():
    assert create_method("amp").spec() == {
        "name": "amp",
        "epsilon": 0.5,
        "inner_lr": 1.0,
        "inner_steps": 1,
        "ball": "global",
    }


def test_the_buechel2022_reduced_config_trains_amp_with_its_defaults():
    path = Path(__file__).parents[2] / "examples" / "buechel2022" / "config.yaml"
    config = ExperimentConfig.parse(read_yaml(path))
    (entry,) = [e for e in config.methods if e.method.spec()["name"] == "amp"]
    assert entry.label == "amp" and entry.method == create_method("amp")


def test_regression_task_trains():
    """AMP only calls the task's loss: a regression MLP trains through it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    ctx = StepContext(
        model,
        chip_params(model),
        None,
        torch.Generator().manual_seed(0),
        task=tasks.create("regression"),
    )
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    loss = create_method("amp").terms(ctx, x, y)["task"]
    clean = F.mse_loss(model(x), y)
    assert float(loss.detach()) > float(clean.detach())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
