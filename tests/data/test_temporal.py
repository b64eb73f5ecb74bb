"""Temporal data for spiking networks: spike encodings and sequences of any image dataset,
MNIST-1D generated locally, your own sequences (temporal-npz) and event streams (events-npz).

Every input has time on dimension 1: [N, T, C, H, W] encoded images, [N, T, C] sequences,
[N, T, 2, H, W] binned events.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import noiseproof as nf
from helpers import MINIMAL_EXPERIMENT
from noiseproof.cli import cli
from noiseproof.config import ExperimentConfig
from noiseproof.data import datasets, load_dataset
from noiseproof.data.temporal import EncodeSpec, latency, rate
from noiseproof.errors import NoiseproofError
from noiseproof.seeding import generator
from reference.temporal_reference import bin_events_reference, pixels_reference, rows_reference


def refused(spec: dict) -> str:
    """The one-line NoiseproofError message `load_dataset(spec)` stops with."""
    with pytest.raises(NoiseproofError) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


def digits(**keys: object) -> nf.Dataset:
    """The digits dataset (1x8x8 images in [0, 1]) with `keys` added, 200 training images."""
    return load_dataset({"name": "digits", "max_train": 200, **keys})


# --- spike encodings ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rate", "latency", "direct"])
def test_encoded_images_have_time_on_dimension_one(kind):
    raw = digits()
    data = digits(encode={"kind": kind, "steps": 6})
    assert data.input_shape == (6, 1, 8, 8)
    for split in ("train", "val", "test"):
        x, images = getattr(data, f"x_{split}"), getattr(raw, f"x_{split}")
        assert x.shape == (len(images), 6, 1, 8, 8) and x.dtype == torch.float32
        assert torch.equal(getattr(data, f"y_{split}"), getattr(raw, f"y_{split}"))
        if kind == "direct":
            assert torch.equal(x, images[:, None].expand_as(x))
        else:
            assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_rate_code_is_reproducible_and_seeded():
    first = digits(encode={"kind": "rate", "steps": 4})
    again = digits(encode={"kind": "rate", "steps": 4})
    other = digits(encode={"kind": "rate", "steps": 4, "seed": 1})
    for split in ("x_train", "x_val", "x_test"):
        assert torch.equal(getattr(first, split), getattr(again, split))
    assert not torch.equal(first.x_train, other.x_train)
    # each split draws from its own stream, generator(seed, "encode", split)
    assert torch.equal(first.x_val, rate(digits().x_val, 4, generator(0, "encode", "val")))


def test_rate_code_mean_is_the_intensity():
    # Each element fires Bernoulli(p) at every step: the spike count over n = N*T draws of one
    # intensity p is Binomial(n, p), so its mean has standard deviation sqrt(p(1-p)/n); we
    # accept 5 of them (a false failure has probability below 1e-6 per intensity).
    intensities = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    x = intensities.view(1, 6).expand(500, 6).contiguous()
    spikes = rate(x, 40, generator(0, "test"))
    assert spikes.shape == (500, 40, 6)
    n = 500 * 40
    for k, p in enumerate(intensities.tolist()):
        mean = float(spikes[:, :, k].mean())
        assert abs(mean - p) <= 5 * math.sqrt(p * (1 - p) / n), (p, mean)


def test_rate_coded_dataset_mean_matches_the_images():
    # Over the whole training split, mean spike rate - mean intensity has variance
    # sum_i T p_i (1 - p_i) / (T M)^2 for M pixels: 5 standard deviations again.
    steps = 8
    images = digits().x_train
    spikes = digits(encode={"kind": "rate", "steps": steps}).x_train
    p = images.double()
    sd = math.sqrt(float((steps * p * (1 - p)).sum())) / (steps * p.numel())
    assert abs(float(spikes.double().mean()) - float(p.mean())) <= 5 * sd


def test_latency_spike_times_on_a_hand_made_image():
    # t = round((1 - x)(T - 1)) with T = 5: 1 -> 0, 0.75 -> 1, 0.5 -> 2, 0.25 -> 3,
    # 0.2 -> round(3.2) = 3, 0.05 -> round(3.8) = 4, 0 -> no spike.
    image = torch.tensor([[[[1.0, 0.5, 0.0], [0.25, 0.75, 0.2]], [[0.05, 0.0, 1.0], [0, 0, 0]]]])
    spikes = latency(image, 5)  # [1, 5, 2, 2, 3]
    expected = {(0, 0, 0): 0, (0, 0, 1): 2, (0, 1, 0): 3, (0, 1, 1): 1, (0, 1, 2): 3}
    expected |= {(1, 0, 0): 4, (1, 0, 2): 0}
    assert spikes.shape == (1, 5, 2, 2, 3)
    for c in range(2):
        for h in range(2):
            for w in range(3):
                train = spikes[0, :, c, h, w]
                if (c, h, w) in expected:
                    assert train.tolist() == [float(t == expected[c, h, w]) for t in range(5)]
                else:
                    assert not train.any()


def test_latency_dataset_fires_once_per_lit_pixel():
    images = digits().x_test
    spikes = digits(encode={"kind": "latency", "steps": 10}).x_test
    assert torch.equal(spikes.sum(dim=1), (images > 0).float())
    first = spikes.argmax(dim=1).float()
    lit = images > 0
    assert torch.equal(first[lit], torch.round((1 - images[lit]) * 9))


def test_direct_code_may_follow_normalize():
    data = digits(encode={"kind": "direct", "steps": 3}, normalize=True)
    plain = digits(normalize=True)
    assert torch.equal(data.x_train[:, 2], plain.x_train)


def test_encode_on_npz_images(tmp_path):
    images = np.random.default_rng(0).random((30, 3, 4, 5)).astype(np.float32)
    np.savez(tmp_path / "img.npz", x=images, y=np.arange(30) % 3)
    data = load_dataset(
        {"name": "npz", "train": str(tmp_path / "img.npz"), "encode": {"kind": "rate", "steps": 2}}
    )
    assert data.input_shape == (2, 3, 4, 5)


# --- sequences ---------------------------------------------------------------------------------


def test_rows_and_pixels_sequences_match_the_reference(tmp_path):
    images = np.random.default_rng(1).random((12, 3, 4, 5)).astype(np.float32)
    np.savez(tmp_path / "img.npz", x=images, y=np.arange(12) % 2)
    spec = {"name": "npz", "train": str(tmp_path / "img.npz"), "val_fraction": 0.0}
    raw = load_dataset(spec)
    rows = load_dataset({**spec, "sequence": "rows"})
    pixels = load_dataset({**spec, "sequence": "pixels"})
    assert rows.input_shape == (4, 15) and pixels.input_shape == (20, 3)
    for split in ("x_train", "x_test"):
        images_split = getattr(raw, split).numpy()
        assert np.array_equal(getattr(rows, split).numpy(), rows_reference(images_split))
        assert np.array_equal(getattr(pixels, split).numpy(), pixels_reference(images_split))


def test_mnist_style_rows_on_digits():
    data = digits(sequence="rows")
    assert data.input_shape == (8, 8)
    assert torch.equal(data.x_train, digits().x_train[:, 0])


# --- mnist1d -----------------------------------------------------------------------------------


def test_mnist1d_generated_locally_as_sequences():
    random.seed(3)
    np.random.seed(3)
    state = np.random.get_state()[1].copy(), random.getstate()
    data = load_dataset({"name": "mnist1d", "num_samples": 200})
    assert np.array_equal(np.random.get_state()[1], state[0]) and random.getstate() == state[1]
    assert data.input_shape == (40, 1) and data.num_classes == 10
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (144, 16, 40)
    assert data.x_train.dtype == torch.float32
    again = load_dataset({"name": "mnist1d", "num_samples": 200})
    other = load_dataset({"name": "mnist1d", "num_samples": 200, "seed": 1})
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)
    assert not torch.equal(data.x_train, other.x_train)
    defaults = datasets.get("mnist1d").model_fields
    assert (defaults["num_samples"].default, defaults["seed"].default) == (5000, 42)
    assert defaults["test_fraction"].default == 0.2


# --- temporal-npz ------------------------------------------------------------------------------


def test_temporal_npz_keeps_sequences(tmp_path):
    x = np.random.default_rng(2).normal(size=(20, 7, 3))
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(20) % 4)
    np.savez(tmp_path / "test.npz", x=x[:5], y=np.arange(5) % 4)
    data = load_dataset(
        {
            "name": "temporal-npz",
            "train": str(tmp_path / "train.npz"),
            "test": str(tmp_path / "test.npz"),
        }
    )
    assert data.input_shape == (7, 3) and data.num_classes == 4
    assert torch.allclose(data.x_test, torch.tensor(x[:5], dtype=torch.float32))
    assert len(data.y_train) + len(data.y_val) == 20


@pytest.mark.parametrize("shape", [(10, 7), (10, 7, 3, 2)])
def test_temporal_npz_refuses_other_shapes(tmp_path, shape):
    np.savez(tmp_path / "x.npz", x=np.zeros(shape), y=np.arange(10) % 2)
    message = refused({"name": "temporal-npz", "train": str(tmp_path / "x.npz")})
    assert "dataset 'temporal-npz'" in message and "[N, T, C]" in message


def test_temporal_npz_refuses_missing_labels(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((10, 4, 2)))
    message = refused({"name": "temporal-npz", "train": str(tmp_path / "x.npz")})
    assert "missing array(s) ['y']" in message


# --- events ------------------------------------------------------------------------------------

SENSOR = (5, 4)  # width, height


def event_arrays(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """n samples of 0-29 random events (unsorted times in [0, 1000)) on a 5x4 sensor; sample 3
    has no events, sample 5 has all its events at one time."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, size=n)
    counts[3], counts[5] = 0, 4
    total = int(counts.sum())
    t = rng.uniform(0, 1000, size=total)
    start = int(counts[:5].sum())
    t[start : start + counts[5]] = 250.0
    return {
        "t": t,
        "x": rng.integers(0, SENSOR[0], size=total),
        "y": rng.integers(0, SENSOR[1], size=total),
        "p": rng.choice([-1, 1], size=total),
        "offsets": np.concatenate([[0], np.cumsum(counts)]),
        "labels": np.arange(n) % 3,
        "sensor_size": np.array(SENSOR),
    }


