"""Strict YAML reading and the one deep merge that config files and --set overrides share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping holding the same key twice (YAML says keys are unique;
    PyYAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping of `node`; a ConstructorError at the second occurrence of a repeated key."""
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: let PyYAML report it
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML text safely (no Python objects) and refuse duplicate keys (yaml.YAMLError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def deep_merge(base: Any, override: Any) -> Any:
    """`override` laid over `base`, recursively; neither argument is modified.

    - two mappings merge key by key (keys only in `base` are kept);
    - a component given by name (`dataset: mnist`) and a mapping merge as {'name': 'mnist', ...},
      whichever side holds the name;
    - a mapping whose 'name' differs from the base's replaces the base mapping whole: parameters
      of two different components are never mixed (`model: {name: cnn}` over an mlp with
      `hidden` gives a plain cnn), while the same name keeps the base's parameters;
    - anything else (lists, numbers, strings, None) replaces the base value.
    """
    if isinstance(base, str) and isinstance(override, Mapping):
        base = {"name": base}
    if isinstance(base, Mapping) and isinstance(override, str) and "name" in base:
        override = {"name": override}
    if not (isinstance(base, Mapping) and isinstance(override, Mapping)):
        return override
    if "name" in override and "name" in base and override["name"] != base["name"]:
        return dict(override)
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value) if key in base else value
    return merged
