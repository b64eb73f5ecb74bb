"""Training methods: objectives returning named loss terms, registered by name."""

from noiseproof.methods import dropout, noise_injection, standard  # noqa: F401  (register)
from noiseproof.methods.base import Method, StepContext, methods


def create_method(spec) -> Method:
    """A method from a name, a {'name': ..., **params} mapping, or a Method."""
    return methods.create(spec)


__all__ = ["Method", "StepContext", "create_method", "methods"]
