"""Models shaped the way PyTorch users write them, with a tiny dataset each (for contract tests).

Every task is represented: classifiers of many shapes, a regression MLP (one and two outputs), a
token tagger with padded targets, a built-in `gpt` language model and, where transformers is
installed, a Hugging Face GPT-2 language model and a GPT-2 sequence classifier built from a
config (random init, saved nowhere).

Each entry: (name, model factory, dataset factory, chip selection, output key). Shapes covered:
tied weights, dict and tuple outputs, several positional inputs, keyword inputs (a dict
batch), BatchNorm statistics on the chip, a recurrent (GRU) layer, a submodule frozen in eval
mode, snntorch spiking networks (Leaky, Synaptic, RLeaky, RSynaptic; state passed explicitly, or
kept by snntorch with init_hidden=True and never reset in forward, as its tutorials write them),
with their decay factors and thresholds (buffers or Parameters) on the chip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import snntorch
import torch
from torch import nn

from noiseproof.chip import ChipSelection, select_output
from noiseproof.data.base import Dataset
from noiseproof.models import build_model

CLASSES = 3


class Tied(nn.Module):
    """Two layers sharing one weight (b.weight = a.weight)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.b.weight = self.a.weight
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        return self.head(torch.relu(self.b(torch.relu(self.a(h)))))


class DictOut(nn.Module):
    """Returns {'logits': ..., 'features': ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.body(x))
        return {"features": h, "logits": self.head(h)}


class TupleOut(DictOut):
    """Returns (logits, features)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = super().forward(x)
        return out["logits"], out["features"]


class Masked(nn.Module):
    """forward(x, mask): a second positional input."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x * mask)))


class Keywords(Masked):
    """forward(*, features, mask): keyword inputs (the dataset yields dicts)."""

    def forward(self, *, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(features, mask)


class Normed(nn.Module):
    """Linear + BatchNorm1d (statistics put on the chip by glob) + Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.body(x))))


class Recurrent(nn.Module):
    """GRU over a [B, T, C] sequence, last hidden state to a Linear readout."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(2, 8, batch_first=True)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


class Frozen(Normed):
    """Normed with its BatchNorm frozen in eval mode by the user."""

    def __init__(self) -> None:
        super().__init__()
        self.bn.eval()


INIT_STATE = {
    "Leaky": "init_leaky",
    "Synaptic": "init_synaptic",
    "RLeaky": "init_rleaky",
    "RSynaptic": "init_rsynaptic",
}


class Spiking(nn.Module):
    """fc1 -> snntorch neuron -> fc2 at each step of a [B, T, C] sequence, outputs averaged.

    With init_hidden=True snntorch keeps the state in the neuron's buffers and this forward
    never resets it (the tutorials call snntorch.utils.reset in the training loop instead);
    otherwise the state is initialised and passed by hand, as in snntorch's docstrings.
    """

    def __init__(self, neuron: str, init_hidden: bool, learn: bool = False) -> None:
        super().__init__()
        self.neuron, self.init_hidden = neuron, init_hidden
        extra = {"alpha": 0.8} if "Synaptic" in neuron else {}
        extra |= {"linear_features": 8} if neuron.startswith("R") else {}
        self.fc1 = nn.Linear(2, 8)
        self.lif = getattr(snntorch, neuron)(
            beta=0.9,
            threshold=0.5,
            init_hidden=init_hidden,
            learn_beta=learn,
            learn_threshold=learn,
            **extra,
        )
        self.fc2 = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = 0.0
        state = () if self.init_hidden else getattr(self.lif, INIT_STATE[self.neuron])()
        state = state if isinstance(state, tuple) else (state,)
        for t in range(x.shape[1]):
            step = self.lif(self.fc1(x[:, t]), *state)
            spikes = step if self.init_hidden else step[0]
            if not self.init_hidden:
                state = step if self.neuron.startswith("R") else step[1:]
            out = out + self.fc2(spikes)
        return out / x.shape[1]


def _spiking(neuron: str, init_hidden: bool, learn: bool = False) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return Spiking(neuron, init_hidden, learn)

    return build


def _labels(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, CLASSES, (n,), generator=gen)


def flat_data(name: str) -> Dataset:
    """48 examples of 6 features (32 train, of which 8 validation; 16 test)."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 6, generator=gen), _labels(48, gen)
    return Dataset.from_tensors(x[:32], y[:32], x[32:], y[32:], val_fraction=0.25, name=name)


def masked_data(as_dict: bool) -> Dataset:
    """(x, mask) pairs, as a tuple or as {'features': x, 'mask': mask}."""
    gen = torch.Generator().manual_seed(2)
    x, mask = torch.randn(48, 6, generator=gen), (torch.rand(48, 6, generator=gen) > 0.2).float()
    y = _labels(48, gen)
    train = {"features": x[:32], "mask": mask[:32]} if as_dict else (x[:32], mask[:32])
    test = {"features": x[32:], "mask": mask[32:]} if as_dict else (x[32:], mask[32:])
    return Dataset.from_tensors(train, y[:32], test, y[32:], val_fraction=0.25, name="masked")


def sequence_data() -> Dataset:
    """48 sequences of 5 steps x 2 channels."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(48, 5, 2, generator=gen), _labels(48, gen)
    return Dataset.from_tensors(x[:32], y[:32], x[32:], y[32:], val_fraction=0.25, name="seq")


class ZooEntry(NamedTuple):
    name: str
    build: Callable[[], nn.Module]
    data: Callable[[], Dataset]
    selection: ChipSelection


def _seeded(cls: type[nn.Module], output: str | int | None = None) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return select_output(cls(), output)

    return build


class Regressor(nn.Module):
    """6 features -> 8 -> `outputs` real values (a [B] target is read from a [B, 1] output)."""

    def __init__(self, outputs: int = 1) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x)))


class Tagger(nn.Module):
    """Embedding -> Linear -> a class per token: [B, T] ids to [B, T, CLASSES] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(self.embed(x))))