def reference_frames(arrays: dict, steps: int, window: float | None) -> np.ndarray:
    """bin_events_reference of every sample of an events file's arrays."""
    return bin_events_reference(
        *(arrays[key].tolist() for key in ("t", "x", "y", "p", "offsets")),
        *SENSOR,
        steps,
        window,
    )


@pytest.mark.parametrize("window", [None, 600.0])
def test_events_are_binned_as_the_reference(tmp_path, window):
    train, test = event_arrays(12, 0), event_arrays(6, 1)
    np.savez(tmp_path / "train.npz", **train)
    np.savez(tmp_path / "test.npz", **test)
    spec = {
        "name": "events-npz",
        "train": str(tmp_path / "train.npz"),
        "test": str(tmp_path / "test.npz"),
        "steps": 6,
        "window": window,
        "val_fraction": 0.0,
    }
    data = load_dataset(spec)
    assert data.input_shape == (6, 2, SENSOR[1], SENSOR[0])
    assert np.array_equal(data.x_test.numpy(), reference_frames(test, 6, window))
    # without max_train the train split is every sample in split_train_val's shuffled order
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(data.x_train.numpy(), reference_frames(train, 6, window)[order])
    assert torch.equal(data.y_train, torch.tensor(train["labels"])[order])
    if window is None:  # every event lands in some frame
        assert float(data.x_test.sum()) == len(test["t"])


