"""Training methods: objectives returning named loss terms, registered by name."""

from noiseproof.methods import (  # noqa: F401  (register)
    adversarial,
    awp,
    consistency,
    correctnet,
    dropout,
    hardware_aware,
    lipschitz,
    noise_injection,
    standard,
    wvat,
)
from noiseproof.methods.base import Method, StepContext, methods


def create_method(spec) -> Method:
    """A method from a name, a {'name': ..., **params} mapping, or a Method."""
    return methods.create(spec)


__all__ = ["Method", "StepContext", "create_method", "methods"]
