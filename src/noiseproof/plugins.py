"""Plugins: modules that register models, noise models, methods or datasets with the registries.

A plugin is a module to import; importing it runs the registries' decorators. It reaches
noiseproof in two ways:

- `--plugin my.module` on the command line (or `load_plugin("my.module")`), imported at once;
- an entry point of an installed package in the group `noiseproof.plugins`, whose value is the
  module to import:

      [project.entry-points."noiseproof.plugins"]
      mine = "my_package.plugin"

  These load lazily: on the first registry miss, for `noiseproof list`, or when a checkpoint
  names them; never at start-up (`--help` stays fast).

Each registered class remembers the plugin that registered it (`registered_plugin`), so a
checkpoint records which plugin modules it needs; loading it without them fails in one line
saying which plugin to install or pass. Nothing named in a file is ever imported: a file may
only say what is missing.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from noiseproof.errors import NoiseproofError

logger = logging.getLogger(__name__)

GROUP = "noiseproof.plugins"
"""The entry-point group installed plugin packages declare."""

MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

_loading: list[str] = []  # the plugins being imported right now (innermost last)
_providers: dict[tuple[str, str], str] = {}  # (kind, name) -> plugin module that registered it
_entry_points_loaded = False


def check_module_name(module: Any, what: str = "plugin") -> str:
    """`module` if it is a dotted module name, else NoiseproofError naming it."""
    if not isinstance(module, str) or not MODULE_NAME.fullmatch(module):
        raise NoiseproofError(
            f"{what}: expected a module path like 'my_package.plugin', got {module!r}"
        )
    return module


def load_plugin(module: str) -> None:
    """Import the plugin `module` (its registrations run); one NoiseproofError line naming it
    if it cannot be imported. Importing an already imported module does nothing."""
    check_module_name(module, "--plugin")
    _loading.append(module)
    try:
        importlib.import_module(module)
    except Exception as error:  # any failure inside a user's module: one line naming it
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        detail = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
        raise NoiseproofError(f"plugin '{module}' failed to import ({detail})") from None
    finally:
        _loading.pop()
    logger.debug("loaded plugin %s", module)


def load_entry_points() -> None:
    """Import every installed plugin (entry-point group `noiseproof.plugins`), once per process.

    A plugin that fails to import is reported as one warning line naming it and its package;
    the others still load.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=GROUP):
        package = point.dist.name if point.dist is not None else "an installed package"
        try:
            load_plugin(point.module)
        except NoiseproofError as error:
            logger.warning("%s (entry point '%s' of %s)", error, point.name, package)


def provider(cls: type) -> str | None:
    """The plugin module registering `cls` now: the plugin being loaded, else the class's own
    module unless it is noiseproof's or `__main__` (a script or notebook cannot be reloaded)."""
    if _loading:
        return _loading[-1]
    module = getattr(cls, "__module__", "") or ""
    if module in ("__main__", "noiseproof") or module.startswith(("noiseproof.", "__")):
        return None
    return module


def record(kind: str, name: str, module: str | None) -> None:
    """Remember that `module` registered the `kind` component `name` (None: built in)."""
    if module is not None:
        _providers[(kind, name)] = module


def provider_of(kind: str, name: str) -> str | None:
    """The plugin module that registered the `kind` component `name` (None: built in/unknown)."""
    return _providers.get((kind, name))


def used_plugins(*components: Any, dataset: str | Mapping[str, Any] | None = None) -> list[str]:
    """The plugin modules the components (registered objects, nested ones included) and the
    dataset (a name or a spec) come from, sorted; [] when all are built in."""
    found: set[str] = set()
    seen: set[int] = set()

    def walk(value: Any) -> None:
        if id(value) in seen or isinstance(value, str | bytes | int | float | type(None)):
            return
        seen.add(id(value))
        if isinstance(value, Mapping):
            values: Iterable[Any] = value.values()
        elif isinstance(value, list | tuple | set | frozenset):
            values = value
        elif hasattr(type(value), "model_fields"):  # a registered (pydantic) component
            module = getattr(type(value), "registered_plugin", None)
            if module:
                found.add(module)
            values = [getattr(value, name, None) for name in type(value).model_fields]
        else:
            return
        for item in values:
            walk(item)

    for component in components:
        walk(component)
    name = dataset.get("name") if isinstance(dataset, Mapping) else dataset
    provider = provider_of("dataset", name) if isinstance(name, str) else None
    if provider:
        found.add(provider)
    return sorted(found)


def require_plugins(path: Any, meta: Any) -> None:
    """NoiseproofError unless every plugin a checkpoint's metadata names ('plugins') is imported
    (installed plugins are loaded first). The names are only compared, never imported."""
    names = meta.get("plugins") if isinstance(meta, Mapping) else None
    if names is None:
        return
    if not isinstance(names, list) or not all(
        isinstance(n, str) and MODULE_NAME.fullmatch(n) for n in names
    ):
        raise NoiseproofError(
            f"checkpoint {path}: metadata field 'plugins' must be a list of module names"
        )
    missing = [name for name in names if name not in sys.modules]
    if missing:
        load_entry_points()
        missing = [name for name in missing if name not in sys.modules]
    if missing:
        listed = ", ".join(f"'{name}'" for name in missing)
        raise NoiseproofError(
            f"checkpoint {path} needs plugin {listed}, which registered its components: "
            f"install the package that provides it or pass --plugin {missing[0]}"
        )
