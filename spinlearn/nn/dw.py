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

from spinlearn._random import own_generator
from spinlearn.devices.domain_wall import DomainWall
from spinlearn.errors import ConfigError
from spinlearn.hardware.dw_synapses import DWSynapses

DEFAULT_WEIGHT_RANGE = 4.0  # w_max over the initial weights' bound: room to learn, fine steps

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
    """``y = x W^T + b`` with ``W`` and ``b`` on one crossbar of DW pairs, built like ``nn.Linear``.

    ``DWLinear(64, 32)`` is a 64-input, 32-output crossbar of nominal walls (``DomainWall()``)
    written to LeCun-uniform initial weights (bound ``sqrt(3 / in_features)``, zero bias), with
    ``w_max`` (the weight one full track spans) ``weight_range`` times that bound. ``kind`` picks
    the device, ``weight``/``bias`` the initial values, ``generator`` the stream of the devices'
    spread, read noise and (without ``weight``) the initial weights (:mod:`spinlearn._random`).

    The bias is one more column of the crossbar, driven by a constant input of 1 (as a crossbar
    realises it): the same devices, range and quantisation step as the weights. It is simulated
    as a tensor of its own so that the forward pass is ``F.linear`` with a bias, as fast as
    ``nn.Linear`` (appending a column of ones to the input cost about 0.35 ms of the MLP
    benchmark's 2.8 ms forward and backward pass).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        kind: DomainWall | None = None,
        w_max: float | None = None,
        weight_range: float = DEFAULT_WEIGHT_RANGE,
        weight: torch.Tensor | None = None,
        bias_init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = out_features, in_features
        generator = own_generator(generator)
        bound = math.sqrt(3.0 / in_features)
        if weight is None:
            weight = _uniform((out_features, in_features), bound, generator)
        if tuple(weight.shape) != (out_features, in_features):
            raise ConfigError(
                f"weight of shape {tuple(weight.shape)}: expected ({out_features}, {in_features})"
            )
        kind = kind or DomainWall()
        w_max = weight_range * bound if w_max is None else w_max
        self._attach("weight", weight, kind, w_max, generator)
        if not bias:
            self.register_parameter("bias", None)
        else:
            b = torch.zeros(out_features, dtype=weight.dtype, device=weight.device)
            self._attach("bias", b if bias_init is None else bias_init, kind, w_max, generator)

    @classmethod
    def from_weight(
        cls,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        kind: DomainWall,
        w_max: float,
        generator: torch.Generator | None = None,
    ) -> DWLinear:
        """A crossbar written to ``weight`` (out x in) and ``bias`` (or none): a trained float layer
        moved onto devices, say."""
        out_features, in_features = weight.shape
        return cls(
            in_features,
            out_features,
            bias is not None,
            kind=kind,
            w_max=w_max,
            weight=weight,
            bias_init=bias,
            generator=generator,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._read("weight"), None if self.bias is None else self._read("bias"))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, w_max={self.synapses.w_max:.3g}"
        )


class DWConv2d(_DWLayer):
    """A 2-D convolution (no bias) whose kernel lives on a crossbar of DW pairs,
    ``in_channels * k * k`` rows by ``out_channels`` columns; built like ``nn.Conv2d``, with
    Kaiming-uniform initial weights (bound ``sqrt(6 / fan_in)``) unless ``weight`` is given, and
    ``kind``, ``w_max``, ``weight_range`` and ``generator`` as for :class:`DWLinear`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        kind: DomainWall | None = None,
        w_max: float | None = None,
        weight_range: float = DEFAULT_WEIGHT_RANGE,
        weight: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.out_channels, self.in_channels, self.kernel_size = out_channels, in_channels, kernel_size
        self.stride, self.padding = stride, padding
        generator = own_generator(generator)
        bound = math.sqrt(6.0 / (in_channels * kernel_size * kernel_size))
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        if weight is None:
            weight = _uniform(shape, bound, generator)
        if tuple(weight.shape) != shape:
            raise ConfigError(f"weight of shape {tuple(weight.shape)}: expected {shape}")
        w_max = weight_range * bound if w_max is None else w_max
        self._attach("weight", weight, kind or DomainWall(), w_max, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self._read("weight"), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform in ``[-bound, bound)``, drawn on the generator's device."""
    return (2 * torch.rand(shape, generator=generator, device=generator.device) - 1) * bound


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
        weight_range: float = DEFAULT_WEIGHT_RANGE,
    ) -> None:
        if kind is not None:
            device_generator = own_generator(device_generator)
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
        w_max = self.weight_range * bound
        return DWLinear.from_weight(weight.to(device), b, self.kind, w_max, self.device_generator)

    def conv(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> nn.Module:
        bound = math.sqrt(6.0 / (c_in * k * k))
        weight = self._uniform((c_out, c_in, k, k), bound)
        if self.kind is None:
            return _load(nn.Conv2d(c_in, c_out, k, stride, padding, bias=False), weight, None)
        device = self.device_generator.device
        return DWConv2d(
            c_in,
            c_out,
            k,
            stride,
            padding,
            kind=self.kind,
            w_max=self.weight_range * bound,
            weight=weight.to(device),
            generator=self.device_generator,
        )


def _load(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
