"""The `forward:` section (DAC, output noise, ADC) reaches every on-chip projection of a
transformer: the built-in gpt's Linear layers and Hugging Face GPT-2's Conv1D layers."""

from __future__ import annotations

import torch
from torch import nn

from noiseproof.analog import AnalogForward, analog_forward, mvm_layers
from noiseproof.chip import chip_params, forward, is_transposed_linear
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from zoo import TINY_GPT2, VOCAB, token_stream_data

GPT = {"name": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 8, "block_size": 8}


def projections(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Linear) or is_transposed_linear(m)]


def test_every_projection_of_the_gpt_is_an_analog_mvm():
    torch.manual_seed(0)
    model = build_model(GPT, (6,), VOCAB)
    layers = mvm_layers(model, list(chip_params(model)))
    assert {id(m) for m in layers} == {id(m) for m in projections(model)}
    assert len(layers) == 2 * 4 + 1  # qkv, attention out, MLP in and out per block, the head


def test_every_conv1d_of_hugging_face_gpt2_is_an_analog_mvm():
    torch.manual_seed(0)
    model = build_model({"name": "huggingface", "config": TINY_GPT2}, (6,), VOCAB)
    layers = mvm_layers(model, list(chip_params(model)))
    conv1d = [m for m in model.modules() if is_transposed_linear(m)]
    assert len(conv1d) == 4 and all(any(m is layer for layer in layers) for m in conv1d)
    x = token_stream_data().x_test[:4]
    clean = forward(model, None, x)
    effects = AnalogForward(adc_bits=4, adc_range=2.0)
    with (
        torch.no_grad(),
        analog_forward(model, list(chip_params(model)), effects, torch.Generator()),
    ):
        quantised = forward(model, None, x)
    assert not torch.allclose(quantised, clean)  # the ADC acted on the projections


def test_analog_chips_of_a_language_model():
    torch.manual_seed(0)
    model, data = build_model(GPT, (6,), VOCAB), token_stream_data()
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.0})
    args = (model, noise, data.x_test, data.y_test, 3)
    digital = run_transfers(*args, torch.Generator().manual_seed(0))
    analog = run_transfers(
        *args, torch.Generator().manual_seed(0), analog=AnalogForward(output_noise=0.2)
    )
    assert len(set(digital.metrics["perplexity"].tolist())) == 1  # zeta 0: every chip is clean
    assert len(set(analog.metrics["perplexity"].tolist())) == 3  # output noise differs per chip
