"""Spiking models: the built-in snn_mlp and lsnn, and snntorch models written by users.

Shapes, the LSNN dynamics against a neuron-by-neuron reference, surrogate gradients against
snntorch's, hidden state reset before every forward, checkpoints, training, attack and
landscape, the chip selection of neuron parameters, vmap against the per-chip loop.
"""

from __future__ import annotations

import copy

import pytest
import torch
from snntorch import surrogate as snn_surrogate
from snntorch import utils as snn_utils

from noiseproof.chip import ChipSelection, chip_params, forward, hidden_state, scratch_buffers
from noiseproof.data.base import Dataset
from noiseproof.errors import NoiseproofError
from noiseproof.evaluation.attack import AttackConfig, attack_parameters, targeted_attack
from noiseproof.evaluation.landscape import LandscapeConfig, loss_landscape
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.evaluation.vectorised import vmap_agrees
from noiseproof.methods import methods
from noiseproof.models import build_model
from noiseproof.models.spiking import spike
from noiseproof.noise import noise_models
from noiseproof.physical import POSITIVE_FLOOR
from noiseproof.seeding import generator
from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train
from reference.spiking_reference import lsnn_logits
from zoo import Spiking, sequence_data

NEURON = ("*.tau_mem", "*.threshold")


def pulses(n: int = 240, steps: int = 12) -> Dataset:
    """Two channels of background noise; the labelled channel also carries a pulse train."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = 0.2 * torch.rand(n, steps, 2, generator=gen)
    x[torch.arange(n), :, y] += (torch.rand(n, steps, generator=gen) < 0.5).float()
    cut = 2 * n // 3
    return Dataset.from_tensors(x[:cut], y[:cut], x[cut:], y[cut:], val_fraction=0.25, name="p")


def built(spec: dict, shape: tuple[int, ...] = (12, 2), outputs: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(spec, shape, outputs)


@pytest.mark.parametrize("name", ["snn_mlp", "lsnn"])
@pytest.mark.parametrize("readout", ["membrane", "spikes"])
@pytest.mark.parametrize(
    ("shape", "batch"),
    [((7, 3), (5, 7, 3)), ((4, 1, 3, 3), (5, 4, 1, 3, 3)), ((6,), (5, 6))],
    ids=["sequence", "encoded_image", "static_vector"],
)
def test_every_input_convention_is_the_sequence_it_encodes(name, readout, shape, batch):
    spec = {"name": name, "readout": readout, "steps": 3}
    model = built(spec, shape, 4)
    x = torch.rand(batch, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    assert logits.shape == (5, 4)
    # the sequence [B, T, features] each convention stands for: frames flattened, a static
    # vector given at each of the 3 steps; the same seed builds the same weights for it
    sequence = x.unsqueeze(1).expand(-1, 3, -1) if x.dim() == 2 else x.flatten(2)
    reference = built(spec, tuple(sequence.shape[1:]), 4)
    torch.testing.assert_close(logits, reference(sequence), rtol=1e-6, atol=1e-7)
    # one example at a time gives the same logits: nothing is shared across the batch
    alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(logits, alone, rtol=1e-5, atol=1e-6)


def test_static_vector_is_repeated_over_steps():
    """Direct encoding: a [B, F] batch equals the same vector given at each of `steps` steps."""
    model = built({"name": "lsnn", "hidden": 8, "steps": 5}, (3,), 2)
    sequence = built({"name": "lsnn", "hidden": 8}, (5, 3), 2)
    x = torch.rand(4, 3)
    assert torch.equal(model(x), sequence(x.unsqueeze(1).expand(4, 5, 3)))


@pytest.mark.parametrize("adaptive_fraction", [1.0, 0.5])
def test_lsnn_matches_the_neuron_by_neuron_reference(adaptive_fraction):
    spec = {
        "name": "lsnn",
        "hidden": 5,
        "tau_mem": 4.0,
        "tau_adapt": 9.0,
        "adaptation": 0.7,
        "threshold": 0.05,
        "tau_out": 3.0,
        "adaptive_fraction": adaptive_fraction,
    }
    model = built(spec, (6, 3), 2).double()
    with torch.no_grad():  # vary every neuron's parameters so indexing errors show
        model.lif.tau_mem += torch.arange(5.0)
        model.lif.threshold *= 1 + 0.1 * torch.arange(5.0)
    x = torch.rand(2, 6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits = model(x)
    lif = model.lif
    neurons = {k: getattr(lif, k).tolist() for k in ("tau_mem", "tau_adapt", "threshold")}
    neurons["adaptation"] = lif.adaptation.tolist()
    assert neurons["adaptation"].count(0.0) == 5 - round(5 * adaptive_fraction)
    spikes = 0.0
    for b in range(2):
        expected, raster = lsnn_logits(
            x[b].tolist(),
            model.inp.weight.tolist(),
            model.rec.weight.tolist(),
            model.head.weight.tolist(),
            model.head.bias.tolist(),
            neurons,
            model.out.tau_mem.tolist(),
        )
        spikes += sum(map(sum, raster))
        # float64 both sides, different summation order: agreement to ~1e-12
        assert logits[b].tolist() == pytest.approx(expected, abs=1e-10)
    assert spikes > 0  # the reference comparison exercised spikes and resets


@pytest.mark.parametrize(
    ("name", "slope", "theirs"),
    [
        ("fast_sigmoid", 25.0, snn_surrogate.fast_sigmoid(slope=25)),
        ("atan", 2.0, snn_surrogate.atan(alpha=2.0)),
        ("sigmoid", 5.0, snn_surrogate.sigmoid(slope=5)),
    ],
)
def test_surrogate_gradients_are_snntorchs(name, slope, theirs):
    x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    mine, other = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = spike(mine, name, slope)
    out.sum().backward()
    theirs(other).sum().backward()
    assert torch.equal(out.detach(), (x > 0).double())
    assert torch.allclose(mine.grad, other.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("learn", [False, True])
def test_neuron_parameters_learnable_or_fixed(learn):
    model = built({"name": "lsnn", "hidden": 16, "learn_neuron": learn})
    names = {n for n, _ in model.named_parameters()}
    neuron = {"lif.tau_mem", "lif.tau_adapt", "lif.threshold", "lif.adaptation", "out.tau_mem"}
    assert (neuron <= names) == learn
    assert neuron <= set(model.state_dict())  # buffers or parameters: in checkpoints alike
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = pulses()
    train(model, data, methods.create("standard"), TrainConfig(epochs=1, batch_size=32))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert (neuron & changed == neuron) == learn
    assert "inp.weight" in changed


@pytest.mark.parametrize("name", ["lsnn", "snn_mlp"])
def test_short_training_learns_a_temporal_task(name):
    data = pulses()
    model = built({"name": name, "hidden": 16 if name == "lsnn" else (16,)})
    train(model, data, methods.create("standard"), TrainConfig(epochs=4, batch_size=16, lr=1e-2))
    with torch.no_grad():
        accuracy = (forward(model, None, data.x_test).argmax(1) == data.y_test).double().mean()
    assert accuracy > 0.85  # chance is 0.5; the task is linearly separable by spike rates


@pytest.mark.parametrize("learn", [False, True])
def test_checkpoint_round_trip_into_a_fresh_model(tmp_path, learn):
    spec = {"name": "lsnn", "hidden": 8, "learn_neuron": learn}
    model = built(spec)
    with torch.no_grad():
        model.lif.threshold.mul_(1.5)  # a value a fresh model does not have
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), {"spec": spec})
    state, _ = load_checkpoint(path, trained=False)
    fresh = build_model(spec, (12, 2), 2)
    fresh.load_state_dict(state)
    x = torch.rand(3, 12, 2)
    assert torch.equal(fresh(x), model(x))


def test_snntorch_state_is_not_checkpointed_nor_on_the_chip(tmp_path):
    model = Spiking("RSynaptic", init_hidden=True)
    model(torch.rand(4, 5, 2))  # snntorch now holds [4, 8] state in its buffers
    assert "lif.mem" not in model.state_dict()
    path = save_checkpoint(tmp_path / "s.pt", model.state_dict(), {})
    Spiking("RSynaptic", init_hidden=True).load_state_dict(load_checkpoint(path, trained=False)[0])
    assert set(hidden_state(model)) == {"lif.mem", "lif.syn", "lif.spk"}
    assert not set(hidden_state(model)) & set(scratch_buffers(model))
    with pytest.raises(NoiseproofError, match=r"chip.include: '\*.mem' matches no"):
        chip_params(model, ChipSelection(include=("*.mem",)))


@pytest.mark.parametrize("neuron", ["Leaky", "Synaptic", "RLeaky", "RSynaptic"])
def test_every_forward_starts_from_rest_and_leaves_snntorch_state_alone(neuron):
    """The tutorial model (init_hidden, no reset in forward): noiseproof's forward equals the
    first call of a model at rest, every time, and the user's state buffers stay as they were.
    (At rest means every state buffer zero: snntorch 1.0's utils.reset leaves RSynaptic's
    `spk` as it was, so it is not the reference here.)"""
    model = Spiking(neuron, init_hidden=True)
    at_rest = copy.deepcopy(model)
    x = torch.rand(4, 5, 2)
    model(torch.rand(4, 5, 2))  # leave some state behind, as a user's last call would
    kept = {n: b.clone() for n, b in model.named_buffers()}
    first, second = forward(model, None, x), forward(model, chip_params(model), x)
    assert all(torch.equal(kept[n], b) for n, b in model.named_buffers())
    assert torch.equal(first, at_rest(x)) and torch.equal(second, first)
    if neuron != "RSynaptic":
        snn_utils.reset(model)
        assert torch.equal(first, model(x))


@pytest.mark.parametrize("spec", [{"name": "lsnn", "hidden": 8}, {"name": "snn_mlp"}])
def test_vmapped_chips_equal_the_per_chip_loop(spec):
    data = pulses(60)
    model = built(spec)
    noise = noise_models.create({"name": "relative_gaussian", "zeta": 0.3})
    selection = ChipSelection(include=NEURON)
    assert vmap_agrees(model, chip_params(model, selection), data.x_test)
    runs = [
        run_transfers(
            model,
            noise,
            data.x_test,
            data.y_test,
            6,
            generator(0, "c"),
            selection=selection,
            vectorise=vectorise,
        ).accuracy
        for vectorise in (True, False, None)
    ]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[1], runs[2])


@pytest.mark.parametrize("neuron", ["Leaky", "RSynaptic"])
def test_snntorch_models_take_the_loop_and_agree(neuron):
    """snntorch's surrogates are autograd.Functions vmap cannot run: the auto path falls back
    to the per-chip loop (same accuracies), and vectorise=True says why it cannot."""
    data, model = sequence_data(), Spiking(neuron, init_hidden=True)
    noise = noise_models.create("relative_gaussian")
    selection = ChipSelection(include=("*.beta", "*.threshold"))
    auto, loop = (
        run_transfers(
            model,
            noise,
            data.x_test,
            data.y_test,
            4,
            generator(1, "c"),
            selection=selection,
            vectorise=v,
        ).accuracy
        for v in (None, False)
    )
    assert torch.equal(auto, loop)
    with pytest.raises(ValueError, match="vmap cannot run"):
        run_transfers(model, noise, data.x_test, data.y_test, 1, generator(1, "c"), vectorise=True)


def test_attack_and_landscape_run_with_neuron_parameters_on_the_chip():
    data = pulses(90)
    model = built({"name": "lsnn", "hidden": 8})
    selection = ChipSelection(include=NEURON)
    with torch.no_grad():  # the clean values, by hand
        logits = model(data.x_test)
    clean_loss = float(torch.nn.functional.cross_entropy(logits, data.y_test))
    clean_accuracy = float((logits.argmax(dim=1) == data.y_test).double().mean())
    (record,) = targeted_attack(
        model,
        data.x_test,
        data.y_test,
        AttackConfig(zetas=(0.5,), n_steps=2, transfers=2),
        selection=selection,
        generator=torch.Generator().manual_seed(0),
    )
    assert record["clean_loss"] == pytest.approx(clean_loss, rel=1e-6)
    assert record["clean_accuracy"] == clean_accuracy
    assert record["attacked_loss"] > clean_loss  # the ascent raised the loss from the clean point
    assert record["attacked_accuracy"] <= clean_accuracy
    curve = loss_landscape(
        model,
        data.x_test,
        data.y_test,
        LandscapeConfig(alphas=(-1.0, 0.0, 1.0), repeats=1),
        selection=selection,
        generator=torch.Generator().manual_seed(0),
    )
    assert curve["clean_loss"] == pytest.approx(clean_loss, rel=1e-6)
    (losses,) = curve["loss"]
    assert losses[1] == pytest.approx(clean_loss, rel=1e-6)  # alpha 0 is the clean network
    assert losses[0] != losses[1] and losses[2] != losses[1]  # the neurons did move


def test_attack_keeps_thresholds_positive_and_time_constants_physical():
    """zeta 2 lets the relative box reach -theta; the attacked point stays physical (the
    attack moves parameters only: learn_neuron makes the neuron tensors parameters)."""
    data = pulses(60)
    model = built({"name": "lsnn", "hidden": 8, "learn_neuron": True})
    params = chip_params(model, ChipSelection(include=NEURON))
    attacked = attack_parameters(
        model, params, data.x_test, data.y_test, 2.0, generator(0, "a"), n_steps=3
    )
    floor = torch.tensor(POSITIVE_FLOOR)  # as float32 rounds it
    for name in ("lif.threshold", "lif.tau_mem", "out.tau_mem"):
        assert bool((attacked[name] >= floor).all())
    assert float(attacked["lif.threshold"].min()) == floor  # the box reached below 0: clamped


@pytest.mark.parametrize(
    ("model", "glob"),
    [
        (lambda: built({"name": "snn_mlp"}), "*.tau_adapt"),
        (lambda: built({"name": "lsnn", "hidden": 4}), "*.beta"),
        (lambda: Spiking("Leaky", init_hidden=False), "*.alpha"),
    ],
)
def test_a_glob_that_selects_nothing_is_one_error(model, glob):
    with pytest.raises(NoiseproofError, match="matches no parameter or buffer"):
        chip_params(model(), ChipSelection(include=(glob,)))


def test_neuron_tensors_are_selected_by_glob_buffers_and_parameters_alike():
    fixed = chip_params(built({"name": "lsnn", "hidden": 4}), ChipSelection(include=NEURON))
    assert {"lif.tau_mem", "lif.threshold", "out.tau_mem"} <= set(fixed)
    assert {"inp.weight", "rec.weight", "head.weight", "head.bias"} <= set(fixed)
    snn = chip_params(Spiking("Leaky", False), ChipSelection(include=("*.beta", "*.threshold")))
    assert {"lif.beta", "lif.threshold", "fc1.weight"} <= set(snn)


def test_bad_spec_is_one_error():
    with pytest.raises(NoiseproofError, match="readout"):
        build_model({"name": "lsnn", "readout": "max"}, (4, 2), 2)
    with pytest.raises(NoiseproofError, match="adaptive_fraction"):
        build_model({"name": "lsnn", "adaptive_fraction": 1.5}, (4, 2), 2)
