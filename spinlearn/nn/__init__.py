"""Torch modules built from devices: MTJ neurons (:class:`MTJActivation`) and domain-wall
crossbars (:class:`DWLinear`, :class:`DWConv2d`, built by :class:`Layers`); a model's state holds its
chip (:mod:`spinlearn.nn.state`, :func:`transfer_weights`)."""

from spinlearn.nn.dw import DWConv2d, DWLinear, Layers
from spinlearn.nn.mlp import init_linear, mlp
from spinlearn.nn.mtj_activation import MTJActivation
from spinlearn.nn.state import device_keys, transfer_weights

__all__ = [
    "DWConv2d",
    "DWLinear",
    "Layers",
    "MTJActivation",
    "device_keys",
    "init_linear",
    "mlp",
    "transfer_weights",
]
