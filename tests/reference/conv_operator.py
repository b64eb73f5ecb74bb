"""Brute-force operator norm of a convolution: build its full matrix column by column."""

from __future__ import annotations

import math

import torch
from torch import nn


def conv_matrix(conv: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The [n_out, n_in] matrix of the bias-free convolution on inputs of `input_shape`.

    Column j is the flattened convolution of the j-th standard basis input.
    """
    n_in = math.prod(input_shape)
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *input_shape)
    weight = conv.weight.detach().double()
    with torch.no_grad():
        out = conv._conv_forward(basis, weight, None)
    return out.reshape(n_in, -1).T


def conv_operator_norm(conv: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Largest singular value of `conv_matrix` (float64, exact SVD)."""
    return float(torch.linalg.matrix_norm(conv_matrix(conv, input_shape), ord=2))
