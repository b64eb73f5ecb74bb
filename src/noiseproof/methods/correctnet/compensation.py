"""Error compensation: small digital modules that correct a noisy layer's output (CorrectNet).

Eldebiky et al. 2023 add small extra layers, computed digitally (noise-free), after selected
layers to correct the feature maps that weight variation has corrupted, and train them under
variation with the original weights frozen. Their exact architecture is not available to us;
ours (documented choices, all options of `CompensationSpec`):

- after a convolution with C output channels: correction = U(act(D(K(y)))) where K is a
  depthwise k x k convolution (per channel), D a 1x1 convolution C -> r, U a 1x1 convolution
  r -> C (a low-rank channel mixer);
- after a Linear layer with F outputs: correction = U(act(D(y))), D: F -> r, U: r -> F (low rank);
- optionally (default on) a per-channel gain and offset a * y + b is added to the correction:
  log-normal variation scales every weight by exp(sigma^2/2) on average, a drift the low-rank
  map cannot undo on all channels;
- the layer's output becomes y + correction; U, a and b start at zero, so an untrained
  compensation leaves the network's outputs exactly unchanged.

`Compensated` wraps the user's model without editing it: during its forward a temporary
forward hook on each chosen layer adds the correction, and the hooks are removed afterwards.
Its parameters are 'base.<name>' (the original, on the chip) and 'comp.<key>.*' (digital), so
`COMPENSATION_EXCLUDE` keeps the compensation off the chip in a ChipSelection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from noiseproof.chip import ChipSelection, hidden_state
from noiseproof.devices import model_device
from noiseproof.errors import NoiseproofError
from noiseproof.inputs import Inputs, call_arguments, leaves, rebuild, zeros
from noiseproof.modes import evaluating
from noiseproof.seeding import derive_seed

COMPENSATION_EXCLUDE = "comp.*"
_CONVS: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_ACTS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "none": nn.Identity}


class CompensationSpec(BaseModel):
    """Shape of the compensation modules (our choices; the paper's are not published)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(8, ge=1, description="hidden width r of the low-rank correction (<= width)")
    kernel_size: int = Field(
        3, ge=1, description="depthwise kernel before a conv correction (1: per-channel scale)"
    )
    activation: Literal["relu", "tanh", "none"] = Field(
        "relu", description="between the two maps ('none': a purely linear correction)"
    )
    affine: bool = Field(
        True, description="add a per-channel gain and offset a*y + b (undoes systematic drift)"
    )


def key_of(layer: str) -> str:
    """ModuleDict key of the compensation for `layer` ('features.0' -> 'features_0')."""
    return layer.replace(".", "_")


class ChannelAffine(nn.Module):
    """a * y + b with one (a, b) per channel (a depthwise 1x1 convolution), both starting at 0.

    shape: (C, 1, ..., 1) for a convolution output, (F,) for a Linear output.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, y: Tensor) -> Tensor:
        return y * self.weight + self.bias


class Compensator(nn.Module):
    """The correction for one layer's output: U(act(D(K(y)))) [+ a * y + b], U, a, b start at 0.

    For a convolution output [B, C, *spatial] (dims = number of spatial dims): K depthwise
    k x k, D and U 1x1 convolutions. For a Linear output [..., F] (dims = 0): K = identity,
    D and U Linear maps. r = min(rank, width).
    """

    def __init__(self, width: int, dims: int, spec: CompensationSpec) -> None:
        super().__init__()
        rank = min(spec.rank, width)
        if dims == 0:
            self.mix: nn.Module = nn.Identity()
            self.down: nn.Module = nn.Linear(width, rank, bias=False)
            self.up: nn.Module = nn.Linear(rank, width)
        else:
            conv = _CONVS[dims]
            k = spec.kernel_size
            self.mix = conv(width, width, k, padding=k // 2, groups=width, bias=False)
            # start as the identity per channel
            nn.init.dirac_(cast(Tensor, self.mix.weight), groups=width)
            self.down = conv(width, rank, 1, bias=False)
            self.up = conv(rank, width, 1)
        self.act = _ACTS[spec.activation]()
        self.affine = ChannelAffine((width,) + (1,) * dims) if spec.affine else None
        nn.init.zeros_(cast(Tensor, self.up.weight))  # a Linear's or Conv's (self.up: nn.Module)
        nn.init.zeros_(cast(Tensor, self.up.bias))

    def forward(self, y: Tensor) -> Tensor:
        """The correction to add to the layer output `y` (same shape)."""
        low_rank = self.up(self.act(self.down(self.mix(y))))
        return low_rank if self.affine is None else low_rank + self.affine(y)


def probe_forward(model: nn.Module, input_shape: Any, handles: Sequence) -> None:
    """One no-grad forward of a zero example (noiseproof.inputs.zeros: one tensor, or several
    inputs) in eval mode for the hooks in `handles`, which are removed afterwards; every
    submodule's train/eval mode is restored. A spiking model starts from rest and keeps its
    own hidden-state buffers (noiseproof.chip.hidden_state). A model that embeds token ids
    (torch refuses float indices) is probed with token id 0 instead of 0.0."""
    example = zeros(input_shape, model_device(model))
    try:
        with torch.no_grad(), evaluating(model):
            try:
                run_probe(model, example)
            except RuntimeError as error:
                if "indices" not in str(error):
                    raise
                run_probe(model, rebuild(example, [t.long() for t in leaves(example)]))
    finally:
        for handle in handles:
            handle.remove()


def run_probe(model: nn.Module, example: Any) -> None:
    """The forward of `probe_forward` on one example (hidden state from rest)."""
    args, kwargs = call_arguments(example)
    torch.func.functional_call(model, hidden_state(model), args, kwargs)


def output_shapes(
    model: nn.Module, layers: Sequence[str], input_shape: Any
) -> dict[str, tuple[int, ...]]:
    """Per-example output shape of each named layer, from one no-grad forward in eval mode."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules or name == ""]
    if missing:
        raise NoiseproofError(f"compensation: no layer named {missing[0]!r} in the model")
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            shapes.setdefault(name, tuple(out.shape[1:]))

        return hook

    handles = [modules[name].register_forward_hook(record(name)) for name in layers]
    probe_forward(model, input_shape, handles)
    return shapes


class Compensated(nn.Module):
    """The user's model plus compensation after `layers`, the model itself left unedited.

    base: the original module (parameters 'base.*', on the chip); comp: ModuleDict of
    Compensators (parameters 'comp.*', digital). forward(x) = base(x) with each chosen layer's
    output y replaced by y + comp(y), through hooks that exist only during the call, so
    torch.func.functional_call with noisy 'base.*' tensors gives the compensated noisy chip.
    """

    def __init__(
        self,
        base: nn.Module,
        layers: Sequence[str],
        input_shape: Any,
        spec: CompensationSpec | None = None,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.spec = spec or CompensationSpec()
        self.base = base
        self.layers = list(dict.fromkeys(layers))
        self.comp = nn.ModuleDict()
        self.record: dict[str, list[Tensor]] | None = None  # a dict: keep corrected outputs
        modules = dict(base.named_modules())
        shapes = output_shapes(base, self.layers, input_shape)
        for name in self.layers:
            module = modules[name]
            if isinstance(module, nn.Linear):
                width, dims = shapes[name][-1], 0
            elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
                width, dims = shapes[name][0], len(shapes[name]) - 1
            else:
                raise NoiseproofError(
                    f"compensation after '{name}' ({type(module).__name__}): "
                    "only Linear and Conv1d/2d/3d layers are supported"
                )
            with torch.random.fork_rng(devices=[]):  # initial weights depend on (seed, layer) only
                torch.manual_seed(derive_seed(seed, "compensation-init", name))
                self.comp[key_of(name)] = Compensator(width, dims, self.spec)
        # built on the CPU under the seed (the same start on every device), moved once to the
        # base model's device: the compensation lives where the model does
        self.comp.to(model_device(base))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """base(*args, **kwargs) with y -> y + comp(y) after every chosen layer."""
        modules = dict(self.base.named_modules())
        handles = [
            modules[name].register_forward_hook(self._adder(key_of(name))) for name in self.layers
        ]
        try:
            return self.base(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()

    def _adder(self, key: str) -> Callable[[nn.Module, tuple, Tensor], Tensor]:
        def add(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
            corrected = out + self.comp[key](out)
            if self.record is not None:  # every call: a spiking layer's every time step
                self.record.setdefault(key, []).append(corrected)
            return corrected

        return add

    def train(self, mode: bool = True) -> Compensated:
        """Only the compensation switches: the base is frozen and stays in eval mode (BatchNorm
        keeps and uses its running statistics, dropout stays off), also when a trainer calls
        `train()` at the start of every epoch."""
        self.training = mode
        self.comp.train(mode)
        self.base.eval()
        return self

    def chip_selection(self, selection: ChipSelection | None) -> ChipSelection:
        """The on-chip parameters of this wrapper: `compensated_selection(selection)` ('comp.*'
        excluded only when there is compensation: a rule that matches nothing is an error)."""
        return compensated_selection(selection, digital=bool(self.layers))

    def compensation_parameters(self) -> list[nn.Parameter]:
        """The digital, trainable parameters (the only ones compensation training updates)."""
        return list(self.comp.parameters())


def clean_outputs(base: nn.Module, layers: Sequence[str], x: Inputs) -> dict[str, Tensor]:
    """Outputs of `layers` (by compensation key) in the noise-free base model, without grad:
    each layer's outputs of every call stacked on a first axis (a layer of a spiking network
    is called at every time step). A spiking model starts from rest and keeps its own
    hidden-state buffers (noiseproof.chip.hidden_state), as every forward noiseproof makes."""
    modules = dict(base.named_modules())
    found: dict[str, list[Tensor]] = {}

    def keep(key: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            found.setdefault(key, []).append(out.detach())

        return hook

    handles = [modules[name].register_forward_hook(keep(key_of(name))) for name in layers]
    try:
        args, kwargs = call_arguments(x)
        with torch.no_grad():
            torch.func.functional_call(base, hidden_state(base), args, kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return {key: torch.stack(outputs) for key, outputs in found.items()}


def compensated_selection(
    selection: ChipSelection | None, *, digital: bool = True
) -> ChipSelection:
    """`selection` for a Compensated model: original parameters on chip, 'comp.*' excluded
    (`digital`: the wrapper holds compensation parameters).

    Include and exclude globs written for the bare model ('0.weight') are re-rooted under
    'base.'. Idempotent: a selection that already excludes 'comp.*' is returned as it is.
    """
    selection = selection or ChipSelection()
    if COMPENSATION_EXCLUDE in selection.exclude:
        return selection  # already adapted
    digital_part = (COMPENSATION_EXCLUDE,) if digital else ()
    return selection.model_copy(
        update={
            "include": tuple(f"base.{pat}" for pat in selection.include),
            "exclude": (*(f"base.{pat}" for pat in selection.exclude), *digital_part),
        }
    )