def test_events_holdout_and_limits_are_seeded(tmp_path):
    np.savez(tmp_path / "ev.npz", **event_arrays(20))
    spec = {"name": "events-npz", "train": str(tmp_path / "ev.npz"), "steps": 3}
    first = load_dataset({**spec, "max_train": 8, "max_test": 3})
    again = load_dataset({**spec, "max_train": 8, "max_test": 3})
    assert (len(first.y_train) + len(first.y_val), len(first.y_test)) == (8, 3)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.x_test, again.x_test)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"t": lambda a: a - 10}, "'t' must hold finite times >= 0"),
        ({"x": lambda a: a + 1}, "'x' must hold integer coordinates in [0, 5)"),
        ({"y": lambda a: -a - 1}, "'y' must hold integer coordinates in [0, 4)"),
        ({"p": lambda a: a * 2}, "'p' must hold polarities"),
        ({"offsets": lambda a: a[::-1].copy()}, "'offsets' must be 13 non-decreasing"),
        ({"labels": None}, "missing array(s) ['labels']"),
        ({"sensor_size": lambda a: np.array([5])}, "'sensor_size' must be (width, height)"),
        ({"x": lambda a: a[:-1]}, "one entry per event"),
    ],
)
def test_bad_event_files_are_one_line(tmp_path, change, fragment):
    arrays = event_arrays(12)
    for key, edit in change.items():
        if edit is None:
            del arrays[key]
        else:
            arrays[key] = edit(arrays[key])
    np.savez(tmp_path / "ev.npz", **arrays)
    message = refused({"name": "events-npz", "train": str(tmp_path / "ev.npz"), "steps": 4})
    assert message.startswith("dataset 'events-npz': ") and fragment in message


