"""Torch modules built from devices: MTJ neurons (:class:`MTJActivation`) and domain-wall
crossbars (:class:`DWLinear`, :class:`DWConv2d`, built by :class:`Layers`)."""

from spinlearn.nn.dw import DWConv2d, DWLinear, Layers
from spinlearn.nn.mlp import init_linear, mlp
from spinlearn.nn.mtj_activation import MTJActivation

__all__ = ["DWConv2d", "DWLinear", "Layers", "MTJActivation", "init_linear", "mlp"]
