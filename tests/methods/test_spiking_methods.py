"""Every training method on spiking networks (issue 11): the built-in `lsnn` and `snn_mlp` and
snntorch user models, neuron parameters on the chip.

Contract: one training step of every registered method (listed from the registry) changes the
on-chip weights and leaves every buffer (neuron parameters that are not learnt, snntorch's
hidden state), every mode and no hook behind. Behaviour: consistency's spiking features are the
spike rates and membrane traces computed by hand (tests/reference/spiking_features_reference.py,
tests/reference/spiking_reference.py); the attacks and WVAT's variation move neuron parameters
and keep them physical; hardware_aware regularises weights only; lipschitz lowers the operator
norms of an LSNN's layers, its recurrent weights included; correctnet's compensation targets
are every time step of a forward from rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from torch import nn

from noiseproof.ascent import sign_ascent
from noiseproof.bounds import relative_box_point
from noiseproof.chip import ChipSelection, chip_params, detached, forward
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method, methods
from noiseproof.methods.adversarial import attack_split
from noiseproof.methods.awp import layer_l2_ascent
from noiseproof.methods.base import StepContext
from noiseproof.methods.consistency import captured, layer_features, taken
from noiseproof.methods.correctnet.compensation import clean_outputs
from noiseproof.methods.spiking_features import spiking_layers
from noiseproof.methods.wvat import WVAT
from noiseproof.models import build_model
from noiseproof.models.spiking import LIF
from noiseproof.noise import create_noise
from noiseproof.physical import limit, range_of
from noiseproof.tasks.classification import Classification
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from reference.spiking_features_reference import (
    leaky_layer,
    linear,
    mean_squared_error,
    spike_rates,
)
from reference.spiking_reference import lsnn_logits
from zoo import CLASSES, Spiking, sequence_data

task_loss = Classification().loss  # the classifier loss the references are written with

STEPS, FEATURES = 5, 2
"""sequence_data(): 48 sequences [5 steps, 2 channels], 24 training examples."""

LSNN_NEURONS = ("*.tau_mem", "*.threshold", "*.tau_adapt", "*.adaptation")


class Case(NamedTuple):
    name: str
    build: Callable[[], nn.Module]
    selection: ChipSelection


def builtin(spec: dict) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_model({"threshold": 0.05, **spec}, (STEPS, FEATURES), CLASSES)

    return build


def snntorch_model(neuron: str, init_hidden: bool, learn: bool = False) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return Spiking(neuron, init_hidden, learn)

    return build


CASES = [
    Case(
        "lsnn",  # neuron parameters as buffers on the chip: perturbed, never trained
        builtin({"name": "lsnn", "hidden": 8}),
        ChipSelection(include=LSNN_NEURONS),
    ),
    Case(
        "snn_mlp_learnt_neurons",  # per-neuron (1-d) Parameters on the chip
        builtin({"name": "snn_mlp", "hidden": [8, 8], "learn_neuron": True}),
        ChipSelection(include=("*.tau_mem", "*.threshold")),
    ),
    Case(
        "snntorch_rleaky",  # explicit state, tuple outputs; 0-d buffers on the chip
        snntorch_model("RLeaky", False),
        ChipSelection(include=("*.beta", "*.threshold")),
    ),
    Case(
        "snntorch_synaptic_hidden",  # init_hidden state buffers; 0-d Parameters on the chip
        snntorch_model("Synaptic", True, learn=True),
        ChipSelection(include=("*.alpha", "*.beta", "*.threshold")),
    ),
]

NOISE = create_noise({"name": "relative_gaussian", "zeta": 0.3})


def leftover_hooks(model: nn.Module) -> int:
    """Forward hooks, pre-hooks and recorded LIF steps still installed anywhere in `model`."""
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    steps = sum("step" in vars(m) for m in model.modules() if isinstance(m, LIF))
    return hooks + steps


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.parametrize("method_name", methods.names())
def test_one_step_of_every_method_trains_every_spiking_model(case, method_name):
    model, data = case.build(), sequence_data()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}  # hidden state included
    modes = {n: m.training for n, m in model.named_modules()}
    result = train(
        model,
        data,
        create_method(method_name),
        TrainConfig(epochs=1, batch_size=len(data.y_train)),  # one step
        noise=NOISE,
        selection=case.selection,
        progress=False,
    )
    assert result.history[0]["loss"] == result.history[0]["loss"]  # finite (not NaN)
    on_chip = set(case.selection.names(model))
    changed = [n for n, p in model.named_parameters() if not torch.equal(params[n], p)]
    assert set(changed) & on_chip, method_name
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert leftover_hooks(model) == 0
    for name, p in model.named_parameters():  # learnt neuron parameters stay physical
        assert range_of(name) is None or torch.equal(limit(name, p), p), name


def lsnn_reference_rates(model: nn.Module, params: dict, x: torch.Tensor) -> list[list[float]]:
    """Per example, the LIF layer's spike rates by hand (tests/reference/spiking_reference.py)
    with the on-chip tensors in `params` standing in for the model's."""
    own = {**dict(model.named_buffers()), **dict(model.named_parameters()), **params}
    neurons = {k: own[f"lif.{k}"].tolist() for k in ("tau_mem", "tau_adapt", "threshold")}
    neurons["adaptation"] = own["lif.adaptation"].tolist()
    rates = []
    for example in x.tolist():
        _, raster = lsnn_logits(
            example,
            own["inp.weight"].tolist(),
            own["rec.weight"].tolist(),
            own["head.weight"].tolist(),
            own["head.bias"].tolist(),
            neurons,
            own["out.tau_mem"].tolist(),
        )
        rates.append(spike_rates(raster))
    return rates


