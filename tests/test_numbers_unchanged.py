"""Guard for refactors: the numbers the library computes stay bit for bit what they were.

A few training steps of every registered method, one draw of every registered noise model, a
crossbar export (arrays and tiles), a targeted attack and a loss landscape, all on a tiny
convolutional network with fixed seeds, are hashed (SHA-256 of the exact bytes) and compared
with tests/numbers_unchanged.json. A refactor that should not change numbers must leave every
hash as it is; a change meant to alter numbers regenerates the file with

    OMP_NUM_THREADS=1 .venv/bin/python tests/test_numbers_unchanged.py --write

and says so in its commit. Float results depend on torch's version and on the CPU: its vector
instructions, and its vendor and model (MKL and oneDNN pick other kernels on AMD than on Intel
at the same instruction set), so the file holds hashes per platform and the test is skipped on
a platform it has none for. To guard another platform, on a commit whose numbers are unchanged:

    OMP_NUM_THREADS=1 .venv/bin/python tests/test_numbers_unchanged.py --add

(`--write` keeps this platform's hashes only: after a change meant to alter numbers, the other
platforms' hashes are stale.) Runs on one thread, as reductions may round differently on more.
"""

from __future__ import annotations

import hashlib
import json
import platform as host
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from noiseproof.evaluation.attack import AttackConfig, targeted_attack
from noiseproof.evaluation.landscape import LandscapeConfig, loss_landscape
from noiseproof.export.layout import crossbar_arrays
from noiseproof.export.tiles import conductance_window, tile_conductances
from noiseproof.methods import methods
from noiseproof.noise import noise_models
from noiseproof.seeding import generator
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_data  # noqa: E402
from reference.measured_reference import DEVICE_FIXTURE  # noqa: E402

HASHES = Path(__file__).with_name("numbers_unchanged.json")
REQUIRED = {"models": ["relative_gaussian", "stuck_at"], "file": str(DEVICE_FIXTURE)}
"""Values for required fields of registered components, by field name."""


def cpu_identity() -> dict[str, str]:
    """The CPU's vendor and model name (Linux: /proc/cpuinfo; elsewhere what `platform` says)."""
    info = Path("/proc/cpuinfo")
    fields = {}
    if info.is_file():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return {
        "vendor": fields.get("vendor_id", host.processor()),
        "model": fields.get("model name", host.machine()),
    }


def platform() -> dict[str, str]:
    """What float results depend on besides the code: torch's version, the CPU kernels torch
    uses (its capability) and the CPU they run on."""
    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        **cpu_identity(),
    }


