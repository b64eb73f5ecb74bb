"""forward.weight_slices / bits_per_slice: each weight on several device pairs, each with its
own noise draw, recombined digitally (noiseproof.noise.slicing), against tests/reference."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationError

import noiseproof as nf
from helpers import QUICK_COMPARE
from noiseproof.analog import AnalogForward
from noiseproof.cli import cli
from noiseproof.evaluation.chipstream import ChipStream
from noiseproof.noise.slicing import recombine, significances, slice_tensor, sliced_sample
from noiseproof.seeding import derive_seed
from reference.analog_ranges_reference import sliced_value
from reference.measured_reference import DEVICE_FIXTURE

K = 4  # standard errors


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("slices, bits", [(1, 4), (2, 3), (4, 2), (3, 8)])
def test_without_noise_the_slices_recombine_to_the_quantised_weight(slices, bits):
    w = torch.randn(40, generator=_gen(slices * bits)).double()
    w[3] = 0.0
    scale = float(w.abs().max())
    parts = slice_tensor(w, slices, bits)
    quiet = nf.create_noise({"name": "additive_gaussian", "eta": 0.0})
    chip = sliced_sample(quiet, {"w": w}, slices, bits, _gen)["w"]
    for i, value in enumerate(w.tolist()):
        digits, want = sliced_value(value, scale, slices, bits)
        got = [round(float(p[i]) / scale * (2**bits - 1)) for p in parts]
        assert [abs(d) for d in got] == digits
        assert float(chip[i]) == pytest.approx(want, abs=1e-12)
    assert float(recombine(parts, slices, bits).sub(w).abs().max()) <= scale / (
        2 * (2 ** (slices * bits) - 1)
    ) * (1 + 1e-9)


def test_the_variance_of_a_sliced_weight_is_the_sum_over_slices_by_significance_squared():
    slices, bits, eta, chips = 3, 2, 0.1, 4000
    row = torch.tensor([-1.0, -0.4, 0.0, 0.3, 0.77])  # max|W| = 1 in every slice
    weights = row.repeat(chips, 1)  # each row one independent chip of `row`
    noise = nf.create_noise({"name": "additive_gaussian", "eta": eta})
    drawn = sliced_sample(noise, {"w": weights}, slices, bits, lambda s: _gen(100 + s))["w"]
    quantised = recombine(slice_tensor(weights, slices, bits), slices, bits)
    error = (drawn - quantised).double()
    var = sum(c**2 for c in significances(slices, bits)) * eta**2
    for j in range(len(row)):
        # sample variance of n normal draws: relative standard error sqrt(2 / (n - 1))
        assert abs(float(error[:, j].var()) / var - 1) < K * math.sqrt(2 / (chips - 1))
        assert abs(float(error[:, j].mean())) < K * math.sqrt(var / chips)


def test_slice_s_of_chip_k_is_drawn_from_seed_k_and_s_only():
    clean = {"w": torch.randn(4, 3, generator=_gen(0))}
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.3})
    stream = ChipStream(noise, clean, 1234, torch.device("cpu"), (2, 4))
    assert stream.block == 1  # drawn chip by chip
    chip5 = stream.chip(5)["w"]
    want = sliced_sample(
        noise, clean, 2, 4, lambda s: _gen(derive_seed(1234, "chips", 5, "slice", s))
    )["w"]
    assert torch.equal(chip5, want)
    assert torch.equal(stream.chips(4, 7)["w"][1], chip5)


@pytest.mark.parametrize(
    "spec",
    [
        "tio2_crossbar",
        "pcm",
        {"name": "measured", "file": str(DEVICE_FIXTURE)},
        {"name": "additive_gaussian", "eta": 0.05},
    ],
)
def test_monte_carlo_over_sliced_chips_is_chip_indexed_for_any_noise_model(spec):
    data = nf.load_dataset("moons")
    model = nf.build_model("mlp", data.input_shape, data.num_outputs)
    nf.train(model, data, nf.create_method("standard"), nf.TrainConfig(epochs=1), progress=False)
    noise = nf.create_noise(spec)
    sliced = AnalogForward(weight_slices=2, bits_per_slice=3)

    def run(**kwargs):
        return nf.run_transfers(
            model, noise, data.x_test, data.y_test, generator=nf.generator(0, "s"), **kwargs
        ).accuracy

    whole = run(transfers=4, analog=sliced)
    assert torch.equal(whole[2:], run(transfers=2, first_chip=2, analog=sliced))
    assert torch.equal(whole, run(transfers=4, analog=sliced, chunk_size=1))


@pytest.mark.parametrize(
    "section, key",
    [
        ({"weight_slices": 0, "bits_per_slice": 2}, "weight_slices"),
        ({"bits_per_slice": 0}, "bits_per_slice"),
        ({"weight_slices": 5, "bits_per_slice": 5}, "weight_slices x bits_per_slice"),
        ({"weight_slices": 2, "dac_bits": 4}, "weight_slices"),
    ],
)
def test_bad_slicing_is_one_line_naming_the_key(section, key):
    with pytest.raises(ValidationError, match=key):
        AnalogForward(**section)


def test_compare_runs_sliced_weights_and_refuses_bad_ones_with_exit_2(tmp_path):
    section = "forward={weight_slices: 2, bits_per_slice: 4}"
    run = CliRunner().invoke(
        cli, ["compare", *QUICK_COMPARE, "--set", section, "--out", tmp_path / "ok"]
    )
    assert run.exit_code == 0, run.output
    bad = CliRunner().invoke(
        cli,
        ["compare", *QUICK_COMPARE, "--set", "forward.weight_slices=0", "--out", tmp_path / "x"],
    )
    assert bad.exit_code == 2 and "weight_slices" in bad.output
