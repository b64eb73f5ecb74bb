"""Training methods: objectives returning named loss terms, registered by name."""

from collections.abc import Mapping
from typing import Any

from noiseproof.methods.base import Method, StepContext, methods
from noiseproof.registry import import_modules

import_modules(__name__, __path__)  # every module registers its methods


def create_method(spec: str | Mapping[str, Any] | Method) -> Method:
    """A method from a name, a {'name': ..., **params} mapping, or a Method.

    >>> import noiseproof as nf
    >>> nf.create_method("noise_injection").spec()
    {'name': 'noise_injection', 'noise': None, 'level': None}
    """
    return methods.create(spec)


__all__ = ["Method", "StepContext", "create_method", "methods"]
