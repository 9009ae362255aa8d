"""Multi-layer perceptrons with a pluggable activation, initialised from an explicit generator."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


def init_linear(layer: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """LeCun-uniform weights (variance 1/fan_in) and zero bias, drawn from ``generator``."""
    bound = math.sqrt(3.0 / layer.in_features)
    with torch.no_grad():
        w = torch.rand(layer.weight.shape, generator=generator, device=generator.device)
        layer.weight.copy_((2 * w - 1) * bound)
        layer.bias.zero_()
    return layer


def mlp(
    sizes: Sequence[int],
    activation: Callable[[int, int], nn.Module],
    generator: torch.Generator,
) -> nn.Sequential:
    """``sizes = (in, h1, ..., out)``; ``activation(width, index)`` builds hidden layer ``index``'s."""
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be >= 1 and at least two, got {list(sizes)}")
    layers: list[nn.Module] = []
    for k, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(init_linear(nn.Linear(fan_in, fan_out), generator))
        if k < len(sizes) - 2:
            layers.append(activation(fan_out, k))
    return nn.Sequential(*layers)
