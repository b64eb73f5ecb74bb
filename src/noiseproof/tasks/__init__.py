"""Tasks: the loss, predictions, per-chip metrics and reliability a network is measured by.

Every module of the package registers its tasks; a new task is a new module here (or a
plugin's) with a `@tasks.register(name)` class: it is found by `noiseproof list tasks`,
`create_task` and the config key `task:` without any list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from noiseproof.tasks.base import Metric, Task, tasks
from noiseproof.tasks.infer import AUTO, create_task, infer_task

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["AUTO", "Metric", "Task", "create_task", "infer_task", "tasks"]