# --- bad settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"name": "digits", "encode": {"kind": "poisson", "steps": 5}}, "encode.kind"),
        ({"name": "digits", "encode": {"kind": "rate", "steps": 0}}, "encode.steps"),
        ({"name": "digits", "encode": {"kind": "rate"}}, "encode.steps: Field required"),
        ({"name": "moons", "encode": {"kind": "rate", "steps": 5}}, "image datasets only"),
        ({"name": "mnist1d", "sequence": "rows"}, "image datasets only"),
        (
            {"name": "digits", "encode": {"kind": "rate", "steps": 5}, "normalize": True},
            "needs intensities in [0, 1]: set normalize: false",
        ),
        (
            {"name": "digits", "encode": {"kind": "latency", "steps": 5}, "augment": "flip"},
            "augment works on images, not on encode inputs",
        ),
        ({"name": "digits", "sequence": "rows", "augment": True}, "not on sequence inputs"),
        (
            {"name": "digits", "sequence": "rows", "encode": {"kind": "rate", "steps": 2}},
            "exclude each other",
        ),
        ({"name": "digits", "sequence": "columns"}, "sequence"),
        (
            {"name": "imagefolder", "root": "/x", "encode": {"kind": "rate", "steps": 2}},
            "this dataset streams them",
        ),
        (
            {"name": "digits", "encode": {"kind": "rate", "steps": 100, "max_gb": 0.01}},
            "need 0.05 GB, over max_gb 0.01: lower max_train, max_test or encode.steps",
        ),
        ({"name": "events-npz", "train": "/no/such.npz", "steps": 0}, "steps"),
    ],
)
def test_bad_settings_are_one_line_naming_the_dataset(spec, fragment):
    message = refused(spec)
    assert message.startswith(f"dataset '{spec['name']}'") and fragment in message


def test_rate_code_refuses_intensities_outside_zero_one(tmp_path):
    np.savez(tmp_path / "img.npz", x=np.full((10, 1, 2, 2), 3.0), y=np.arange(10) % 2)
    spec = {"name": "npz", "train": str(tmp_path / "img.npz")}
    message = refused({**spec, "encode": {"kind": "rate", "steps": 2}})
    assert message == (
        "dataset 'npz': encode 'rate' needs intensities in [0, 1], got values in [3, 3] "
        "(normalize must be false)"
    )


def test_encode_spec_is_a_plain_config_section():
    spec = EncodeSpec(kind="rate", steps=25)
    assert spec.model_dump() == {"kind": "rate", "steps": 25, "seed": 0, "max_gb": 4.0}


# --- config and command line -------------------------------------------------------------------


def test_config_path_and_listing():
    dataset = {"name": "digits", "max_train": 50, "encode": {"kind": "rate", "steps": 3}}
    config = ExperimentConfig.model_validate({**MINIMAL_EXPERIMENT, "dataset": dataset})
    assert config.dataset.spec()["encode"] == {"kind": "rate", "steps": 3, "seed": 0, "max_gb": 4}
    assert torch.equal(config.dataset.load().x_test, load_dataset(dataset).x_test)
    listing = CliRunner().invoke(cli, ["list", "datasets"])
    assert listing.exit_code == 0
    for name in ("mnist1d", "temporal-npz", "events-npz"):
        assert name in listing.output
    assert "encode" in listing.output and "sequence" in listing.output


def test_cli_bad_encoding_is_one_error_line(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "compare",
            "--dataset",
            "digits",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "dataset={name: digits, encode: {kind: poisson, steps: 5}}",
        ],
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if result.stderr else result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "encode.kind" in lines[0]
    assert not (tmp_path / "run").exists()
