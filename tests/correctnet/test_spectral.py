"""Operator norms by persistent power iteration against exact references."""

import pytest
import torch
from torch import nn

from noiseproof.errors import NoiseproofError
from noiseproof.methods.spectral import SpectralNormEstimator, operator_norm
from reference.conv_operator import conv_matrix, conv_operator_norm


@pytest.mark.parametrize("shape", [(20, 30), (64, 7), (1, 5)])
def test_linear_matches_matrix_norm(shape):
    torch.manual_seed(0)
    layer = nn.Linear(shape[1], shape[0])
    exact = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    assert operator_norm(layer, iterations=2000, tol=1e-10) == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"padding": 1}, (3, 6, 6)),
        ({"padding": 0, "stride": 2}, (2, 7, 7)),
        ({"padding": 2, "dilation": 2}, (2, 5, 5)),
        ({"padding": 1, "groups": 2}, (4, 5, 5)),
    ],
)
def test_conv_matches_brute_force_operator_norm(kwargs, shape):
    torch.manual_seed(1)
    conv = nn.Conv2d(shape[0], 4, 3, **kwargs)
    exact = conv_operator_norm(conv, shape)
    estimate = operator_norm(conv, shape, iterations=3000, tol=1e-10)
    assert estimate == pytest.approx(exact, rel=1e-3)


def test_conv_operator_norm_differs_from_reshaped_kernel_norm():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    reshaped = float(torch.linalg.matrix_norm(conv.weight.detach().reshape(3, -1), ord=2))
    exact = conv_operator_norm(conv, (2, 8, 8))
    assert abs(exact - reshaped) > 0.05 * exact  # the reshaped kernel is not the operator


def test_estimate_is_differentiable_with_the_rank_one_gradient():
    torch.manual_seed(3)
    layer = nn.Linear(6, 5)
    est = SpectralNormEstimator({"l": layer}, torch.Generator().manual_seed(0))
    for _ in range(300):
        est.estimate("l", layer.weight.detach(), 1)
    sigma = est.estimate("l", layer.weight, 1)
    sigma.backward()
    u, _, vh = torch.linalg.svd(layer.weight.detach())
    expected = torch.outer(u[:, 0], vh[0])  # d sigma_max / dW = u1 v1^T (sign-free product)
    assert torch.allclose(layer.weight.grad, expected, atol=1e-4)


def test_vector_persists_between_calls():
    torch.manual_seed(4)
    layer = nn.Linear(40, 40)
    exact = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    est = SpectralNormEstimator({"l": layer}, torch.Generator().manual_seed(0))
    errors = []
    for _ in range(50):
        errors.append(exact - float(est.estimate("l", layer.weight.detach(), 1)))
    assert all(e >= -1e-5 for e in errors)  # a Rayleigh-type estimate never overshoots
    assert errors[-1] < 0.2 * errors[0]  # one step per call keeps converging: state is kept


def test_conv_needs_an_observed_input_shape():
    est = SpectralNormEstimator({"c": nn.Conv2d(1, 1, 3)}, torch.Generator().manual_seed(0))
    with pytest.raises(NoiseproofError, match="input size"):
        est.estimate("c", est.modules["c"].weight)


def test_reference_conv_matrix_reproduces_the_convolution():
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    direct = conv._conv_forward(x[None], conv.weight.detach().double(), None).reshape(-1)
    assert torch.allclose(conv_matrix(conv, (2, 5, 5)) @ x.reshape(-1), direct)
