"""Adversarial parameter attack training (Buechel, Faber & Muir, ICLR 2022).

Per batch the method searches, by projected sign-gradient ascent, the parameters theta* inside
the relative l-infinity box |theta* - theta| <= zeta_attack * |theta| whose outputs diverge most
from the clean network's, and adds that divergence to the task loss:

    theta*_0     = theta + initial_std * |theta| * N(0, 1)
    theta*_{k+1} = clip_box(theta*_k
                            + zeta_attack * |theta| / n_steps * sign(grad D(theta, theta*_k)))
    loss         = CE(f(x; theta), y) + beta_rob * D(f(x; theta), f(x; theta*_n))

with D = KL(softmax f(theta) || softmax f(theta*)) by default (paper, eq. 2-3).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from noiseproof.ascent import sign_ascent
from noiseproof.bounds import attack_split, relative_box_point
from noiseproof.chip import Params, scratch_buffers
from noiseproof.methods.base import Method, StepContext, methods
from noiseproof.noise.base import standard_normal
from noiseproof.physical import limit
from noiseproof.tasks import Task, tasks

Divergence = Literal["kl", "mse"]


def output_divergence(
    reference: Tensor,
    attacked: Tensor,
    kind: Divergence = "kl",
    task: Task | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """Distance between two networks' outputs on the same batch (Buechel et al. 2022, eq. 3).

    kind="kl": the task's divergence (noiseproof.tasks; None: classification), for a classifier
    KL(softmax(reference) || softmax(attacked)) averaged over the batch, the paper's robustness
    loss (a single binary logit z gives the probabilities sigmoid(-z), sigmoid(z)); per token
    for a sequence task (over the tokens `y` counts), the MSE of the outputs for regression.
    kind="mse": mean squared difference of the logits (our option; the paper's code offers an
    MSE robustness loss for regression-like outputs).
    """
    if kind == "mse":
        return F.mse_loss(attacked, reference)
    # y None is for the tasks that do not read it (classification, regression); the method
    # passes the batch's targets
    return (task or tasks.create("classification")).divergence(attacked, reference, y)  # type: ignore[arg-type]


@methods.register("adversarial")
class Adversarial(Method):
    """Adversarial parameter attack training (Buechel et al. 2022): CE + beta * KL(theta||theta*).

    theta* is found per batch by n_steps of projected sign-gradient ascent on the divergence
    inside the relative box |theta* - theta| <= zeta_attack * |theta| (see module docstring).
    Defaults are the paper's: n_steps 10, zeta_attack 0.1, beta_rob 0.25, initial_std 0.001.
    The robustness gradient flows into theta through both f(theta) and theta* (paper);
    `detach_attack=True` stops it at theta* (our option, a departure from the paper).
    `noisy_forward_std > 0` computes the task term through theta + stopgrad(s * |theta| * N(0,1))
    (the paper's forward noise + adversarial combination, e.g. s = 0.3 with beta_rob = 0.1).
    beta_rob = 0 skips the attack: the step is then exactly standard (or forward-noise) training.
    On-chip neuron parameters (spiking models) are attacked with the weights, each point kept in
    their physical range (`attack_split`, noiseproof.physical).
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    precision_note: ClassVar[str] = "its inner gradients would underflow in fp16 unscaled"

    n_steps: int = Field(10, ge=1, le=1000, description="sign-ascent steps of the attack")
    zeta_attack: float = Field(
        0.1, gt=0.0, le=10.0, allow_inf_nan=False, description="relative l-inf attack budget"
    )
    beta_rob: float = Field(
        0.25, ge=0.0, allow_inf_nan=False, description="weight of the robustness term"
    )
    initial_std: float = Field(
        0.001, ge=0.0, allow_inf_nan=False, description="relative std of the attack's start"
    )
    divergence: Divergence = Field("kl", description="robustness loss: 'kl' (paper) or 'mse'")
    detach_attack: bool = Field(
        False, description="stop gradients at theta* (departure from the paper)"
    )
    noisy_forward_std: float = Field(
        0.0, ge=0.0, allow_inf_nan=False, description="relative forward noise on the task term"
    )

    def terms(self, ctx: StepContext, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """{'task': CE of the (optionally noisy) forward, 'robust': beta_rob * D(theta, theta*)}."""
        params = ctx.params
        clean_logits = ctx.forward(params, x)
        if self.noisy_forward_std > 0:
            noisy = {
                name: limit(
                    name,
                    t
                    + (
                        t.abs() * self.noisy_forward_std * standard_normal(t, ctx.generator)
                    ).detach(),
                )
                for name, t in params.items()
            }
            task = ctx.task.loss(ctx.forward(noisy, x), y)
        else:
            task = ctx.task.loss(clean_logits, y)
        if self.beta_rob == 0:
            return {"task": task}
        reference = clean_logits.detach()
        params, on_chip_buffers = attack_split(ctx.model, params)
        buffers = {**scratch_buffers(ctx.model), **on_chip_buffers}

        def objective(point: Params) -> Tensor:
            attacked = ctx.forward(point, x)
            return output_divergence(reference, attacked, self.divergence, ctx.task, y)

        offset = sign_ascent(
            params,
            objective,
            zeta=self.zeta_attack,
            n_steps=self.n_steps,
            initial_std=self.initial_std,
            generator=ctx.generator,
            buffers=buffers,
        )
        attacked = relative_box_point(params, offset, detach_clean=self.detach_attack)
        attacked_logits = ctx.forward({**buffers, **attacked}, x)
        robust = output_divergence(clean_logits, attacked_logits, self.divergence, ctx.task, y)
        return {"task": task, "robust": self.beta_rob * robust}
