"""Local vs Ray executor on one grid: wall time ratio and Ray's scheduling overhead per job.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py [--workers 2]

One digits grid (2 methods x 3 levels, 1000 chips per level in jobs of 250: 2 trainings of
20 epochs and 24 evaluation shards) runs with the local executor and with a local Ray instance
X
apart), the sum of the jobs' own compute time (S, from their records), the ratio, and the
overhead per job = (workers x Ray wall - S) / jobs: the time a worker spends per job outside the
job's own work (task dispatch, argument transfer, loading the data and the checkpoint).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from noiseproof.config import ExperimentConfig
from noiseproof.experiments.compare import run_compare

GRID = {
    "dataset": "digits",
    "model": "mlp",
    "methods": ["standard", "noise_injection"],
    "noise": ["relative_gaussian"],
    "levels": [0.2, 0.5, 0.8],
    "transfers": 1000,
    "train": {"epochs": 20},
}


def compute_seconds(results: dict) -> float:
    """The jobs' own time: trainings plus evaluations, as their records say."""
    return sum(t["train_seconds"] for t in results["trainings"]) + sum(
        j["seconds"] for j in results["jobs"]
    )


def numbers(results: dict) -> list:
    """The accuracy summaries, for the equality check."""
    return [(j["method"], j["level"], j["accuracy"]) for j in results["jobs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs (one job each)")
    parser.add_argument("--per-job", type=int, default=250, help="chips per evaluation job")
    args = parser.parse_args()
    import ray

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("local", "ray"):
            raw = {**GRID, "executor": {"name": name, "transfers_per_job": args.per_job}}
            config = ExperimentConfig.parse(raw)
            setup = 0.0
            if name == "ray":
                started = time.perf_counter()
                ray.init(
                    num_cpus=args.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
                )
                setup = time.perf_counter() - started
            started = time.perf_counter()
            results = run_compare(config, Path(tmp) / name, progress=False, log=lambda _: None)
            runs[name] = (time.perf_counter() - started, setup, results)
    ray.shutdown()
    (local_wall, _, local), (ray_wall, ray_setup, remote) = runs["local"], runs["ray"]
    assert numbers(local) == numbers(remote), "the executors disagree"
    jobs = len(remote["trainings"]) + len(remote["jobs"]) * -(-GRID["transfers"] // args.per_job)
    work = compute_seconds(remote)
    print(json.dumps({"grid": GRID, "workers": args.workers, "jobs": jobs}))
    local_work = compute_seconds(local)
    print(f"local executor   wall {local_wall:7.1f} s   (jobs' own compute {local_work:.1f} s)")
    print(f"ray executor     wall {ray_wall:7.1f} s   (jobs' own compute {work:.1f} s)")
    print(f"ray.init             {ray_setup:7.1f} s   (apart from the wall time above)")
    print(f"ratio ray / local    {ray_wall / local_wall:5.2f}")
    print(f"overhead per job     {(args.workers * ray_wall - work) / jobs * 1000:7.0f} ms")
    print("results.json numbers: equal")


if __name__ == "__main__":
    main()
