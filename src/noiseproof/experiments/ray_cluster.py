"""Joining Ray for the `ray` executor: bounded in time, quiet, checked against one job's needs.

`connect(address, cpus_per_job, gpus_per_job)` leaves this process connected to Ray or raises
one NoiseproofError line; it never waits past its bound. In order:

1. The address: None or 'local' starts a local instance (None uses `RAY_ADDRESS` when that is
   set, as `ray.init` does); 'auto' joins the cluster `ray start` last started here;
   'HOST:PORT' joins the head node's GCS port (6379 unless `ray start --port` chose another);
   'ray://HOST:PORT' goes through Ray Client. Anything else (e.g. 'not a host') is one line.
2. For HOST:PORT and ray://HOST:PORT, a probe before Ray is involved: the host name is
   resolved, a TCP connection opened and the HTTP/2 preface sent (the GCS and the Ray Client
   server are gRPC servers, which answer with a SETTINGS frame at once), each step bounded by
   the time left. Nothing listening, a wrong host or another kind of server (the dashboard's
   8265) is one line within seconds, where `ray.init` would retry for minutes.
3. `ray.init` itself runs in a helper thread that the caller waits for at most the time left
   (`timeout_s` to join a cluster, `start_timeout_s` to start a local instance); Ray's own
   warnings meanwhile (its C++ core writes them to file descriptor 2, its Python loggers to
   the root logger) are held back and shown only at debug level (-v). A thread still inside
   `ray.init` after the bound is abandoned (a daemon thread): the command line exits at once.
4. One job must fit somewhere: some alive node must hold `cpus_per_job` CPUs and
   `gpus_per_job` GPUs together (what Ray needs to schedule a task), else Ray would keep the
   jobs pending forever; the line says what one job asks and what the cluster has. A cluster
   that autoscales is judged by the nodes it has now. When this check fails, a Ray instance
   this function started (or joined) is shut down again.

A process already connected (`ray.is_initialized()`, e.g. a test's or a notebook's own
`ray.init`) is only checked (step 4).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from noiseproof.errors import NoiseproofError

JOIN_TIMEOUT_S = 30.0
"""Default bound on joining a running cluster (probe and `ray.init` together)."""
START_TIMEOUT_S = 120.0
"""Default bound on starting a local instance (a few seconds on an idle machine; 10 s and more
on a busy two-core one)."""
PROBE_STEP_S = 5.0
"""The most each probe step (name lookup, TCP connect, gRPC answer) may take."""
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113, 3.4)."""
SETTINGS_FRAME = 0x04
"""HTTP/2 frame type of SETTINGS: the first frame a gRPC server sends."""
ADDRESS_HELP = (
    "expected auto, local, HOST:PORT (the head node's GCS port, 6379 by default) or ray://HOST:PORT"
)

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_log = logging.getLogger(__name__)
_PARKED = threading.Event()
"""Never set: what the helper threads of `bounded` wait on once done (see there)."""


def parse_address(address: str, where: str = "ray address") -> tuple[str, int] | None:
    """(host, port) of 'HOST:PORT' or 'ray://HOST:PORT'; None for 'auto' and 'local';
    NoiseproofError (one line, naming `where`) for anything else."""
    text = address.strip()
    if text in ("auto", "local"):
        return None
    match = _HOST_PORT.fullmatch(text.removeprefix("ray://"))
    host, port = (match["host"].strip("[]"), int(match["port"])) if match else ("", 0)
    if not match or not 1 <= port <= 65535 or not _valid_host(host):
        raise NoiseproofError(f"{where} {address!r}: {ADDRESS_HELP}")
    return host, port