def test_consistency_on_an_lsnn_holds_noisy_spike_rates_to_clean_ones():
    """'consistency' = lam * MSE(rates through the noisy chip, clean rates), by hand."""
    model = builtin({"name": "lsnn", "hidden": 6, "threshold": 0.02})().double()
    selection = ChipSelection(include=LSNN_NEURONS)
    x = sequence_data().x_train[:4].double()
    y = torch.tensor([0, 1, 2, 0])
    method = create_method({"name": "consistency", "lam": 2.0})
    assert method.compared(model) == ["lif"] == spiking_layers(model)
    params = chip_params(model, selection)
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.5})
    noisy = noise.sample(detached(params), torch.Generator().manual_seed(3))  # the step's draw
    terms = method.terms(StepContext(model, params, noise, torch.Generator().manual_seed(3)), x, y)
    clean_rates = lsnn_reference_rates(model, detached(params), x)
    noisy_rates = lsnn_reference_rates(model, noisy, x)
    assert 0 < sum(map(sum, clean_rates)) < 4 * 6  # neurons spike, not at every step
    assert clean_rates != noisy_rates
    expected = 2.0 * mean_squared_error(noisy_rates, clean_rates)
    assert terms["consistency"].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def leaky_by_hand(model: nn.Module, x: torch.Tensor):
    """Per example, (spikes, membranes) [T][neuron] of the zoo model's snntorch Leaky layer."""
    w, b = model.fc1.weight.tolist(), model.fc1.bias.tolist()
    beta, threshold = model.lif.beta.item(), model.lif.threshold.item()
    return [
        leaky_layer([linear(w, b, x_t) for x_t in example], beta, threshold)
        for example in x.tolist()
    ]


