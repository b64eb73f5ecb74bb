"""The grid as a plan of jobs, run by the local executor and by a real local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray  # installed by setup.sh: missing, these tests fail rather than skip
from toy_jobs import toy_task

from noiseproof.experiments.executors import LocalExecutor, RayExecutor, depth_first
from noiseproof.experiments.plan import EvalJob, TrainJob, plan_grid, shard_ranges

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.usefixtures("ray_alone")]  # conftest.py


def test_shards_cover_every_chip_once_in_order():
    assert shard_ranges(10, None) == [(0, 10)]
    assert shard_ranges(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert shard_ranges(3, 7) == [(0, 3)]
    for k, per in ((100, 1), (100, 7), (101, 10)):
        ranges = shard_ranges(k, per)
        chips = [c for first, n in ranges for c in range(first, first + n)]
        assert chips == list(range(k))


def test_plan_lists_trainings_first_then_every_shard():
    jobs = plan_grid(["a", "b"], [0, 1], [("g", [0.1, 0.2])], transfers=10, transfers_per_job=4)
    trainings = [j for j in jobs if isinstance(j, TrainJob)]
    assert (
        jobs[: len(trainings)]
        == trainings
        == [
            TrainJob("a", 0),
            TrainJob("b", 0),
            TrainJob("a", 1),
            TrainJob("b", 1),
        ]
    )
    evaluations = [j for j in jobs if isinstance(j, EvalJob)]
    assert len(evaluations) == 2 * 2 * 2 * 3
    assert {j.training for j in evaluations} == set(trainings)
    assert EvalJob("a", 0, "g", 0.1, 8, 2, 10).name == "evaluate a seed 0 g=0.1 chips 8-10"
    assert EvalJob("a", 0, "g", 0.1, 0, 10, 10).name == "evaluate a seed 0 g=0.1"


def test_local_runs_each_evaluation_right_after_its_training():
    jobs = plan_grid(["a", "b"], [3], [("g", [0.5])], transfers=4, transfers_per_job=2)
    order = [job.name for job in depth_first(jobs)]
    assert order == [
        "train a seed 3",
        "evaluate a seed 3 g=0.5 chips 0-2",
        "evaluate a seed 3 g=0.5 chips 2-4",
        "train b seed 3",
        "evaluate b seed 3 g=0.5 chips 0-2",
        "evaluate b seed 3 g=0.5 chips 2-4",
    ]
    results = {}
    LocalExecutor().run(jobs, toy_task, (10,), lambda job, r: results.__setitem__(job, r))
    assert results[EvalJob("b", 3, "g", 0.5, 2, 2, 4)] == 32


@pytest.fixture(scope="module")
def local_ray():
    here = str(Path(__file__).parent)
    path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def test_ray_gives_the_local_results_and_reports_failures_by_name(local_ray):
    jobs = plan_grid(["a", "broken"], [1, 2], [("g", [0.1])], transfers=6, transfers_per_job=3)
    local, remote = {}, {}
    LocalExecutor().run(
        [j for j in jobs if j.method != "broken"], toy_task, (5,), local.__setitem__
    )
    failures = RayExecutor(retries=0).run(jobs, toy_task, (5,), remote.__setitem__)
    assert remote == local
    assert sorted(f.line() for f in failures) == sorted(
        [
            "train broken seed 1: ValueError: training broke",
            "train broken seed 2: ValueError: training broke",
            "evaluate broken seed 1 g=0.1 chips 0-3: not run: train broken seed 1 failed",
            "evaluate broken seed 1 g=0.1 chips 3-6: not run: train broken seed 1 failed",
            "evaluate broken seed 2 g=0.1 chips 0-3: not run: train broken seed 2 failed",
            "evaluate broken seed 2 g=0.1 chips 3-6: not run: train broken seed 2 failed",
        ]
    )