def _valid_host(host: str) -> bool:
    """An IPv4/IPv6 address or a DNS name (labels of letters, digits and inner hyphens)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def connect(
    address: str | None,
    cpus_per_job: float,
    gpus_per_job: float,
    timeout_s: float = JOIN_TIMEOUT_S,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Any:
    """Connect this process to Ray (module docstring) and check that one job of `cpus_per_job`
    CPUs and `gpus_per_job` GPUs fits on a node; returns the `ray` module."""
    try:
        import ray
    except ImportError:
        raise NoiseproofError("executor 'ray' needs Ray: pip install 'noiseproof[ray]'") from None
    if ray.is_initialized():
        check_resources(ray, cpus_per_job, gpus_per_job)
        return ray
    where, target = "--ray-address", None if address is None else address.strip()
    if target in (None, "auto") and os.environ.get("RAY_ADDRESS"):
        where, target = "RAY_ADDRESS", os.environ["RAY_ADDRESS"].strip()
    parsed = None if target is None else parse_address(target, where)
    joining = target is not None and target != "local"
    bound = timeout_s if joining else start_timeout_s
    deadline = time.monotonic() + bound
    if parsed is not None:
        probe(*parsed, deadline, str(target))  # parsed from `target`: a string
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    what = f"joining the Ray cluster at {target}" if joining else "starting a local Ray instance"
    left = max(0.1, deadline - time.monotonic())
    bounded(lambda: ray.init(address=target, **kwargs), left, what)
    try:
        check_resources(ray, cpus_per_job, gpus_per_job)
    except NoiseproofError:
        ray.shutdown()
        raise
    return ray


def probe(host: str, port: int, deadline: float, address: str) -> None:
    """NoiseproofError (one line) unless a gRPC server answers at host:port before `deadline`
    (module docstring, step 2)."""

    def left() -> float:
        return max(0.1, min(PROBE_STEP_S, deadline - time.monotonic()))

    def look_up() -> list[Any] | str:
        try:
            return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            return f"unknown host {host} ({(error.strerror or str(error)).lower()})"

    try:
        infos = bounded(look_up, left(), f"looking up {host}", hold_back=False)
    except NoiseproofError as error:
        raise NoiseproofError(f"cannot reach the Ray cluster at {address}: {error}") from None
    if isinstance(infos, str):
        raise NoiseproofError(f"cannot reach the Ray cluster at {address}: {infos}")
    reply, reason = b"", "nothing answered"
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(left())
                sock.connect(sockaddr)
                sock.settimeout(left())
                sock.sendall(HTTP2_PREFACE)
                reply = sock.recv(64)
            break
        except TimeoutError:
            reason = f"no answer within {PROBE_STEP_S:g} s"
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
    else:
        raise NoiseproofError(
            f"cannot reach the Ray cluster at {address}: {reason} (is `ray start --head` "
            "running there, and is this its GCS port?)"
        )
    if len(reply) < 9 or reply[3] != SETTINGS_FRAME:
        raise NoiseproofError(
            f"{address} answers, but not as a Ray head node (no gRPC): give the GCS port that "
            "`ray start --head` printed (6379 by default; the dashboard's 8265 is not it)"
        )


def bounded(call: Callable[[], Any], seconds: float, what: str, hold_back: bool = True) -> Any:
    """`call()` in a daemon thread, waited for at most `seconds`; its result, or
    NoiseproofError (one line) when it raised or is still running. With `hold_back`, Ray's
    output to stderr and its loggers are held back meanwhile and logged at debug level.

    The thread then stays parked until the process ends: Ray ties the life of the processes
    it starts (GCS, raylet) to the thread that started them (Linux PR_SET_PDEATHSIG fires when
    that thread ends), so a local instance started here would die with a thread that returned.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = error
        finished.set()
        _PARKED.wait()

    finished = threading.Event()

    thread = threading.Thread(target=run, name="noiseproof-ray-connect", daemon=True)
    with held_back(what) if hold_back else contextlib.nullcontext():
        thread.start()
        finished.wait(seconds)
    if not finished.is_set():
        raise NoiseproofError(f"{what}: no answer within {seconds:.0f} s")
    if "error" in box:
        raise NoiseproofError(f"{what} failed: {_last_line(box['error'])}")
    return box.get("value")


def _last_line(error: BaseException) -> str:
    """'<type>: <last line of the message>', and the last line of its cause in parentheses
    (Ray's ConnectionError hides why in its cause: e.g. a missing authentication token)."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    cause = error.__cause__
    if cause is not None and (why := str(cause).strip().splitlines()):
        text += f" ({why[-1][:160]}{'...' if len(why[-1]) > 160 else ''})"
    return text


@contextlib.contextmanager
def held_back(what: str) -> Iterator[None]:
    """Within: file descriptor 2 goes to a temporary file and the `ray` loggers drop anything
    below ERROR; after: stderr is back and what was written shows at debug level (-v)."""
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            ray_logger.setLevel(level)
            held.seek(0)
            text = held.read().decode("utf-8", "replace").strip()
            if text:
                _log.debug(f"{what}: Ray wrote:\n{text}")


def check_resources(ray: Any, cpus_per_job: float, gpus_per_job: float) -> None:
    """NoiseproofError (one line) unless some alive node of the cluster holds one job's CPUs
    and GPUs together (module docstring, step 4)."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    asked = {"CPU": cpus_per_job, "GPU": gpus_per_job}
    if any(all(n.get(kind, 0) >= need for kind, need in asked.items()) for n in nodes):
        return
    keys = {"CPU": "cpus_per_job", "GPU": "gpus_per_job"}
    most = {kind: max((n.get(kind, 0) for n in nodes), default=0) for kind in asked}
    short = [kind for kind in asked if asked[kind] > most[kind]]
    named = short or list(asked)  # each fits some node, but no node holds both
    total = {kind: sum(n.get(kind, 0) for n in nodes) for kind in asked}
    raise NoiseproofError(
        f"{', '.join(f'executor.{keys[k]}={asked[k]:g}' for k in named)}: each job asks "
        f"{_amount(cpus_per_job, 'CPU')} and {_amount(gpus_per_job, 'GPU')} on one node, but "
        f"the Ray cluster has {_amount(total['CPU'], 'CPU')} and {_amount(total['GPU'], 'GPU')} "
        f"on {_amount(len(nodes), 'node')}{'' if short else ', none with both'}: no job could "
        f"ever start; lower {' / '.join(f'executor.{keys[k]}' for k in named)} or join a "
        "cluster that has them (--ray-address)"
    )


def _amount(value: float, unit: str) -> str:
    """(1.0, 'GPU') -> '1 GPU', (0.25, 'GPU') -> '0.25 GPUs', (0, 'GPU') -> '0 GPUs'."""
    return f"{value:g} {unit}{'' if value == 1 else 's'}"
