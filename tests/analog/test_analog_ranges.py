"""forward.input_range (static, learned, calibrated) and forward.adc_range calibrated per
layer or column (noiseproof.analog, noiseproof.analog_ranges), against tests/reference."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationError
from torch import nn

import noiseproof as nf
from helpers import QUICK_COMPARE
from noiseproof.analog import AnalogForward, analog_forward, layer_names
from noiseproof.analog_ranges import (
    AnalogRanges,
    LearnedRanges,
    _RangeClip,
    calibrate_ranges,
    evaluation_forward,
)
from noiseproof.cli import cli
from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint
from reference.analog_ranges_reference import (
    percentile,
    range_clip_gradients,
    ranged_conv2d,
    ranged_linear,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(7, 5)


def test_a_static_input_range_clips_and_scales_as_the_reference():
    layer = _linear()
    x = 2 * torch.randn(6, 7, generator=_gen(1))  # some entries beyond r = 1.5
    effects = AnalogForward(
        dac_bits=4, adc_bits=5, adc_range=3.0, input_range={"mode": "static", "value": 1.5}
    )
    with torch.no_grad(), analog_forward(layer, ["weight"], effects, torch.Generator()):
        got = layer(x)
    want = ranged_linear(layer.weight, layer.bias, x, 1.5, 4, 5, [3.0] * 5)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("p_in, p_out, batch", [(99.0, 98.0, 2000), (50.0, 37.5, 64)])
def test_calibrated_ranges_are_percentiles_of_the_inputs_and_of_each_column(p_in, p_out, batch):
    layer = _linear()
    x = torch.randn(300, 7, generator=_gen(2))
    effects = AnalogForward(
        dac_bits=6,
        adc_bits=6,
        input_range={"mode": "calibrated", "percentile": p_in},
        adc_range={"mode": "calibrated", "per": "column", "percentile": p_out},
    )
    ranges = calibrate_ranges(layer, ["weight", "bias"], effects, x, batch_size=batch)
    r = percentile(x.abs().flatten().tolist(), p_in)
    assert ranges.inputs[""] == pytest.approx(r, rel=1e-6)
    # each column's normalised output y_n = W/w Q_dac(clip(x)/r), as the reference computes it
    y = ranged_linear(layer.weight, torch.zeros(5), x, r, 6, None, [0.0] * 5) / (
        r * float(layer.weight.detach().abs().max())
    )
    want = [percentile(y[:, o].abs().tolist(), p_out) for o in range(5)]
    assert list(ranges.adc[""]) == pytest.approx(want, rel=1e-5)
    with torch.no_grad(), analog_forward(layer, ["weight"], effects, _gen(0), ranges=ranges):
        got = layer(x)
    ref = ranged_linear(layer.weight, layer.bias, x, ranges.inputs[""], 6, 6, list(ranges.adc[""]))
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per", ["layer", "column"])
def test_a_conv2d_with_calibrated_ranges_matches_the_patch_by_patch_reference(per):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3)
    x = torch.randn(3, 2, 5, 5, generator=_gen(3))
    effects = AnalogForward(
        dac_bits=5,
        adc_bits=6,
        input_range={"mode": "calibrated", "percentile": 95.0},
        adc_range={"mode": "calibrated", "per": per},
    )
    ranges = calibrate_ranges(conv, ["weight"], effects, x)
    assert ranges.inputs[""] == pytest.approx(percentile(x.abs().flatten().tolist(), 95.0))
    assert len(ranges.adc[""]) == (1 if per == "layer" else 3)
    adc = list(ranges.adc[""]) * (3 if per == "layer" else 1)
    with torch.no_grad(), analog_forward(conv, ["weight"], effects.with_ranges(ranges), _gen(0)):
        got = conv(x)
    want = ranged_conv2d(conv.weight, conv.bias, x, ranges.inputs[""], 5, 6, adc)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_calibration_of_a_network_is_deterministic_and_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    names = [n for n, _ in model.named_parameters()]
    x = torch.randn(64, 6, generator=_gen(4))
    effects = AnalogForward(
        adc_bits=8,
        input_range={"mode": "calibrated"},
        adc_range={"mode": "calibrated", "per": "column"},
    )
    first = calibrate_ranges(model, names, effects, x, batch_size=7)
    assert first == calibrate_ranges(model, names, effects, x, batch_size=7)
    whole = calibrate_ranges(model, names, effects, x)  # other batches: float rounding only
    assert whole.inputs == pytest.approx(first.inputs, rel=1e-6)
    assert whole.adc["2"] == pytest.approx(first.adc["2"], rel=1e-6)
    assert set(first.inputs) == {"0", "2"} and len(first.adc["2"]) == 3
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert AnalogRanges.from_dict(first.to_dict()) == first


def test_the_learned_range_clip_has_aihwkits_gradient():
    x = torch.tensor([-2.0, -0.5, 0.1, 0.9, 1.0, 3.0], requires_grad=True)
    r = torch.tensor(1.0, requires_grad=True)
    grad = torch.tensor([0.3, -0.2, 0.5, -1.0, -0.7, 0.4])
    _RangeClip.apply(x, r, 0.01, 0.5).backward(grad)
    want_x, want_r = range_clip_gradients(x.tolist(), 1.0, grad.tolist(), 0.01, 0.5)
    assert x.grad.tolist() == pytest.approx(want_x)
    assert float(r.grad) == pytest.approx(want_r)


def test_learned_ranges_start_from_the_inputs_std_then_train():
    layer = _linear()
    effects = AnalogForward(input_range={"mode": "learned", "init_batches": 2}, train=True)
    learned = LearnedRanges([""], effects, torch.device("cpu"))
    batches = [torch.randn(32, 7, generator=_gen(s)) * (s + 1) for s in range(3)]
    with analog_forward(layer, ["weight"], effects, _gen(0), ranges=learned):
        for xb in batches:
            layer(xb).sum().backward()
    stds = [float(b.std()) for b in batches[:2]]
    assert learned.ranges().inputs[""] == pytest.approx(3.0 * sum(stds) / 2, rel=1e-5)
    assert learned.values[""].grad is not None  # trained through the clip from then on


def test_a_network_trained_with_learned_ranges_is_evaluated_with_them(tmp_path):
    out = tmp_path / "run"
    section = "forward={input_range: {mode: learned, init_batches: 5}, dac_bits: 6, train: true}"
    result = CliRunner().invoke(cli, ["compare", *QUICK_COMPARE, "--set", section, "--out", out])
    assert result.exit_code == 0, result.output
    checkpoints = sorted(out.rglob("*.pt"))
    assert checkpoints
    _, meta = load_checkpoint(checkpoints[0])
    stored = AnalogRanges.from_dict(meta["analog_ranges"])
    model = nf.build_model("mlp", (2,), 2)
    names = [n for n, _ in model.named_parameters()]
    assert set(stored.inputs) == set(layer_names(model, names))
    assert all(r != 3.0 for r in stored.inputs.values())  # moved from the initial value
    effects = AnalogForward(input_range={"mode": "learned"}, dac_bits=6, train=True)
    used = evaluation_forward(effects, model, names, torch.zeros(1, 2), meta["analog_ranges"])
    assert used.ranges == stored  # what run_transfers then applies
    with pytest.raises(ValueError, match="input_range: mode learned"):
        evaluation_forward(effects, model, names, torch.zeros(1, 2), None)
    evaluate = ["evaluate", "--levels", "0.1", "--transfers", "2", "--set", section]
    again = CliRunner().invoke(
        cli, [*evaluate[:1], str(checkpoints[0]), *evaluate[1:], "--out", str(tmp_path / "e")]
    )
    assert again.exit_code == 0, again.output
    state, meta = load_checkpoint(checkpoints[0])
    del meta["analog_ranges"]
    save_checkpoint(tmp_path / "bare.pt", state, meta)
    bare = CliRunner().invoke(
        cli, [*evaluate[:1], str(tmp_path / "bare.pt"), *evaluate[1:], "--out", str(tmp_path / "b")]
    )
    assert bare.exit_code == 2 and "forward.input_range: mode learned needs" in bare.output


@pytest.mark.parametrize(
    "section, key",
    [
        ({"input_range": {"mode": "guessed"}}, "input_range.mode"),
        ({"input_range": {"mode": "static"}}, "input_range"),
        ({"input_range": {"mode": "learned"}}, "input_range"),
        ({"adc_range": {"mode": "calibrated"}}, "adc_range"),
        ({"adc_bits": 6, "adc_range": {"mode": "calibrated"}, "train": True}, "adc_range"),
        ({"adc_bits": 6, "adc_range": -1}, "adc_range"),
    ],
)
def test_bad_range_sections_are_one_line_naming_the_key(section, key):
    with pytest.raises(ValidationError, match=key.replace(".", r"\.")):
        AnalogForward(**section)


def test_a_calibrated_range_without_calibration_is_refused_naming_the_key():
    layer = _linear()
    effects = AnalogForward(adc_bits=6, adc_range={"mode": "calibrated"})
    refused = pytest.raises(ValueError, match="forward.adc_range: mode calibrated needs")
    with refused, analog_forward(layer, ["weight"], effects, _gen(0)):
        pass
    data = nf.load_dataset("moons")
    model = nf.build_model("mlp", data.input_shape, data.num_outputs)
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.1})
    effects = AnalogForward(input_range={"mode": "calibrated"})
    with pytest.raises(ValueError, match="forward.input_range: mode calibrated needs"):
        nf.run_transfers(model, noise, data.x_test, data.y_test, 2, _gen(0), analog=effects)


def test_compare_with_calibrated_ranges_and_a_bad_mode_at_the_command_line(tmp_path):
    section = (
        "forward={adc_bits: 6, input_range: {mode: calibrated}, adc_range: {mode: calibrated}}"
    )
    run = CliRunner().invoke(
        cli, ["compare", *QUICK_COMPARE, "--set", section, "--out", tmp_path / "ok"]
    )
    assert run.exit_code == 0, run.output
    bad = CliRunner().invoke(
        cli,
        [
            "compare",
            *QUICK_COMPARE,
            "--set",
            "forward.input_range={mode: guessed}",
            "--out",
            tmp_path / "bad",
        ],
    )
    assert bad.exit_code == 2 and "input_range" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
