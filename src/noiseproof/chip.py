"""Which tensors live on the chip, and the forward pass through a dict of stand-in tensors.

The user's nn.Module is never modified: a clean, noisy or attacked network is the same module
called with another `{name: tensor}` dict through `torch.func.functional_call`. Tied weights
(one Parameter reachable under several names) appear once, under the name
`model.named_parameters()` gives them, and a draw for that name reaches every use.
"""

from __future__ import annotations

import fnmatch
import functools
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from noiseproof.errors import NoiseproofError
from noiseproof.inputs import Inputs, call_arguments

Params = dict[str, Tensor]

DEFAULT_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "Conv1D")
"""Layer classes on the chip by default; "Conv1D" is Hugging Face's (transformers.pytorch_utils),
GPT-2's projections: a Linear whose weight is stored transposed, [in, out]."""


def _kind_matches(leaf: str, kinds: tuple[str, ...]) -> bool:
    """'weight' selects 'weight' and the recurrent layers' 'weight_ih_l0', 'weight_hh_l0', ..."""
    return any(leaf == kind or leaf.startswith(f"{kind}_") for kind in kinds)


def is_transposed_linear(module: nn.Module) -> bool:
    """True for Hugging Face's Conv1D (GPT-2's projections): y = x W + b with W [in, out], a
    Linear whose weight is stored transposed (recognised by name: transformers not imported)."""
    weight = getattr(module, "weight", None)
    return type(module).__name__ == "Conv1D" and isinstance(weight, Tensor) and weight.dim() == 2


def is_bias(name: str) -> bool:
    """True for a tensor named `bias` or `bias_*` (a recurrent layer's `bias_ih_l0`)."""
    leaf = name.rpartition(".")[2]
    return leaf == "bias" or leaf.startswith("bias_")


def _owned_tensors(module: nn.Module) -> list[tuple[str, Tensor]]:
    """The module's own floating-point parameters and buffers (not its children's), hidden
    state excluded (it is state, not a stored parameter: see `hidden_state`)."""
    state = _state_leaves(module)
    own = [*module._parameters.items(), *module._buffers.items()]
    return [
        (leaf, t)
        for leaf, t in own
        if t is not None and t.is_floating_point() and leaf not in state
    ]


@functools.cache
def is_snntorch_neuron(cls: type) -> bool:
    """Whether `cls` derives from snntorch's SpikingNeuron (by name: snntorch not imported)."""
    return any(
        c.__name__ == "SpikingNeuron" and c.__module__.startswith("snntorch") for c in cls.__mro__
    )


def _state_leaves(module: nn.Module) -> frozenset[str]:
    """Names of `module`'s own hidden-state buffers: the non-persistent buffers of a snntorch
    neuron (`mem`, `syn`, `spk`...)."""
    cls: type = type(module)  # as `type`: mypy takes type[Module] for an unhashable instance
    if not is_snntorch_neuron(cls):
        return frozenset()
    return frozenset(module._non_persistent_buffers_set)


def hidden_state(model: nn.Module) -> Params:
    """A fresh, zero hidden state for every snntorch neuron of `model`: {buffer name: zeros}.

    snntorch keeps a neuron's membrane (and synaptic current, spikes) in non-persistent buffers
    that survive from one call to the next (`init_hidden=True`, or any call that passes no
    state); its tutorials reset them by `snntorch.utils.reset(net)` before each forward.
    `forward` passes these zeros under every on-chip tensor dict, so every forward noiseproof
    makes (training steps, each chip, the attack, the landscape) starts from rest, as after
    that reset, and the buffers it writes are functional_call's stand-ins: the user's own
    buffers are left as they were. Hidden state is never on the chip (`ChipSelection` does not
    see it) and never in a checkpoint (non-persistent buffers are not in the state_dict).
    """
    return {
        f"{name}.{leaf}" if name else leaf: torch.zeros_like(module._buffers[leaf])
        for name, module in model.named_modules()
        for leaf in sorted(_state_leaves(module))
        if module._buffers.get(leaf) is not None
    }


