"""Tasks: the loss, predictions, per-chip metrics and reliability a network is measured by.

Every module of the package registers its tasks; a new task is a new module here (or a
plugin's) with a `@tasks.register(name)` class: it is found by `noiseproof list tasks`,
`create_task` and the config key `task:` without any list to edit.
"""

from __future__ import annotations

from noiseproof.registry import import_modules
from noiseproof.tasks.base import Metric, Task, tasks
from noiseproof.tasks.infer import AUTO, create_task, infer_task

import_modules(__name__, __path__)  # every module registers its tasks

__all__ = ["AUTO", "Metric", "Task", "create_task", "infer_task", "tasks"]
