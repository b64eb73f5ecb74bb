"""What one run is set to, decided once and passed down: `RunSettings`.

A training, a Monte Carlo evaluation and a whole `compare` share a few settings at every
level: the device (resolved once: 'auto' is CUDA when torch sees it, else the CPU; under
torchrun with CUDA this process's own GPU, cuda:LOCAL_RANK), the evaluation precision, which
tensors are on the chip, the analog forward effects, the evaluation batch size and the task.
They are built once per run and handed down as one value, so no level turns a device string
into a device or picks the per-rank GPU again:

    settings = RunSettings.from_config(config)        # a compare run (ExperimentConfig)
    settings = RunSettings.build(device="cuda", eval_precision="bf16", selection=chips)

`nf.train` and `nf.run_transfers` take `settings=` and keep their friendly keyword arguments
(train: device=, selection=, analog=, task=; run_transfers: selection=, batch_size=,
precision=, analog=, task=), which build one with `RunSettings.build`; a keyword given next to
`settings=` replaces that field. `nf.compare(settings=...)` reads it as the config keys it
stands for (`config_keys`), which its keyword arguments may give too.

Training precision is not a setting here: it is a hyperparameter of the training
(`TrainConfig.precision`), recorded with its checkpoint and part of what a resumed run
checks, so it has one home, the training config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from noiseproof.analog import AnalogForward
from noiseproof.chip import ChipSelection
from noiseproof.devices import rank_device, resolve_device
from noiseproof.tasks import AUTO, Task, create_task

if TYPE_CHECKING:
    from noiseproof.config import ExperimentConfig


@dataclass(frozen=True)
class RunSettings:
    """The settings of one run (see the module docstring).

    device: where training runs and the data lives, already resolved and, under torchrun,
    this process's GPU (None: where the model already is; Monte Carlo always runs where the
    model is). eval_precision: autocast of evaluations ('fp32', 'bf16', 'fp16'). selection:
    the on-chip tensors (noiseproof.chip). analog: DAC/ADC/output noise/IR drop of the
    on-chip layers (noiseproof.analog), or None. eval_batch_size: examples per evaluation
    forward. task: what models are trained and measured for (None: inferred from the targets).

    >>> import noiseproof as nf
    >>> settings = nf.RunSettings.build(device="cpu", eval_batch_size=500, task="regression")
    >>> settings.device, settings.eval_batch_size, settings.task.registered_name
    (device(type='cpu'), 500, 'regression')
    >>> settings.replace(eval_precision="bf16").eval_precision
    'bf16'
    """

    device: torch.device | None = None
    eval_precision: str = "fp32"
    selection: ChipSelection = field(default_factory=ChipSelection)
    analog: AnalogForward | None = None
    eval_batch_size: int = 2000
    task: Task | None = None

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> RunSettings:
        """The settings of a `compare` run: its device (resolved here, once per process),
        eval_precision, chip, forward, eval_batch_size and task (None for 'auto': the run
        infers it once its data is loaded)."""
        return cls(
            device=rank_device(resolve_device(config.device, "device")),
            eval_precision=config.eval_precision,
            selection=config.chip,
            analog=config.forward,
            eval_batch_size=config.eval_batch_size,
            task=config.task if isinstance(config.task, Task) else None,
        )

    @classmethod
    def build(cls, settings: RunSettings | None = None, **fields: Any) -> RunSettings:
        """`settings` (default: RunSettings()) with `fields` replaced, in their friendly forms:
        device as 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device (resolved, then
        the per-rank GPU under torchrun), selection None for the default ChipSelection, task as
        a Task, a name or a mapping (None or 'auto': inferred from the targets). TypeError naming
        an unknown field; the consumers check the values (noiseproof.evaluation.arguments)."""
        if settings is not None and not isinstance(settings, RunSettings):
            raise TypeError(f"settings must be a RunSettings, got {type(settings).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        if fields.get("device") is not None:
            fields["device"] = rank_device(resolve_device(fields["device"], "device"))
        if "selection" in fields and fields["selection"] is None:
            fields["selection"] = ChipSelection()
        if "task" in fields:
            fields["task"] = given_task(fields["task"])
        return dataclasses.replace(settings or cls(), **fields)

    def config_keys(self) -> dict[str, Any]:
        """The experiment config keys these settings stand for (what `from_config` reads):
        device, eval_precision, chip, forward, eval_batch_size and task (a device of None,
        where the model is, is left out: the config's default, 'auto', applies)."""
        keys = {
            "eval_precision": self.eval_precision,
            "chip": self.selection,
            "forward": self.analog,
            "eval_batch_size": self.eval_batch_size,
            "task": AUTO if self.task is None else self.task,
        }
        return keys if self.device is None else {"device": str(self.device), **keys}

    def replace(self, **fields: Any) -> RunSettings:
        """A copy with `fields` replaced as they are (already resolved values)."""
        return dataclasses.replace(self, **fields)


def given_task(spec: Any) -> Task | None:
    """The task a name, mapping or Task names; None for None or 'auto' (inferred later from
    the targets, where they are known)."""
    if spec is None or (isinstance(spec, str) and spec == AUTO):
        return None
    return create_task(spec, announce=False)


def from_options(
    settings: RunSettings | None, options: Mapping[str, Any], names: Mapping[str, str]
) -> RunSettings:
    """The settings a function's friendly keyword arguments `options` build, over `settings`
    (`RunSettings.build`); names: each accepted keyword -> the field it sets (e.g.
    run_transfers' precision -> eval_precision). TypeError naming any other keyword."""
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    return RunSettings.build(settings, **{names[key]: value for key, value in options.items()})


EVALUATION_NAMES = {
    "selection": "selection",
    "batch_size": "eval_batch_size",
    "precision": "eval_precision",
    "analog": "analog",
    "task": "task",
}
"""An evaluation's friendly keyword arguments (run_transfers, evaluate_chips) -> the field
each sets."""
