"""Training hyperparameters shared by every method."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Optimiser, schedule and loop settings (the method decides the loss, not these).

    >>> import noiseproof as nf
    >>> config = nf.TrainConfig(epochs=3, lr=0.01)
    >>> config.optimizer, config.schedule, config.batch_size
    ('adam', 'cosine', 128)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1, strict=True, description="passes over the training split")
    batch_size: int = Field(128, ge=1, strict=True, description="examples per step")
    steps_per_epoch: int | None = Field(
        None,
        ge=1,
        description="batches per epoch, cut from fresh shuffles (default: one pass over the "
        "training split); validation and the schedule follow epochs",
    )
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam or sgd (with momentum)")
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="initial learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, description="L2 weight decay")
    schedule: Literal["constant", "cosine", "step"] = Field("cosine", description="lr schedule")
    milestones: tuple[int, ...] = Field((), description="'step' schedule: epochs where lr *= gamma")
    gamma: float = Field(0.1, gt=0, le=1, description="'step' schedule factor")
    eval_batch_size: int = Field(2000, ge=1, description="batch size of validation passes")
    select: Literal["clean", "noisy", "last"] = Field(
        "clean",
        description="weights kept: best validation accuracy without noise, best mean validation "
        "accuracy under noise ('noisy': select_transfers chips of the experiment's noise model), "
        "or the last epoch",
    )
    select_transfers: int = Field(4, ge=1, description="'noisy' selection: chips per epoch")
    select_level: float | None = Field(
        None,
        ge=0.0,
        allow_inf_nan=False,
        description="'noisy' selection: noise level (default: the noise model's own)",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="training step under torch.autocast: fp32 (none), bf16, or fp16 (with a "
        "GradScaler); a method lists the precisions it supports",
    )
