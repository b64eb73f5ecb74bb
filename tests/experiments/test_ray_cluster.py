"""Joining Ray is bounded and checked (noiseproof.experiments.ray_cluster): a wrong address, a
port where nothing listens, a server that never answers and a job the cluster cannot hold are
each one line within seconds, Ray's own warnings held back. The command-line cases run the real
`noiseproof` in its own process (a Ray connection stuck in a thread would outlive a test)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import QUICK_COMPARE
from noiseproof.errors import NoiseproofError
from noiseproof.experiments.ray_cluster import check_resources, parse_address

pytest.importorskip("ray")

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.usefixtures("ray_alone")]  # conftest.py

BIN = Path(sys.executable).parent
RAY_NOISE = ("rpc_client", "gcs_client", "Traceback", "WARNING", "(raylet)")


def quiet_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    return env


def compare(tmp_path: Path, *options: str) -> tuple[int, list[str], float]:
    """Run `noiseproof -q compare` (quickest grid) with the Ray executor; (exit code, lines of
    stdout and stderr, seconds)."""
    args = [str(BIN / "noiseproof"), "-q", "compare", *QUICK_COMPARE, "--no-progress"]
    started = time.monotonic()
    done = subprocess.run(
        [*args, "--executor", "ray", *options, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=quiet_env(),
        timeout=300,
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines, time.monotonic() - started


def free_port() -> int:
    """A local TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_address_syntax():
    assert parse_address("auto") is None and parse_address(" local ") is None
    assert parse_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert parse_address("head-0.cluster.local:6379") == ("head-0.cluster.local", 6379)
    assert parse_address("ray://head:10001") == ("head", 10001)
    assert parse_address("[::1]:6379") == ("::1", 6379)
    for bad in ("not a host", "head", ":6379", "head:0", "head:65536", "-x:1", "a:b", ""):
        with pytest.raises(NoiseproofError, match="expected auto, local, HOST:PORT") as caught:
            parse_address(bad, "--ray-address")
        assert str(caught.value).startswith(f"--ray-address {bad!r}: ")


def test_a_job_the_cluster_cannot_hold_says_what_was_asked_and_what_exists():
    class Cluster:
        def __init__(self, *nodes):
            self.listed = [{"Alive": True, "Resources": n} for n in nodes]
            self.listed.append({"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}})

        def nodes(self):
            return self.listed

    check_resources(Cluster({"CPU": 2.0}), 1, 0)
    check_resources(Cluster({"CPU": 2.0}, {"CPU": 4.0, "GPU": 1.0}), 2, 0.25)
    with pytest.raises(NoiseproofError) as caught:
        check_resources(Cluster({"CPU": 2.0}), 1, 1)
    assert str(caught.value).startswith(
        "executor.gpus_per_job=1: each job asks 1 CPU and 1 GPU on one node, but the Ray "
        "cluster has 2 CPUs and 0 GPUs on 1 node: no job could ever start"
    )
    with pytest.raises(NoiseproofError, match="executor.cpus_per_job=8: .* 6 CPUs and 0 GPUs"):
        check_resources(Cluster({"CPU": 2.0}, {"CPU": 4.0}), 8, 0)
    with pytest.raises(NoiseproofError, match="2 GPUs on 2 nodes, none with both"):
        check_resources(Cluster({"CPU": 1.0, "GPU": 2.0}, {"CPU": 8.0}), 4, 1)


def test_nothing_listening_is_one_line_within_seconds(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    code, lines, seconds = compare(tmp_path, "--ray-address", address)
    assert code == 2, lines
    assert lines == [
        f"error: cannot reach the Ray cluster at {address}: connection refused (is `ray start "
        "--head` running there, and is this its GCS port?)"
    ]
    assert seconds < 30


def test_an_address_that_is_no_address_is_one_line(tmp_path):
    code, lines, _ = compare(tmp_path, "--ray-address", "not a host")
    assert code == 2, lines
    assert lines == [
        "error: --ray-address 'not a host': expected auto, local, HOST:PORT (the head node's "
        "GCS port, 6379 by default) or ray://HOST:PORT"
    ]


def test_a_gpu_per_job_without_gpus_is_one_line_saying_what_was_asked_and_what_exists(tmp_path):
    torch = pytest.importorskip("torch")
    gpus = torch.cuda.device_count() + 1  # one more than this machine has
    code, lines, seconds = compare(tmp_path, "--set", f"executor.gpus_per_job={gpus}")
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(
        f"error: executor.gpus_per_job={gpus}: each job asks 1 CPU and {gpus} GPU"
    ), lines
    assert f"{gpus - 1} GPU" in lines[0] and "no job could ever start" in lines[0]
    assert not any(noise in lines[0] for noise in RAY_NOISE)
    assert seconds < 60  # a local Ray instance started and stopped: ~10 s on a busy 2-core box


@pytest.fixture
def silent_grpc_server():
    """A local TCP server that answers like a gRPC server (an HTTP/2 SETTINGS frame) and then
    never says anything more: the probe passes, `ray.init` would wait for minutes."""
    server = socket.create_server(("127.0.0.1", 0))
    open_sockets = [server]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            open_sockets.append(conn)
            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    for sock in open_sockets:
        sock.close()


def test_ray_init_that_never_returns_is_cut_at_the_bound_quietly(silent_grpc_server):
    script = (
        "import sys\n"
        "from noiseproof.errors import NoiseproofError\n"
        "from noiseproof.experiments.ray_cluster import connect\n"
        "try:\n"
        f"    connect({silent_grpc_server!r}, 1, 0, timeout_s=4)\n"
        "except NoiseproofError as error:\n"
        "    print(error)\n"
        "    sys.exit(2)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=quiet_env(), timeout=120
    )
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.strip() == (
        f"joining the Ray cluster at {silent_grpc_server}: no answer within 4 s"
    )
    assert not any(noise in done.stderr for noise in RAY_NOISE), done.stderr
    assert seconds < 25  # importing Ray, then 4 s


def test_a_server_that_is_not_ray_is_told_apart(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(64)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    try:
        code, lines, _ = compare(tmp_path, "--ray-address", address)
    finally:
        server.close()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {address} answers, but not as a Ray head node (no gRPC)")


def test_ray_address_from_the_environment_is_checked_the_same_way():
    script = (
        "import os\n"
        "from noiseproof.errors import NoiseproofError\n"
        "from noiseproof.experiments.ray_cluster import connect\n"
        f"for value in ['127.0.0.1:{free_port()}', 'not a host']:\n"
        "    os.environ['RAY_ADDRESS'] = value\n"
        "    try:\n"
        "        connect(None, 1, 0)\n"
        "    except NoiseproofError as error:\n"
        "        print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=quiet_env(), timeout=120
    )
    refused, malformed = done.stdout.strip().splitlines()
    assert refused.startswith("cannot reach the Ray cluster at 127.0.0.1:") and (
        "connection refused" in refused
    )
    assert malformed.startswith("RAY_ADDRESS 'not a host': expected auto, local, HOST:PORT")