class ChipSelection(BaseModel):
    """Selection rule for the tensors that live on the chip.

    A parameter or buffer is on the chip when its module's class name is in `layers` and its
    own name is in `kinds` ('weight' also selects a recurrent layer's 'weight_ih_l0' and every
    other 'weight_*'), or when its full name matches an `include` glob (any module, e.g.
    '*.tau_mem', or '*.running_var' to put BatchNorm statistics on the chip); names matching
    `exclude` are removed. Buffers are selected only by name: by default BatchNorm statistics
    stay digital. Integer tensors (e.g. 'num_batches_tracked') and spiking neurons' hidden state
    (snntorch's 'mem', 'syn', 'spk': see `hidden_state`) are never on the chip; neuron
    parameters are, by glob ('*.beta', '*.threshold'), buffers and Parameters alike.
    Transformers: the default `layers` put every nn.Linear and Hugging Face's Conv1D (a Linear
    with a transposed weight, [in, out], used by GPT-2 for c_attn, c_proj and c_fc) on the chip,
    while nn.Embedding (token and position embeddings) and nn.LayerNorm stay digital. A weight
    tied between an embedding and a Linear head is one tensor, selected through the head under
    the name `named_parameters` gives it (the embedding's, e.g. 'transformer.wte.weight'): it
    is on the chip, and a draw reaches both uses; `exclude` it to keep it digital.
    A rule that selects nothing in a model is an error, never silently ignored: an `include`
    or `exclude` glob matching no tensor, or a `layers` class (other than the defaults) absent
    from the model or none of whose tensors is named in `kinds`.

    >>> import noiseproof as nf
    >>> model = nf.build_model({"name": "mlp", "hidden": [8]}, (4,), 3)
    >>> nf.ChipSelection().names(model)
    ['1.weight', '1.bias', '3.weight', '3.bias']
    >>> nf.ChipSelection(kinds=("weight",)).names(model)  # biases computed digitally
    ['1.weight', '3.weight']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[str, ...] = Field(DEFAULT_LAYERS, description="module class names on the chip")
    kinds: tuple[str, ...] = Field(
        ("weight", "bias"), description="tensor names in those layers ('weight' also 'weight_*')"
    )
    include: tuple[str, ...] = Field((), description="extra full-name globs, any module")
    exclude: tuple[str, ...] = Field((), description="full-name globs removed from the selection")

    def names(self, model: nn.Module) -> list[str]:
        """Canonical full names of the selected tensors of `model`, in registration order.

        Raises NoiseproofError naming the rule when a rule selects nothing (see the class).
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        canonical: dict[int, str] = {}
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            canonical.setdefault(id(tensor), name)
        selected: dict[str, None] = {}
        hits = {pattern: False for pattern in (*self.include, *self.exclude)}
        classes: dict[str, list[str]] = {}
        for module_name, module in model.named_modules(remove_duplicate=False):
            cls = type(module).__name__
            for leaf, tensor in _owned_tensors(module):
                full = f"{module_name}.{leaf}" if module_name else leaf
                names = {full, canonical.get(id(tensor), full)}
                in_layer = cls in self.layers and _kind_matches(leaf, self.kinds)
                in_layer = in_layer and leaf in module._parameters
                classes.setdefault(cls, []).extend([full] if in_layer else [])
                by_glob = False
                for pattern in hits:
                    if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                        hits[pattern] = True
                        by_glob = by_glob or pattern in self.include
                excluded = any(fnmatch.fnmatchcase(n, p) for p in self.exclude for n in names)
                if (in_layer or by_glob) and not excluded:
                    selected[canonical.get(id(tensor), full)] = None
        self._check(model, hits, classes)
        return list(selected)

    def _check(
        self, model: nn.Module, hits: dict[str, bool], classes: dict[str, list[str]]
    ) -> None:
        """One NoiseproofError for the first rule that selects nothing in `model`."""
        what = type(model).__name__
        for pattern, hit in hits.items():
            if not hit:
                key = "include" if pattern in self.include else "exclude"
                raise NoiseproofError(
                    f"chip.{key}: {pattern!r} matches no parameter or buffer of {what} "
                    f"(e.g. {', '.join(_examples(model))})"
                )
        if self.layers == DEFAULT_LAYERS:  # the default names every layer kind it may meet
            return
        present = {type(m).__name__: m for m in model.modules()}
        for layer in self.layers:
            if layer not in present:
                raise NoiseproofError(
                    f"chip.layers: {what} has no {layer!r} module "
                    f"(its classes: {', '.join(sorted(present))})"
                )
            if not classes.get(layer):
                names = [leaf for leaf, _ in _owned_tensors(present[layer])]
                raise NoiseproofError(
                    f"chip.layers: no tensor of the {layer} modules is named in chip.kinds "
                    f"{list(self.kinds)} (their tensors: {', '.join(names) or 'none'})"
                )


def _examples(model: nn.Module, n: int = 4) -> list[str]:
    """A few tensor names of `model`, for error messages."""
    names = [name for name, _ in [*model.named_parameters(), *model.named_buffers()]]
    return names[:n] + (["..."] if len(names) > n else []) or ["no tensors"]


def chip_params(model: nn.Module, selection: ChipSelection | None = None) -> dict[str, Tensor]:
    """The selected tensors themselves (not copies): gradients reach the model through them.

    Parameters come back as nn.Parameter, selected buffers as the buffer tensors. A wrapper
    module may adapt the selection to its own tensor names by a method
    `chip_selection(selection)` (e.g. to keep its own digital parts off the chip).
    """
    if selection is not None and not isinstance(selection, ChipSelection):
        raise TypeError(f"selection must be a ChipSelection, got {type(selection).__name__}")
    adapt = getattr(model, "chip_selection", None)
    selection = adapt(selection) if callable(adapt) else selection or ChipSelection()
    names = selection.names(model)
    if not names:
        raise NoiseproofError(
            f"the chip selection matches no parameter of {type(model).__name__} "
            f"(layers={list(selection.layers)}, include={list(selection.include)})"
        )
    own = {**dict(model.named_buffers()), **dict(model.named_parameters())}
    return {name: own[name] for name in names}