def tiny_model() -> nn.Module:
    """A convolution, two linear layers and biases, initialised from seed 0."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 3, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3 * 6 * 6, 8),
            nn.ReLU(),
            nn.Linear(8, 3),
        )


def digest(*values) -> str:
    """SHA-256 of tensors (exact bytes, dtype and shape), arrays and JSON-able values."""
    h = hashlib.sha256()

    def feed(value) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif hasattr(value, "tobytes"):
            h.update(f"{value.dtype}{value.shape}".encode() + value.tobytes())
        elif isinstance(value, dict):
            for key in sorted(value):
                h.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, list | tuple):
            for item in value:
                feed(item)
        else:
            h.update(json.dumps(value, sort_keys=True).encode())

    for value in values:
        feed(value)
    return h.hexdigest()


def create(registry, name, **settings):
    """The registered component `name` with its defaults (required fields from REQUIRED)
    and `settings`."""
    cls = registry.get(name)
    required = {f: REQUIRED[f] for f, info in cls.model_fields.items() if info.is_required()}
    return registry.create({"name": name, **required, **settings})


def trained(name: str, noise: str = "relative_gaussian") -> str:
    model, data = tiny_model(), tiny_data(n=48)
    train(
        model,
        data,
        create(methods, name),
        TrainConfig(epochs=1, batch_size=16),
        noise=create(noise_models, noise),
        seed=0,
        progress=False,
    )
    return digest(model.state_dict())


VARIANTS = {
    "pcm": [
        {"t_inference": 3600.0, "drift_compensation": "per_column", "bias": "chip"},
        {"t_inference": 86400.0, "drift_compensation": "global"},
    ],
    "tio2_crossbar": [
        {"bias_scale": "layer", "single_element": "map", "line_resistance": True},
        {"scheme": "differential", "disturb_model": "gaussian", "strength": 0.5},
    ],
}
"""Settings beyond the defaults whose draws are hashed too (array grouping, mapping, bias)."""


def drawn(name: str, **settings) -> str:
    params = dict(tiny_model().named_parameters())
    noise = create(noise_models, name, **settings)
    return digest(noise.sample({n: t.detach() for n, t in params.items()}, generator(0, name)))


def exported() -> str:
    model = tiny_model()
    window = conductance_window(noise_models.create("pcm"))
    parts = []
    for bias in ("row", "digital"):
        arrays, off_chip = crossbar_arrays(model, bias=bias)
        parts.append(off_chip)
        for array in arrays:
            tiles = tile_conductances(array.matrix, window, (16, 4))
            parts += [array.name, array.matrix, array.bias and array.bias.handling]
            parts += [tiles.g_plus, tiles.g_minus, tiles.scale]
    return digest(parts)


def attacked() -> str:
    data = tiny_data(n=48)
    config = AttackConfig(zetas=(0.1, 0.3), n_steps=3, transfers=2, examples=24)
    records = targeted_attack(
        tiny_model(), data.x_test, data.y_test, config, generator=torch.Generator().manual_seed(3)
    )
    return digest([{k: v for k, v in r.items() if k != "seconds"} for r in records])


def landscape() -> str:
    data = tiny_data(n=48)
    config = LandscapeConfig(repeats=2, examples=16)
    return digest(
        loss_landscape(
            tiny_model(),
            data.x_test,
            data.y_test,
            config,
            generator=torch.Generator().manual_seed(3),
        )
    )


def compute() -> dict[str, str]:
    """Every hash, by what it covers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {f"method {name}": trained(name) for name in methods.names()}
        out |= {f"noise {name}": drawn(name) for name in noise_models.names()}
        out |= {
            f"noise {name} {settings}": drawn(name, **settings)
            for name, variants in VARIANTS.items()
            for settings in variants
        }
        out |= {
            f"noise_injection on {name}": trained("noise_injection", name)
            for name in ("pcm", "tio2_crossbar", "measured")
        }
        out |= {"export": exported(), "attack": attacked(), "landscape": landscape()}
    finally:
        torch.set_num_threads(threads)
    return out


def test_numbers_unchanged():
    entries = json.loads(HASHES.read_text())["platforms"]
    here = platform()
    recorded = next((e["hashes"] for e in entries if e["platform"] == here), None)
    if recorded is None:
        known = "; ".join(str(e["platform"]) for e in entries)
        pytest.skip(f"no hashes recorded for {here} (recorded: {known}); see the docstring")
    now = compute()
    keys = recorded.keys() | now.keys()
    changed = sorted(k for k in keys if recorded.get(k) != now.get(k))
    assert not changed, "numbers changed: " + ", ".join(changed)


if __name__ == "__main__":
    if sys.argv[1:] not in (["--write"], ["--add"]):
        sys.exit("usage: python tests/test_numbers_unchanged.py --write | --add")
    here = platform()
    kept = []
    if sys.argv[1] == "--add":
        kept = [e for e in json.loads(HASHES.read_text())["platforms"] if e["platform"] != here]
    entries = [*kept, {"platform": here, "hashes": compute()}]
    HASHES.write_text(json.dumps({"platforms": entries}, indent=1) + "\n")
    print(f"wrote {HASHES}: hashes of {len(entries)} platform(s)")