VOCAB = 11
"""Token ids of the zoo's sequence data."""

STEPS = 6
"""Tokens per sequence of the zoo's sequence data."""


def regression_data(outputs: int = 1) -> Dataset:
    """48 examples of 6 features, real targets [N] (outputs 1) or [N, outputs]."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(48, 6, generator=gen)
    y = torch.tanh(x[:, :outputs] + 0.1 * torch.randn(48, outputs, generator=gen))
    y = y[:, 0] if outputs == 1 else y
    return Dataset.from_tensors(x[:32], y[:32], x[32:], y[32:], val_fraction=0.25, name="reg")


def token_stream_data() -> Dataset:
    """Next-token windows of a random token stream: x [N, STEPS], y = x shifted by one."""
    gen = torch.Generator().manual_seed(5)
    stream = torch.randint(0, VOCAB, (48 * STEPS + 1,), generator=gen)
    x = stream[:-1].reshape(48, STEPS)
    y = stream[1:].reshape(48, STEPS)
    return Dataset.from_tensors(
        x[:32], y[:32], x[32:], y[32:], val_fraction=0.25, num_classes=VOCAB, name="stream"
    )


def tagging_data() -> Dataset:
    """Token sequences with a label per token, the last token of every third one padding."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randint(0, VOCAB, (48, STEPS), generator=gen)
    y = x % CLASSES
    y[::3, -1] = -100
    return Dataset.from_tensors(
        x[:32], y[:32], x[32:], y[32:], val_fraction=0.25, num_classes=CLASSES, name="tags"
    )


def sequence_classes_data() -> Dataset:
    """Token sequences with one class per sequence (its token sum modulo CLASSES)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randint(0, VOCAB - 1, (48, STEPS), generator=gen)
    y = x.sum(dim=1) % CLASSES
    return Dataset.from_tensors(
        x[:32], y[:32], x[32:], y[32:], val_fraction=0.25, num_classes=CLASSES, name="seqcls"
    )


def _two_outputs() -> nn.Module:
    torch.manual_seed(0)
    return Regressor(2)


def _built(spec: dict, outputs: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_model(spec, (STEPS,), outputs)

    return build


TINY_GPT2 = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8, "n_positions": 8}
"""A Hugging Face GPT-2 small enough for every contract test."""


ZOO = [
    ZooEntry("tied", _seeded(Tied), lambda: flat_data("tied"), ChipSelection()),
    ZooEntry("dict_output", _seeded(DictOut, "logits"), lambda: flat_data("d"), ChipSelection()),
    ZooEntry("tuple_output", _seeded(TupleOut, 0), lambda: flat_data("t"), ChipSelection()),
    ZooEntry("two_inputs", _seeded(Masked), lambda: masked_data(False), ChipSelection()),
    ZooEntry("dict_inputs", _seeded(Keywords), lambda: masked_data(True), ChipSelection()),
    ZooEntry(
        "bn_on_chip",
        _seeded(Normed),
        lambda: flat_data("bn"),
        ChipSelection(include=("*.running_mean", "*.running_var")),
    ),
    ZooEntry(
        "gru",
        _seeded(Recurrent),
        sequence_data,
        ChipSelection(layers=("GRU", "Linear")),
    ),
    ZooEntry("frozen_bn", _seeded(Frozen), lambda: flat_data("frozen"), ChipSelection()),
    ZooEntry(
        "snn_leaky",
        _spiking("Leaky", False),
        sequence_data,
        ChipSelection(include=("*.beta", "*.threshold")),
    ),
    ZooEntry("snn_leaky_hidden", _spiking("Leaky", True), sequence_data, ChipSelection()),
    ZooEntry(
        "snn_synaptic_hidden",
        _spiking("Synaptic", True, learn=True),
        sequence_data,
        ChipSelection(include=("*.alpha", "*.beta", "*.threshold")),
    ),
    ZooEntry("snn_rleaky", _spiking("RLeaky", False), sequence_data, ChipSelection()),
    ZooEntry(
        "snn_rsynaptic_hidden",
        _spiking("RSynaptic", True),
        sequence_data,
        ChipSelection(include=("*.beta", "*.threshold")),
    ),
    ZooEntry("regression", _seeded(Regressor), regression_data, ChipSelection()),
    ZooEntry("regression_2d", _two_outputs, lambda: regression_data(2), ChipSelection()),
    ZooEntry("token_tagger", _seeded(Tagger), tagging_data, ChipSelection()),
    ZooEntry(
        "gpt",
        _built({"name": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8}, VOCAB),
        token_stream_data,
        ChipSelection(),
    ),
    ZooEntry(
        "hf_gpt2_lm",
        _built({"name": "huggingface", "config": TINY_GPT2}, VOCAB),
        token_stream_data,
        ChipSelection(),
    ),
    ZooEntry(
        "hf_gpt2_classifier",
        _built(
            {"name": "huggingface", "config": TINY_GPT2, "head": "sequence_classification"},
            CLASSES,
        ),
        sequence_classes_data,
        ChipSelection(),
    ),
]
"""The model zoo every contract test runs over (transformers, the hf extra, is installed by
setup.sh: without it the Hugging Face entries fail rather than vanish)."""
