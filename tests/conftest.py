"""Suite-wide settings: one torch thread, so tiny models run fast and timing noise from other
processes on a 2-core machine does not slow every test.

The suite runs on 2 pytest-xdist workers (pyproject's addopts: `-n 2 --dist loadgroup`). A test
file that starts Ray declares

    pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.usefixtures("ray_alone")]

so that no two Ray instances run at once: two local instances compete for the same cores,
some of these tests check Ray's startup bounds, and two in-process `ray.init` on the two
workers were seen to stall each other. The group sends those files to one worker where the
installed pytest and xdist agree on node ids (xdist 3.8's groups do not take on pytest 9.2);
the lock `ray_alone` holds wherever they run.

Which tests a worker runs, and in which order, changes from run to run, so every test starts
from the same global random state (`same_start`): a test that draws from torch's, numpy's or
Python's global generator without seeding it gets the same numbers whatever ran before it.
"""

import fcntl
import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def same_start() -> None:
    """Seed torch's, numpy's and Python's global generators with 0 before every test."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


@pytest.fixture(scope="module")
def ray_alone(tmp_path_factory: pytest.TempPathFactory):
    """An exclusive lock, shared by every worker of this run, held while one module that
    starts Ray runs (set up before the module's own fixtures, such as its `ray.init`)."""
    path = tmp_path_factory.getbasetemp().parent / "ray-tests.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
