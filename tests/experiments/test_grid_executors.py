"""The same grid gives the same results.json numbers with the local and the Ray executor, with
evaluations cut into shards or not, and --resume continues whatever executor started a run."""

from __future__ import annotations

import json

import pytest
import ray  # installed by setup.sh: missing, these tests fail rather than skip
from click.testing import CliRunner

from helpers import digits_grid
from noiseproof.cli import cli

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.usefixtures("ray_alone")]  # conftest.py

GRID = ["compare", *digits_grid(transfers=10, epochs=1)]
CLOCKS = {"seconds", "wall_seconds", "train_seconds", "executor"}


def without_clocks(value):
    """`value` with wall-clock fields (and the executor, which never changes numbers) removed."""
    if isinstance(value, dict):
        return {k: without_clocks(v) for k, v in value.items() if k not in CLOCKS}
    if isinstance(value, list):
        return [without_clocks(v) for v in value]
    return value


def results(folder):
    return without_clocks(json.loads((folder / "results.json").read_text()))


def compare(*args):
    done = CliRunner().invoke(cli, [*GRID, *args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    compare("--out", str(out / "run"))
    return out / "run"


def test_ray_and_sharded_ray_equal_local_job_by_job(reference, tmp_path, local_ray):
    compare("--executor", "ray", "--out", str(tmp_path / "ray"))
    compare("--executor", "ray", "--transfers-per-job", "3", "--out", str(tmp_path / "shards"))
    expected = results(reference)
    for folder in ("ray", "shards"):
        got = results(tmp_path / folder)
        assert len(got["jobs"]) == 4
        for mine, theirs in zip(got["jobs"], expected["jobs"], strict=True):
            assert mine == theirs
        assert got == expected
    shards = sorted(p.name for p in (tmp_path / "shards" / "jobs" / "shards").iterdir())
    assert len(shards) == 4 * 4  # 10 chips in shards of 3: 0-3, 3-6, 6-9, 9-10
    assert shards[0].endswith("__chips0-3.json")


def test_local_sharding_equals_one_job_per_level(reference, tmp_path):
    compare("--transfers-per-job", "4", "--out", str(tmp_path / "run"))
    assert results(tmp_path / "run") == results(reference)


def test_resume_continues_a_run_whatever_executor_started_it(reference, tmp_path, local_ray):
    out = tmp_path / "run"
    compare("--out", str(out))
    (out / "results.json").unlink()
    for path in [
        *sorted((out / "jobs").glob("noise_injection__*.json")),
        out / "checkpoints" / "noise_injection-seed0.pt",
    ]:
        path.unlink()
    compare("--executor", "ray", "--resume", "--out", str(out))
    assert results(out) == results(reference)


def test_a_failed_job_is_reported_by_name_while_the_rest_finish(tmp_path, local_ray):
    out = tmp_path / "run"
    (out / "checkpoints" / "noise_injection-seed0.pt").mkdir(parents=True)  # cannot be written
    args = ["--executor", "ray", "--set", "executor.retries=0", "--resume", "--out", str(out)]
    done = CliRunner().invoke(cli, [*GRID, *args])
    assert done.exit_code == 2, done.output
    lines = done.output.splitlines()
    assert any(
        line.startswith("failed: train noise_injection seed 0: IsADirectoryError") for line in lines
    ), done.output
    assert (
        "failed: evaluate noise_injection seed 0 relative_gaussian=0.5: "
        "not run: train noise_injection seed 0 failed"
    ) in lines
    assert lines[-1].startswith("error: 3 job(s) failed (listed above); the 3 finished are kept")
    assert len(list((out / "jobs").glob("standard__*.json"))) == 2
