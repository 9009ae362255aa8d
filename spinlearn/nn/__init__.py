"""Torch modules built from devices."""

from spinlearn.nn.mlp import init_linear, mlp
from spinlearn.nn.mtj_activation import MTJActivation

__all__ = ["MTJActivation", "init_linear", "mlp"]
