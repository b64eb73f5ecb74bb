"""What a training cost: wall time, steps, examples, model forwards and FLOPs, on its device.

FLOPs come from torch's own counter (`torch.utils.flop_counter.FlopCounterMode`, with the CPU
attention kernels it misses: noiseproof.flops; the matmul, convolution and attention kernels of
the forward and the backward, every extra pass a method
makes included) over the first training step, scaled by the examples of the whole training: a
step's FLOPs are linear in its batch for these layers, and counting every step would slow the
training by the counter's dispatch. Forwards are the model forwards the method made through
`StepContext.forward` (the attack's, the noisy and the clean branch's), counted every step.
Seconds are the training's wall time with the counted step's own time replaced by the mean of
the other steps' (the counter's dispatch, and its one-time import, are not the method's cost).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from noiseproof.flops import flop_counter


@dataclass
class CostMeter:
    """Counts one training's steps, examples and forwards, and the FLOPs of its first step."""

    steps: int = 0
    examples: int = 0
    forwards: int = 0
    first_step_flops: int | None = None
    first_step_examples: int = 0
    first_step_seconds: float = 0.0
    other_steps_seconds: float = 0.0

    @contextlib.contextmanager
    def step(self, examples: int) -> Iterator[None]:
        """Around one whole step (the method's terms, backward, optimiser step): the first one
        under torch's FLOP counter."""
        started = time.perf_counter()
        if self.first_step_flops is None:
            counter = flop_counter()
            with counter:
                yield
            self.first_step_flops = int(counter.get_total_flops())
            self.first_step_examples = examples
            self.first_step_seconds = time.perf_counter() - started
        else:
            yield
            self.other_steps_seconds += time.perf_counter() - started
        self.steps += 1
        self.examples += examples

    def record(self, seconds: float, device: torch.device) -> dict[str, float | int | str]:
        """{'seconds', 'steps', 'examples', 'forwards', 'flops', 'flops_per_example',
        'device'}: flops = first step's FLOPs x examples / the first step's examples; seconds:
        the training's wall `seconds`, its counted step at the other steps' mean time."""
        per_example = (
            self.first_step_flops / self.first_step_examples
            if self.first_step_flops is not None and self.first_step_examples
            else 0.0
        )
        if self.steps > 1:  # the counted step at the other steps' pace
            typical = self.other_steps_seconds / (self.steps - 1)
            seconds = seconds - self.first_step_seconds + typical
        return {
            "seconds": seconds,
            "steps": self.steps,
            "examples": self.examples,
            "forwards": self.forwards,
            "flops": per_example * self.examples,
            "flops_per_example": per_example,
            "device": str(device),
        }
