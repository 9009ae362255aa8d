"""Device physics, one device kind per module, vectorised over populations (pure torch)."""

from spinlearn.devices.mtj import MTJ, MTJParams, MTJPopulation

DEVICES = {"mtj": MTJ}

__all__ = ["DEVICES", "MTJ", "MTJParams", "MTJPopulation"]