@pytest.mark.parametrize("init_hidden", [False, True], ids=["tuple_output", "init_hidden"])
def test_snntorch_features_are_spike_rates_or_membrane_traces(init_hidden):
    model = snntorch_model("Leaky", init_hidden)()  # snntorch spikes are float32
    x = 3 * sequence_data().x_train[:3]
    by_hand = leaky_by_hand(model, x)
    for kind in ("rates", "membrane"):
        with captured(model, ["lif"], kind) as store:
            forward(model, None, x)
            features = layer_features(model, taken(store), kind)
        (feature,) = features["lif"]
        if kind == "rates":
            expected = [spike_rates(spikes) for spikes, _ in by_hand]  # [B, neurons]
        else:
            expected = [[list(v) for v in zip(*mem, strict=True)] for _, mem in by_hand]
        torch.testing.assert_close(feature, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert any(map(any, [spike_rates(spikes) for spikes, _ in by_hand]))  # neurons spike
    assert leftover_hooks(model) == 0


def test_a_users_own_neuron_joins_by_declaring_itself_spiking():
    class Neuron(nn.Module):
        spiking_neuron = True

        def forward(self, current: torch.Tensor, mem: torch.Tensor):
            mem = 0.5 * mem + current
            return (mem > 1).to(mem.dtype), mem

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.neuron, self.head = nn.Linear(2, 4), Neuron(), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem, out = torch.zeros(x.shape[0], 4), 0
            for t in range(x.shape[1]):
                spikes, mem = self.neuron(self.fc(x[:, t]), mem)
                out = out + self.head(spikes)
            return out

    torch.manual_seed(0)
    model, x = Net(), torch.rand(2, 5, 2)
    assert create_method("consistency").compared(model) == ["neuron"]
    with captured(model, ["neuron"], "membrane") as store:
        forward(model, None, x)
        (trace,) = layer_features(model, taken(store), "membrane")["neuron"]
    mem = torch.zeros(2, 4)
    for t in range(5):
        mem = 0.5 * mem + model.fc(x[:, t])
        assert torch.equal(trace[..., t], mem)


def rleaky_context(seed: int = 0) -> tuple[nn.Module, StepContext, torch.Tensor, torch.Tensor]:
    model = snntorch_model("RLeaky", False)()
    params = chip_params(model, ChipSelection(include=("*.beta", "*.threshold")))
    data = sequence_data()
    x, y = 3 * data.x_train[:16], data.y_train[:16]
    return model, StepContext(model, params, NOISE, torch.Generator().manual_seed(seed)), x, y


def physical(point: dict) -> bool:
    """Every neuron parameter of `point` inside its physical range."""
    return all(torch.equal(limit(n, t), t) for n, t in point.items())


def test_attacks_move_neuron_parameters_and_keep_them_physical():
    """Budgets of 1.5 |theta|: every box corner leaves beta = 0.9 out of [0, 1]; sign ascent
    (adversarial, awp) and Wu's layer-wise ascent (awp layer_l2) stop at the physical bound."""
    model, ctx, x, y = rleaky_context()
    moved, fixed = attack_split(model, ctx.params)
    assert {"lif.beta", "lif.threshold"} <= set(moved) and not fixed
    points = []

    def objective(point: dict) -> torch.Tensor:
        points.append(detached(point))
        return task_loss(forward(model, point, x), y)

    offset = sign_ascent(
        moved, objective, zeta=1.5, n_steps=1, initial_std=0.0, generator=ctx.generator
    )
    attacked = relative_box_point(moved, offset)
    assert attacked["lif.beta"].item() in (0.0, 1.0)  # at a physical bound, not 0.9 +- 1.35
    layer_l2_ascent(moved, objective, gamma=1.5, n_steps=2, buffers={})
    assert len(points) == 3 and all(physical(p) for p in points)
    assert not torch.equal(points[-1]["lif.beta"], moved["lif.beta"])


def test_wvat_varies_neuron_parameters_within_their_ranges():
    model, ctx, x, y = rleaky_context()
    for p in (0.0, 1.0):  # the gradient-ascent branch, then the random one
        varied = WVAT(p=p, rho=1.5, ascent="sign").variation(ctx, x, y)
        assert physical(varied)
        for name in ("lif.beta", "lif.threshold"):
            assert not torch.equal(varied[name], ctx.params[name]), (p, name)


def test_hardware_aware_regularises_the_weights_only():
    """weight decay 0.5 * lambda * sum w^2 over weights and biases; 0-d neuron Parameters
    (snntorch's learnt alpha, beta, threshold) are drawn stuck like weights but not decayed."""
    model = snntorch_model("Synaptic", True, learn=True)()
    params = chip_params(model, ChipSelection(include=("*.alpha", "*.beta", "*.threshold")))
    assert {params[n].dim() for n in ("lif.alpha", "lif.beta", "lif.threshold")} == {0}
    data = sequence_data()
    ctx = StepContext(
        model,
        params,
        create_noise({"name": "stuck_at", "p": 0.5}),
        torch.Generator().manual_seed(0),
    )
    method = create_method({"name": "hardware_aware", "weight_decay": 0.1, "drop_mode": "gradient"})
    terms = method.terms(ctx, data.x_train[:8], data.y_train[:8])
    weights = [p for n, p in params.items() if range_of(n) is None]
    assert len(weights) == 4
    expected = 0.05 * sum(w.square().sum() for w in weights)
    assert torch.allclose(terms["weight_decay"], expected)


def test_lipschitz_lowers_every_lsnn_layer_norm_recurrent_weights_included():
    model = builtin({"name": "lsnn", "hidden": 8})()
    with torch.no_grad():
        for layer in (model.inp, model.rec, model.head):
            layer.weight.mul_(4.0)

    def norms() -> list[float]:
        layers = (model.inp, model.rec, model.head)
        return [torch.linalg.matrix_norm(m.weight.detach(), 2).item() for m in layers]

    before = norms()
    assert min(before) > 1.0
    train(
        model,
        sequence_data(),
        create_method({"name": "lipschitz", "weight": 10.0, "iterations": 5}),
        TrainConfig(epochs=4, batch_size=24, lr=0.02, schedule="constant"),
        progress=False,
    )
    assert all(a < b for a, b in zip(norms(), before, strict=True)), (norms(), before)


def test_correctnet_targets_every_step_of_a_forward_from_rest():
    """clean_outputs of the layer after an init_hidden snntorch neuron: one output per time
    step (by hand: fc2 of the spikes from rest), the same on a second call, the user's own
    hidden-state buffers untouched."""
    model = snntorch_model("Leaky", True)()
    x = 3 * sequence_data().x_train[:3]
    state = {n: b.clone() for n, b in model.named_buffers()}
    targets = clean_outputs(model, ["fc2"], x)["fc2"]
    assert targets.shape == (STEPS, 3, CLASSES)
    w, b = model.fc2.weight.tolist(), model.fc2.bias.tolist()
    for i, (spikes, _) in enumerate(leaky_by_hand(model, x)):
        expected = [linear(w, b, z_t) for z_t in spikes]
        torch.testing.assert_close(targets[:, i], torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert torch.equal(clean_outputs(model, ["fc2"], x)["fc2"], targets)
    assert all(torch.equal(b, state[n]) for n, b in model.named_buffers())


def test_a_spiking_layer_without_a_membrane_is_refused_in_one_line():
    class SpikesOnly(nn.Module):
        spiking_neuron = True

        def forward(self, current: torch.Tensor) -> torch.Tensor:
            return (current > 0).to(current.dtype)

    model = nn.Sequential(nn.Linear(2, 4), SpikesOnly(), nn.Linear(4, 3))
    with (
        pytest.raises(NoiseproofError, match=r"^consistency: spiking layer '1' gives no membrane"),
        captured(model, ["1"], "membrane"),
    ):
        model(torch.rand(2, 2))
    assert leftover_hooks(model) == 0
