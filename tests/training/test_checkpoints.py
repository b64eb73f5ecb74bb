"""Checkpoints: round trip, and every way a file can be wrong is refused with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import noiseproof.atomic as atomic_module
from noiseproof.errors import NoiseproofError
from noiseproof.training.checkpoints import FORMAT, load_checkpoint, save_checkpoint

META = {
    "model": {"name": "mlp", "hidden": [4]},
    "method": {"name": "standard"},
    "dataset": "digits",
    "input_shape": [3],
    "num_outputs": 4,
    "chip": {},
    "epoch": 3,
    "accuracy": 0.91,
    "tags": ["a", None],
}


def state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "fc.weight": torch.randn(4, 3, generator=g),
        "fc.bias": torch.full((4,), 1234.5),
        "bn.running_var": torch.rand(4, generator=g, dtype=torch.float64),
        "bn.num_batches_tracked": torch.tensor(7),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 5),
    }


def assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


def saved(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "run" / "best.pt", state(), META)


def test_round_trip(tmp_path):
    path = saved(tmp_path)
    assert path == tmp_path / "run" / "best.pt"
    loaded, meta = load_checkpoint(path)
    assert_same_state(loaded, state())
    assert meta == META


def test_round_trip_of_a_models_state_dict(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()(torch.randn(8, 3))  # non-trivial BatchNorm statistics
    model.eval()
    x = torch.randn(5, 3)
    save_checkpoint(tmp_path / "m.pt", model.state_dict(), {})
    twin = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
    twin.load_state_dict(load_checkpoint(tmp_path / "m.pt", trained=False)[0])
    assert torch.equal(twin(x), model(x))


def test_views_and_tensors_needing_grad_are_saved_as_plain_values(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    weights = {"t": base.t(), "row": base[1], "p": nn.Parameter(torch.ones(2))}
    save_checkpoint(tmp_path / "v.pt", weights, {})
    loaded, _ = load_checkpoint(tmp_path / "v.pt", trained=False)
    assert torch.equal(loaded["t"], base.t())
    assert loaded["row"].shape == (4,) and torch.equal(loaded["row"], base[1])
    assert not loaded["p"].requires_grad


def test_saving_leaves_no_temporary_files(tmp_path):
    saved(tmp_path)
    saved(tmp_path)  # overwrite
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt"]


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = saved(tmp_path)
    before = path.read_bytes()

    def no_disk(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_module.os, "fsync", no_disk)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"other": torch.zeros(3)}, {})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]


def flip_byte_of(path: Path, needle: bytes) -> None:
    raw = bytearray(path.read_bytes())
    where = raw.find(needle)
    assert where >= 0 and raw.find(needle, where + 1) < 0  # the needle is unique
    raw[where + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_changed_weight_byte_is_reported_as_altered(tmp_path):
    path = saved(tmp_path)
    flip_byte_of(path, torch.full((4,), 1234.5).numpy().tobytes())
    with pytest.raises(NoiseproofError, match="altered"):
        load_checkpoint(path)


def test_changed_metadata_is_reported_as_altered(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", state(), {"note": "marker-text-abcdefgh"})
    flip_byte_of(path, b"marker-text-abcdefgh")
    with pytest.raises(NoiseproofError, match="altered"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "payload",
    [
        {"format": FORMAT, "meta": "{}", "state": {"w": torch.ones(2)}, "digest": "0" * 64},
        {"format": FORMAT, "meta": "{}", "state": {"w": torch.ones(2)}},
    ],
    ids=["wrong-digest", "no-digest"],
)
def test_a_payload_with_a_wrong_digest_is_refused(tmp_path, payload):
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(NoiseproofError, match="altered"):
        load_checkpoint(tmp_path / "c.pt")


@pytest.mark.parametrize("keep", [0, 1, 100, -1, -200])
def test_truncated_file_is_unreadable(tmp_path, keep):
    path = saved(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep] if keep >= 0 else raw[:keep])
    with pytest.raises(NoiseproofError, match="unreadable") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"not a checkpoint at all\n", bytes(range(256)) * 4])
def test_garbage_file_is_unreadable(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(NoiseproofError, match="unreadable"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "payload",
    [
        {"weight": torch.ones(2)},
        torch.ones(3),
        [torch.ones(1)],
        {"format": "someone-else/1", "meta": "{}", "state": {}},
    ],
    ids=["state-dict", "tensor", "list", "other-format"],
)
def test_a_foreign_torch_file_is_not_a_noiseproof_checkpoint(tmp_path, payload):
    torch.save(payload, tmp_path / "foreign.pt")
    with pytest.raises(NoiseproofError, match="not a noiseproof checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize(
    "payload",
    [{"format": FORMAT, "state": {}}, {"format": FORMAT, "meta": "{}", "state": [1]}],
    ids=["no-meta", "state-not-a-dict"],
)
def test_an_incomplete_checkpoint_is_refused(tmp_path, payload):
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(NoiseproofError, match="incomplete"):
        load_checkpoint(tmp_path / "c.pt")


class Trap:
    """An object whose unpickling would run code: it would create the file named by `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_checkpoint_holding_a_non_tensor_object_is_refused_without_running_it(tmp_path):
    sentinel = tmp_path / "code-ran"
    payload = {"format": FORMAT, "meta": "{}", "state": {"w": Trap(str(sentinel))}, "digest": ""}
    torch.save(payload, tmp_path / "trap.pt")
    with pytest.raises(NoiseproofError, match="unreadable"):
        load_checkpoint(tmp_path / "trap.pt")
    assert not sentinel.exists()
    torch.load(tmp_path / "trap.pt", weights_only=False)  # the trap is real: unsafe loading runs it
    assert sentinel.exists()


def test_loading_asks_torch_for_weights_only(tmp_path, monkeypatch):
    path = saved(tmp_path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path)
    assert calls and all(call.get("weights_only") is True for call in calls)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(NoiseproofError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(NoiseproofError, match="not found"):
        load_checkpoint(tmp_path)  # a directory is not a checkpoint file
