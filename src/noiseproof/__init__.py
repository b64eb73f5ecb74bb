"""noiseproof: train neural networks that stay accurate under hardware noise, and prove it.

The public API, one import away (`import noiseproof as nf`); each name is imported on first use,
so `import noiseproof` and the command line start fast:

    data = nf.load_dataset("digits")                      # or nf.Dataset.from_tensors(...)
    model = nf.build_model("mlp", data.input_shape, data.num_outputs)   # or your nn.Module
    nf.train(model, data, nf.create_method("noise_injection"), nf.TrainConfig(epochs=5),
             noise=nf.create_noise("relative_gaussian"))
    chips = nf.run_transfers(model, nf.create_noise({"name": "relative_gaussian", "zeta": 0.3}),
                             data.x_test, data.y_test, 100, nf.generator(0, "chips"))
    nf.accuracy_summary(chips.accuracy), nf.reliability(chips)
    results = nf.compare(model=my_module, data=data, methods=["standard", "noise_injection"],
                         noise="relative_gaussian", levels=[0, 0.2, 0.4])
    results.to_pandas()
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AnalogForward": "noiseproof.analog",
    "AttackConfig": "noiseproof.evaluation.attack",
    "ChipSelection": "noiseproof.chip",
    "CompareResults": "noiseproof.experiments.api",
    "Dataset": "noiseproof.data.base",
    "LandscapeConfig": "noiseproof.evaluation.landscape",
    "Method": "noiseproof.methods.base",
    "NoiseModel": "noiseproof.noise.base",
    "NoiseproofError": "noiseproof.errors",
    "RunSettings": "noiseproof.settings",
    "Task": "noiseproof.tasks",
    "TrainConfig": "noiseproof.training.config",
    "TransferResult": "noiseproof.evaluation.transfers",
    "accuracy_summary": "noiseproof.evaluation.metrics",
    "build_model": "noiseproof.models",
    "compare": "noiseproof.experiments.api",
    "create_method": "noiseproof.methods",
    "create_noise": "noiseproof.noise",
    "create_task": "noiseproof.tasks",
    "generator": "noiseproof.seeding",
    "load_checkpoint": "noiseproof.training.checkpoints",
    "load_dataset": "noiseproof.data",
    "loss_landscape": "noiseproof.evaluation.landscape",
    "reliability": "noiseproof.evaluation.metrics",
    "run_transfers": "noiseproof.evaluation.transfers",
    "save_checkpoint": "noiseproof.training.checkpoints",
    "select_output": "noiseproof.chip",
    "targeted_attack": "noiseproof.evaluation.attack",
    "train": "noiseproof.training.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'noiseproof' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
