"""Models for the domain-wall study, built from a :class:`~spinlearn.nn.dw.Layers` factory (DW or float).

* :func:`mlp`: ``in -> hidden... -> out`` with ReLU (or any activation, MTJ neurons included).
* :func:`resnet18`: the standard CIFAR variant of ResNet-18 (He et al. 2016): a 3x3 stem without
  pooling, four stages of two BasicBlocks at widths 64, 128, 256, 512 (times ``width``), strides
  1, 2, 2, 2, 1x1 projection shortcuts, global average pooling and one linear layer. At ``width=1``
  and 10 classes it has 11,173,962 parameters. Batch normalisation stays digital (its 0.1 % of the
  parameters are peripheral scale and offset, not synapses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from spinlearn.nn.dw import Layers


def mlp(
    sizes: Sequence[int], layers: Layers, activation: Callable[[int, int], nn.Module] | None = None
) -> nn.Sequential:
    """``sizes = (in, h1, ..., out)`` with ``activation(width, k)`` after hidden layer ``k`` (ReLU by
    default; MTJ neurons make the all-spintronic chip)."""
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be >= 1 and at least two, got {list(sizes)}")
    modules: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        modules.append(layers.linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            modules.append(activation(sizes[k + 1], k) if activation else nn.ReLU())
    return nn.Sequential(*modules)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; identity or 1x1-projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, layers: Layers) -> None:
        super().__init__()
        self.conv1 = layers.conv(c_in, c_out, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = layers.conv(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(layers.conv(c_in, c_out, 1, stride, 0), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(
        self, layers: Layers, num_classes: int = 10, in_channels: int = 3, width: float = 1.0
    ) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            layers.conv(in_channels, widths[0], 3, 1, 1), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for b in range(2):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, layers))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = layers.linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def resnet18(layers: Layers, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet18:
    return ResNet18(layers, num_classes, in_channels, width)
