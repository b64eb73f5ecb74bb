"""What a training cost: wall time, steps, examples, model forwards and FLOPs, on its device.

FLOPs come from torch's own counter (`torch.utils.flop_counter.FlopCounterMode`: the matmul,
convolution and attention kernels of the forward and the backward, every extra pass a method
makes included) over the first training step, scaled by the examples of the whole training: a
step's FLOPs are linear in its batch for these layers, and counting every step would slow the
training by the counter's dispatch. Forwards are the model forwards the method made through
`StepContext.forward` (the attack's, the noisy and the clean branch's), counted every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class CostMeter:
    """Counts one training's steps, examples and forwards, and the FLOPs of its first step."""

    steps: int = 0
    examples: int = 0
    forwards: int = 0
    first_step_flops: int | None = None
    first_step_examples: int = 0

    @contextlib.contextmanager
    def step(self, examples: int) -> Iterator[None]:
        """Around one whole step (the method's terms, backward, optimiser step): the first one
        under torch's FLOP counter."""
        counting = self.first_step_flops is None
        if counting:
            from torch.utils.flop_counter import FlopCounterMode  # loaded on the first step only

            counter = FlopCounterMode(display=False)
            with counter:
                yield
            self.first_step_flops = int(counter.get_total_flops())
            self.first_step_examples = examples
        else:
            yield
        self.steps += 1
        self.examples += examples

    def record(self, seconds: float, device: torch.device) -> dict[str, float | int | str]:
        """{'seconds', 'steps', 'examples', 'forwards', 'flops', 'flops_per_example',
        'device'}: flops = first step's FLOPs x examples / the first step's examples."""
        per_example = (
            self.first_step_flops / self.first_step_examples
            if self.first_step_flops is not None and self.first_step_examples
            else 0.0
        )
        return {
            "seconds": seconds,
            "steps": self.steps,
            "examples": self.examples,
            "forwards": self.forwards,
            "flops": per_example * self.examples,
            "flops_per_example": per_example,
            "device": str(device),
        }
