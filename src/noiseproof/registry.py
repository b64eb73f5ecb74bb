"""Name -> configurable class registries shared by noise models, methods, models and datasets.

Every registered class is a pydantic model whose fields are its parameters, so construction
validates them and `noiseproof list` can show each parameter with its type and default.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from noiseproof import plugins
from noiseproof.errors import NoiseproofError

T = TypeVar("T", bound=BaseModel)


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every module of `package` (its `__path__`), subpackages included, so that each
    registers its components: a new file is found without a list to edit."""
    for module in pkgutil.walk_packages(list(path), prefix=f"{package}."):
        importlib.import_module(module.name)


def describe_validation_error(what: str, error: ValidationError) -> str:
    """Collapse a pydantic ValidationError into one readable line naming the field."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "value"
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return f"{what}: " + "; ".join(parts)


def type_name(annotation: Any) -> str:
    """A short readable name for a field's type: 'float | None', 'Literal['kl', 'mse']'."""
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", text)


def validated(cls: type[T], what: str, /, **values: Any) -> T:
    """`cls(**values)`, a validation failure becoming one NoiseproofError line about `what`."""
    try:
        return cls(**values)
    except ValidationError as error:
        raise NoiseproofError(describe_validation_error(what, error)) from None


class Registry(Generic[T]):
    """A name -> class table for one kind of component (e.g. 'noise model')."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding `cls` under `name`; the class's `registered_name` is set, and
        `registered_plugin`: the plugin module registering it (None when built in)."""

        def add(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            component: Any = cls  # the class attributes every registered component gets
            component.registered_name = name
            component.registered_plugin = plugins.provider(cls)
            plugins.record(self.kind, name, component.registered_plugin)
            self._classes[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        """The registered names, sorted (installed plugins not loaded yet are not listed)."""
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as `name`; on a miss, installed plugins are loaded and looked
        up again; NoiseproofError listing the known names if it is still missing."""
        if name not in self._classes:
            plugins.load_entry_points()
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(self.names())
            raise NoiseproofError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def create(self, spec: str | Mapping[str, Any] | T) -> T:
        """Build a component from a name, a {'name': ..., **params} mapping, or pass one through."""
        if isinstance(spec, BaseModel):
            return spec
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise NoiseproofError(
                f"{self.kind} must be a name or a mapping with 'name', got {spec!r}"
            )
        params = {k: v for k, v in spec.items() if k != "name"}
        return validated(self.get(str(spec["name"])), f"{self.kind} '{spec['name']}'", **params)

    def describe(self) -> list[dict[str, Any]]:
        """One entry per component: name, first docstring line, and its parameters with defaults."""
        rows = []
        for name in self.names():
            cls = self._classes[name]
            params = []
            for field_name, field in cls.model_fields.items():
                default = (
                    None if field.is_required() else field.get_default(call_default_factory=True)
                )
                if isinstance(default, BaseModel):  # nested settings: their plain values
                    default = default.model_dump(mode="json")
                params.append(
                    {
                        "name": field.alias or field_name,
                        "type": type_name(field.annotation),
                        "default": default,
                        "required": field.is_required(),
                        "help": field.description or "",
                    }
                )
            doc = (cls.__doc__ or "").strip().splitlines()
            rows.append(
                {
                    "name": name,
                    "summary": doc[0] if doc else "",
                    "params": params,
                    "plugin": getattr(cls, "registered_plugin", None),
                }
            )
        return rows
