"""Training-method interface: an objective returning named loss terms; the trainer owns the loop."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from torch import Tensor, nn

from noiseproof.errors import NoiseproofError
from noiseproof.noise.base import NoiseModel, noise_models
from noiseproof.registry import Registry
from noiseproof.tasks import Task
from noiseproof.training.context import StepContext

if TYPE_CHECKING:
    from noiseproof.chip import ChipSelection
    from noiseproof.data.base import Dataset


def _noise_or_none(value: Any) -> NoiseModel | None:
    return None if value is None else noise_models.create(value)


def _noise_spec(value: NoiseModel | None) -> dict | None:
    return None if value is None else value.spec()


OptionalNoise = Annotated[
    NoiseModel | None, BeforeValidator(_noise_or_none), PlainSerializer(_noise_spec)
]
"""A method's own noise model field: built from a name or mapping, dumped as its spec."""


class Method(BaseModel):
    """Base of every training method: pydantic fields are its hyperparameters.

    >>> import noiseproof as nf
    >>> method = nf.create_method({"name": "noise_injection", "level": 0.1})
    >>> isinstance(method, nf.Method), method.level
    (True, 0.1)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_name: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "fp16")
    """The `train.precision` values this method can train in (checked with the config)."""
    precision_note: ClassVar[str] = ""
    """Why a precision is missing from `precisions` (shown in the refusal)."""
    task_names: ClassVar[tuple[str, ...] | None] = None
    """The tasks this method can train (None: every task, a plugin's included)."""
    task_note: ClassVar[str] = ""
    """Why a task is missing from `task_names` (shown in the refusal)."""

    def check_task(self, task: Task) -> None:
        """NoiseproofError (one line) unless this method can train a model for `task`."""
        if self.task_names is not None and task.registered_name not in self.task_names:
            why = f" ({self.task_note})" if self.task_note else ""
            raise NoiseproofError(
                f"method '{self.registered_name}' cannot train task "
                f"'{task.registered_name}'{why}: it trains {', '.join(self.task_names)}"
            )

    def check_precision(self, precision: str) -> None:
        """ValueError (one line) unless this method can train in `precision`."""
        if precision not in self.precisions:
            why = f" ({self.precision_note})" if self.precision_note else ""
            raise ValueError(
                f"method '{self.registered_name}' cannot train in train.precision {precision!r}"
                f"{why}: use {' or '.join(self.precisions)}"
            )

    @abstractmethod
    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Named, already weighted loss terms for one batch; the trainer sums and logs them."""

    @contextlib.contextmanager
    def attached(self, ctx: StepContext) -> Iterator[None]:
        """Install whatever the method needs on the model for training (hooks), removed after."""
        yield

    def finish(
        self,
        model: nn.Module,
        data: Dataset,
        noise: NoiseModel | None,
        *,
        selection: ChipSelection,
        seed: int,
        log: Callable[[str], None],
    ) -> tuple[nn.Module, dict[str, Any]]:
        """After training: the model to deploy and a record of what was done (default: the
        trained model as it is, an empty record). `correctnet` adds its compensation here."""
        return model, {}

    def restore(self, model: nn.Module, record: dict[str, Any], *, input_shape: Any) -> nn.Module:
        """Rebuild what `finish` deployed around a freshly built `model` (weights not loaded yet)
        from the record `finish` returned and the per-example `input_shape`, so a checkpoint's
        state dict fits it (default: the model unchanged). `correctnet` wraps it again in its
        compensation."""
        return model

    def spec(self) -> dict:
        return {"name": self.registered_name, **self.model_dump(mode="json")}


methods: Registry[Method] = Registry("method")
