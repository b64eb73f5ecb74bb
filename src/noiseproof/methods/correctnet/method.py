"""CorrectNet as one training method, so `noiseproof compare` can run both of its stages.

Stage 1 is any method (`base`, default `lipschitz`: error suppression); after the trainer
returns, stage 2 places compensation (by `strategy`, or on the given `layers`) and trains it
under the noise model at `level` with every original weight frozen (Eldebiky et al. 2023; see
noiseproof.methods.correctnet.training). The model a grid then evaluates is the `Compensated`
wrapper; its compensation stays digital in every evaluation (Compensated.chip_selection), and
`restore` rebuilds it from a checkpoint's record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, PlainSerializer
from torch import Tensor, nn

from noiseproof.chip import ChipSelection
from noiseproof.data.base import Dataset
from noiseproof.data.streaming import StreamedSplit
from noiseproof.devices import model_device
from noiseproof.errors import NoiseproofError
from noiseproof.methods.base import Method, OptionalNoise, StepContext, methods
from noiseproof.methods.correctnet.compensation import Compensated
from noiseproof.methods.correctnet.cost import overhead
from noiseproof.methods.correctnet.layers import candidate_layers, check_layers
from noiseproof.methods.correctnet.pipeline import fit_compensation
from noiseproof.methods.correctnet.search import PlacementEvaluator, search
from noiseproof.methods.correctnet.settings import CorrectConfig
from noiseproof.noise.base import NoiseModel
from noiseproof.tasks import AUTO, create_task

NestedMethod = Annotated[
    Method, BeforeValidator(methods.create), PlainSerializer(lambda method: method.spec())
]
"""A method given by name or mapping inside another method's settings, dumped as its spec."""


@methods.register("correctnet")
class CorrectNet(Method):
    """CorrectNet (Eldebiky et al., DATE 2023): `base` training, then learned compensation.

    Training steps are those of `base` (loss = its terms). After training, compensation
    y_l -> y_l + c_l(y_l) (noiseproof.methods.correctnet.compensation) is placed on the layers that
    maximise reward = accuracy under noise / noise-free accuracy - cost_weight * overhead on the
    validation split (search `strategy`), then trained under fresh draws of the noise model at
    `level` with the original weights frozen.
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    precision_note: ClassVar[str] = "its inner gradients would underflow in fp16 unscaled"
    task_names: ClassVar[tuple[str, ...] | None] = ("classification",)
    task_note: ClassVar[str] = (
        "its placement search scores accuracy under noise / noise-free accuracy, a classifier's "
        "ratio, and its compensation follows a classifier's feature maps"
    )

    base: NestedMethod = Field(
        "lipschitz", validate_default=True, description="stage-1 training method"
    )
    noise: OptionalNoise = Field(
        None, description="noise model compensation is trained for (default: the experiment's)"
    )
    level: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="its level (default: the model's own)"
    )
    strategy: Literal["rl", "greedy", "exhaustive"] = Field(
        "rl", description="placement search whose choice is deployed"
    )
    layers: tuple[str, ...] | None = Field(
        None, description="compensate exactly these layers instead of searching"
    )
    correct: CorrectConfig = Field(
        CorrectConfig(), description="compensation, its training and the placement search"
    )

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The base method's terms (stage 1)."""
        return self.base.terms(ctx, x, y)

    @contextlib.contextmanager
    def attached(self, ctx: StepContext) -> Iterator[None]:
        """Whatever the base method installs."""
        with self.base.attached(ctx):
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
        """Stage 2: place and train compensation; (the Compensated model, what was done:
        strategy, layers, noise, overhead in parameters and MACs as % of the model's, training).
        """
        x = None if isinstance(data.x_train, StreamedSplit) else data.x_train  # not streamed
        self.check_task(create_task(AUTO, y=data.y_train, x=x, announce=False))
        chosen = self.noise or noise
        if chosen is None:
            raise NoiseproofError("method 'correctnet' needs a noise model (set 'noise')")
        chosen = chosen if self.level is None else chosen.with_level(self.level)
        info: dict[str, Any] = {"strategy": "given" if self.layers is not None else self.strategy}
        if self.layers is not None:
            check_layers(model, list(self.layers))
            layers = list(self.layers)
        else:
            placement = self.correct.placement
            candidates = list(placement.candidates) or candidate_layers(model, selection)
            evaluator = PlacementEvaluator(
                model, data, chosen, self.correct, candidates, selection=selection, seed=seed
            )
            found = search(
                self.strategy, evaluator, len(candidates), placement, seed, model_device(model)
            )
            layers = found.layers(candidates)
            info |= {"val_reward": found.reward, "evaluations": found.evaluations}
        wrapped, fit = fit_compensation(
            model, layers, data, chosen, self.correct, selection=selection, seed=seed
        )
        cost = overhead(wrapped, data.input_shape)
        log(
            f"correctnet: compensation after {layers or 'no layer'} ({info['strategy']}), "
            f"{cost['params_percent']:.2f}% extra parameters, {cost['macs_percent']:.2f}% MACs"
        )
        return wrapped, {
            **info,
            "layers": layers,
            "noise": chosen.spec(),
            "overhead": cost,
            "training": fit,
        }

    def restore(self, model: nn.Module, record: dict[str, Any], *, input_shape: Any) -> nn.Module:
        """The Compensated wrapper `finish` deployed: compensation after the record's 'layers',
        shaped by this method's `correct.compensation` (weights come from the checkpoint)."""
        layers = record.get("layers")
        if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
            raise NoiseproofError("checkpoint: the correctnet record holds no list of 'layers'")
        return Compensated(model, layers, input_shape, self.correct.compensation)
