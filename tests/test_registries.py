"""Components are found without hand-kept lists: every concrete component class in src/ is
registered (a new file is imported by its package's registry on its own), or is a shared base
of registered ones, or is one of the few internal classes named here with the reason."""

from __future__ import annotations

import inspect

import pytest

import noiseproof.experiments.api  # noqa: F401  (its internal components are seen, as in a full run)
from noiseproof.data import DatasetSpec, datasets
from noiseproof.methods import Method, methods
from noiseproof.models import ModelSpec, models
from noiseproof.noise import NoiseModel, noise_models
from noiseproof.tasks import Task, tasks

REGISTRIES = [
    (NoiseModel, noise_models),
    (Method, methods),
    (ModelSpec, models),
    (DatasetSpec, datasets),
    (Task, tasks),
]

INTERNAL = {
    "CompensationObjective": "correctnet's inner training objective, built by correctnet itself",
    "GivenModel": "nf.compare's wrapper of the user's own module (not a name to configure)",
    "GivenData": "nf.compare's wrapper of the user's own data (not a name to configure)",
}
"""Component subclasses that are not registered on purpose, with why."""


def subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *subclasses(sub)]
    return found


@pytest.mark.parametrize(("base", "registry"), REGISTRIES, ids=lambda v: getattr(v, "kind", ""))
def test_every_concrete_component_class_is_registered(base, registry):
    registered = set(registry._classes.values())
    missing = []
    for cls in subclasses(base):
        if not cls.__module__.startswith("noiseproof.") or cls in registered:
            continue
        shared_base = any(sub in registered for sub in subclasses(cls))
        if inspect.isabstract(cls) or shared_base or cls.__name__ in INTERNAL:
            continue
        missing.append(f"{cls.__module__}.{cls.__name__}")
    assert not missing, f"not registered: {missing} (register them, or make them abstract)"


@pytest.mark.parametrize(("base", "registry"), REGISTRIES, ids=lambda v: getattr(v, "kind", ""))
def test_a_registered_name_resolves_to_its_class(base, registry):
    for name in registry.names():
        cls = registry.get(name)
        assert issubclass(cls, base) and cls.registered_name == name
