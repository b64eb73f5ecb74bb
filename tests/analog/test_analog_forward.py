"""The `forward:` section: DAC, output noise and ADC of on-chip layers (noiseproof.analog)."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationError
from torch import nn

import noiseproof as nf
from helpers import QUICK_COMPARE
from noiseproof.analog import AnalogForward, analog_forward
from noiseproof.chip import forward
from noiseproof.cli import cli
from reference.analog_reference import linear_mvm


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(7, 5)


def test_linear_matches_the_reference_vector_by_vector():
    layer = _linear()
    x = torch.randn(6, 7, generator=torch.Generator().manual_seed(1))
    x[2] = 0.0  # an all-zero input vector: scale 1, output the bias
    effects = AnalogForward(dac_bits=4, adc_bits=5, adc_range=2.0)
    with torch.no_grad(), analog_forward(layer, ["weight"], effects, torch.Generator()):
        got = layer(x)
    want = linear_mvm(layer.weight, layer.bias, x, 4, 5, 2.0)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[2], layer.bias.detach())


def test_conv_uses_one_scale_per_example_and_keeps_the_bias_digital():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3)
    x = torch.randn(4, 2, 5, 5, generator=torch.Generator().manual_seed(2))
    effects = AnalogForward(dac_bits=6, adc_bits=8, adc_range=4.0)
    with torch.no_grad():
        with analog_forward(conv, ["weight"], effects, torch.Generator()):
            got = conv(x)
        alpha = x.abs().flatten(1).amax(1).view(-1, 1, 1, 1)
        w = conv.weight.abs().max()
        step_in, step_out = 2 / (2**6 - 2), 2 * 4.0 / (2**8 - 2)
        xq = torch.round((x / alpha) / step_in) * step_in
        raw = nn.functional.conv2d(xq, conv.weight / w)
        want = alpha * w * torch.round(raw.clamp(-4, 4) / step_out) * step_out
        want = want + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_output_noise_has_the_stated_spread_in_full_scale_units():
    layer = _linear()
    x = torch.randn(4000, 7, generator=torch.Generator().manual_seed(3))
    sigma = 0.05
    effects = AnalogForward(output_noise=sigma)
    with torch.no_grad():
        clean = layer(x)
        with analog_forward(layer, ["weight"], effects, torch.Generator().manual_seed(4)):
            noisy = layer(x)
        scale = x.abs().amax(1, keepdim=True) * layer.weight.abs().max()
        z = (noisy - clean) / scale
    # 20,000 N(0, sigma^2) draws: the sample std is within 4 standard errors sigma/sqrt(2n)
    n = z.numel()
    assert abs(float(z.std()) - sigma) < 4 * sigma / math.sqrt(2 * n)
    assert abs(float(z.mean())) < 4 * sigma / math.sqrt(n)


def test_hooks_are_removed_and_quantisers_pass_gradients_straight_through():
    layer = _linear()
    x = torch.randn(3, 7, requires_grad=True)
    effects = AnalogForward(dac_bits=3, adc_bits=3, adc_range=50.0)
    with analog_forward(layer, ["weight"], effects, torch.Generator()):
        layer(x).sum().backward()
    assert not layer._forward_hooks and not layer._forward_pre_hooks
    assert x.grad is not None and bool((x.grad != 0).any())
    assert layer.weight.grad is not None and bool((layer.weight.grad != 0).any())


@pytest.mark.parametrize(
    "section, word",
    [({}, "at least one"), ({"dac_bits": 1}, "dac_bits"), ({"output_noise": -1}, "output_noise")],
)
def test_bad_sections_are_refused(section, word):
    with pytest.raises(ValidationError, match=word):
        AnalogForward(**section)


def _trained_digits():
    data = nf.load_dataset("digits")
    model = nf.build_model("mlp", data.input_shape, data.num_outputs)
    nf.train(model, data, nf.create_method("standard"), nf.TrainConfig(epochs=2), progress=False)
    return model, data


def test_transfers_are_chip_indexed_and_the_effects_cost_accuracy():
    model, data = _trained_digits()
    noise = nf.create_noise({"name": "relative_gaussian", "zeta": 0.0})
    effects = AnalogForward(dac_bits=3, adc_bits=4, output_noise=1.0)

    def run(**kwargs):
        return nf.run_transfers(
            model, noise, data.x_test, data.y_test, generator=nf.generator(0, "t"), **kwargs
        ).accuracy

    whole = run(transfers=6, analog=effects)
    assert torch.equal(whole, run(transfers=6, analog=effects, chunk_size=1))
    assert torch.equal(whole[3:], run(transfers=3, first_chip=3, analog=effects))
    assert len(set(whole.tolist())) > 1  # each chip its own read noise
    ideal = run(transfers=1)
    assert float(whole.mean()) < float(ideal[0]) - 0.05
    with pytest.raises(ValueError, match="vectorise"):
        run(transfers=2, analog=effects, vectorise=True)


def test_training_through_the_effects_on_request():
    data = nf.load_dataset("digits")
    model = nf.build_model("mlp", data.input_shape, data.num_outputs)
    effects = AnalogForward(dac_bits=4, output_noise=0.1, train=True)
    nf.train(model, data, nf.create_method("standard"), nf.TrainConfig(epochs=2), analog=effects)
    x = data.x_test
    with torch.no_grad():
        acc = (forward(model, None, x).argmax(1) == data.y_test).double().mean()
    assert float(acc) > 0.6
    assert not any(m._forward_hooks for m in model.modules())


def test_compare_reads_the_forward_section(tmp_path):
    out = tmp_path / "run"
    args = ["compare", *QUICK_COMPARE, "--set", "forward.adc_bits=4", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(
        cli,
        ["compare", *QUICK_COMPARE, "--set", "forward.adc_bits=1", "--out", str(tmp_path / "bad")],
    )
    assert bad.exit_code == 2 and "adc_bits" in bad.output
