r"""Crossbar layers of domain-wall synapses: every weight is a differential pair ``w = alpha (G+ - G-)``.

A weight is never written by arithmetic: after initialisation (a write-verify to the initial value,
as a chip is set up before training) it changes only through programming pulses sent by
:class:`spinlearn.learning.sgld.DWSGLD`, and the layer's ``weight`` (and ``bias``) parameter is what
the devices read back. ``alpha = w_max / (G_max - G_min)``, so one full track of one device spans
``w_max``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from spinlearn.devices.domain_wall import DomainWall
from spinlearn.hardware.dw_synapses import DWSynapses

_SYNAPSES = {"weight": "synapses", "bias": "bias_synapses"}  # parameter -> the devices behind it


class _DWLayer(nn.Module):
    """A crossbar of DW pairs: each weight tensor is a parameter read from its devices.

    A parameter is refreshed from its devices (its ``synapses``) after every programming step;
    arithmetic on it is overwritten by the next :meth:`refresh`. All parameters of one crossbar
    carry the same ``crossbar`` key: the optimizer gives them one quantisation step, as one
    programming circuit drives the whole array.
    """

    def _attach(self, name: str, matrix: torch.Tensor, kind: DomainWall, w_max: float, generator) -> None:
        synapses = DWSynapses(matrix, kind, w_max, generator)
        parameter = nn.Parameter(synapses.weight())
        parameter.synapses = synapses  # how the optimizer finds the devices behind it
        if "_crossbar" not in self.__dict__:
            self._crossbar = object()  # a token: a deep copy of the layer gets its own
        parameter.crossbar = self._crossbar
        self.add_module(_SYNAPSES[name], synapses)
        self.register_parameter(name, parameter)

    def _read(self, name: str) -> torch.Tensor:
        """Parameter ``name`` as the forward pass reads it (with the devices' read noise, if any)."""
        noise = getattr(self, _SYNAPSES[name]).read_noise()
        parameter = getattr(self, name)
        return parameter if noise is None else parameter + noise

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-read every parameter from its devices (after programming or a state load)."""
        for name, synapses_name in _SYNAPSES.items():
            parameter = getattr(self, name, None)
            if parameter is not None:
                parameter.copy_(getattr(self, synapses_name).weight())


class DWLinear(_DWLayer):
    """``y = x W^T + b`` with ``W`` and ``b`` on one crossbar of DW pairs; ``w_max`` spans one device.

    The bias is one more column of the crossbar, driven by a constant input of 1 (as a crossbar
    realises it): the same devices, range and quantisation step as the weights. It is simulated
    as a tensor of its own so that the forward pass is ``F.linear`` with a bias, as fast as
    ``nn.Linear`` (appending a column of ones to the input cost about 0.35 ms of the MLP
    benchmark's 2.8 ms forward and backward pass).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        kind: DomainWall,
        w_max: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self._attach("weight", weight, kind, w_max, generator)
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self._attach("bias", bias, kind, w_max, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._read("weight"), None if self.bias is None else self._read("bias"))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, w_max={self.synapses.w_max:.3g}"
        )


class DWConv2d(_DWLayer):
    """A 2-D convolution (no bias) whose kernel lives on a crossbar of DW pairs,
    ``in_channels * k * k`` rows by ``out_channels`` columns."""

    def __init__(
        self,
        weight: torch.Tensor,
        kind: DomainWall,
        w_max: float,
        generator: torch.Generator,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels, self.in_channels, self.kernel_size, _ = weight.shape
        self.stride, self.padding = stride, padding
        self._attach("weight", weight, kind, w_max, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self._read("weight"), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class Layers:
    """Builds the linear and convolution layers of a model, either on domain-wall pairs (``kind``) or
    as plain float layers (``kind=None``), drawing the same initial weights from ``init`` in the same
    order, so that a DW network and its float twin start identical.

    Initial weights: Kaiming-uniform (bound ``sqrt(6 / fan_in)``) for convolutions, LeCun-uniform
    (``sqrt(3 / fan_in)``) for linear layers, zero biases. Each DW layer's ``w_max`` is
    ``weight_range`` times its initial bound.
    """

    def __init__(
        self,
        kind: DomainWall | None,
        init: torch.Generator,
        device_generator: torch.Generator | None = None,
        weight_range: float = 4.0,
    ) -> None:
        if kind is not None and device_generator is None:
            raise ValueError("DW layers need a device generator")
        self.kind, self.init, self.device_generator, self.weight_range = (
            kind,
            init,
            device_generator,
            weight_range,
        )

    def _uniform(self, shape: tuple[int, ...], bound: float) -> torch.Tensor:
        return (2 * torch.rand(shape, generator=self.init) - 1) * bound

    def linear(self, fan_in: int, fan_out: int, bias: bool = True) -> nn.Module:
        bound = math.sqrt(3.0 / fan_in)
        weight = self._uniform((fan_out, fan_in), bound)
        b = torch.zeros(fan_out) if bias else None
        if self.kind is None:
            layer = nn.Linear(fan_in, fan_out, bias=bias)
            return _load(layer, weight, b)
        device = self.device_generator.device
        b = None if b is None else b.to(device)
        return DWLinear(weight.to(device), b, self.kind, self.weight_range * bound, self.device_generator)

    def conv(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> nn.Module:
        bound = math.sqrt(6.0 / (c_in * k * k))
        weight = self._uniform((c_out, c_in, k, k), bound)
        if self.kind is None:
            return _load(nn.Conv2d(c_in, c_out, k, stride, padding, bias=False), weight, None)
        device = self.device_generator.device
        w_max = self.weight_range * bound
        return DWConv2d(weight.to(device), self.kind, w_max, self.device_generator, stride, padding)


def _load(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