_OUTPUT_HOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pick_output(out: Any, key: str | int) -> Tensor:
    """The logits inside a model's output: `out[key]` of a dict, `out[index]` of a tuple or
    list, `out.<key>` of an object; a tensor is returned as it is."""
    if isinstance(out, Tensor):
        return out
    try:
        if isinstance(out, Mapping):
            return out[key]
        if isinstance(out, tuple | list):
            return out[int(key)]
        return getattr(out, str(key))
    except (KeyError, IndexError, ValueError, AttributeError):
        keys = list(out) if isinstance(out, Mapping) else f"{type(out).__name__} entries"
        raise NoiseproofError(
            f"model.output {key!r} is not in the model's output (it has {keys})"
        ) from None


def select_output(model: nn.Module, key: str | int | None) -> nn.Module:
    """Make `model` return `pick_output(out, key)` (its logits) from every call, also through
    `forward`; key None removes the selection. Returns `model`.

    For models whose forward returns a dict, a tuple or an output object: a forward hook on the
    top module (state_dict and parameters are untouched; a second call replaces the first).

    >>> import torch, noiseproof as nf
    >>> class TwoHeads(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"logits": x * 2, "aux": x}
    >>> model = nf.select_output(TwoHeads(), "logits")
    >>> model(torch.ones(1, 2))
    tensor([[2., 2.]])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if key is not None and (isinstance(key, bool) or not isinstance(key, str | int)):
        raise TypeError(f"output must be a key (str) or an index (int), got {key!r}")
    previous = _OUTPUT_HOOKS.pop(model, None)
    if previous is not None:
        previous.remove()
    if key is not None:
        _OUTPUT_HOOKS[model] = model.register_forward_hook(
            lambda _module, _args, out: pick_output(out, key)
        )
    return model


def logits_of(out: Any) -> Tensor:
    """`out` if it is a tensor; a one-line error saying how to pick the logits otherwise."""
    if isinstance(out, Tensor):
        return out
    keys = f" with keys {list(out)}" if isinstance(out, Mapping) else ""
    raise NoiseproofError(
        f"the model returned a {type(out).__name__}{keys}, not a logits tensor: name the entry "
        "holding the logits with 'model.output' in the config or "
        "noiseproof.select_output(model, key) in Python"
    )


def forward(model: nn.Module, params: Mapping[str, Tensor] | None, x: Inputs) -> Tensor:
    """The logits of `model` on inputs `x` (a tensor, or a tuple/dict of tensors passed as
    positional/keyword arguments), the tensors in `params` standing in for those names.

    Spiking models start every forward from rest: snntorch neurons' hidden state is passed
    as fresh zeros (`hidden_state`), so the user's module keeps its own state buffers."""
    args, kwargs = call_arguments(x)
    state = hidden_state(model)
    if params is None and not state:
        return logits_of(model(*args, **kwargs))
    stand_ins = {**(params or {}), **state}
    return logits_of(torch.func.functional_call(model, stand_ins, args, kwargs))


def scratch_buffers(model: nn.Module) -> Params:
    """Copies of the model's buffers (BatchNorm running statistics...), for extra forwards.

    Passed to a functional forward under the on-chip tensors (`{**scratch_buffers(m), **params}`,
    so a buffer on the chip keeps its perturbed value), they take the in-place updates a
    training-mode forward makes: an extra forward (a clean branch, an attack probe) leaves the
    model's own statistics as the main forward alone would. Hidden state is left out: `forward`
    passes its own fresh one.
    """
    state = hidden_state(model)
    return {name: b.clone() for name, b in model.named_buffers() if name not in state}


def split_buffers(model: nn.Module, params: Mapping[str, Tensor]) -> tuple[Params, Params]:
    """(the parameters in `params`, the buffers in `params`), by the model's own names.

    Gradient-based attacks move parameters only: PyTorch cannot differentiate through a
    buffer such as BatchNorm's running statistics, which keep their given values.
    """
    buffers = {name for name, _ in model.named_buffers()}
    own = {n: t for n, t in params.items() if n not in buffers}
    return own, {n: t for n, t in params.items() if n in buffers}


def detached(params: Mapping[str, Tensor]) -> Params:
    """A dict of the same tensors, detached from autograd (no copy of the data)."""
    return {name: tensor.detach() for name, tensor in params.items()}


def straight_through(clean: Mapping[str, Tensor], perturbed: Mapping[str, Tensor]) -> Params:
    """clean + stopgrad(perturbed - clean): perturbed values forward, clean gradients backward."""
    return {name: clean[name] + (perturbed[name] - clean[name]).detach() for name in clean}
