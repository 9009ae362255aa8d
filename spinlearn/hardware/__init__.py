"""How devices are driven and read: the Backend protocol and its implementations."""

from spinlearn.hardware.backend import Backend
from spinlearn.hardware.simulated import SimulatedBackend

BACKENDS = {"simulated": SimulatedBackend}

__all__ = ["BACKENDS", "Backend", "SimulatedBackend"]
