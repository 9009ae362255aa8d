"""How devices are driven and read: the Backend protocol and its implementations.

``BACKENDS`` maps the names of ``spinlearn run --backend NAME`` to classes; each has a
``from_run(device_cfg, ctx, dtype)`` constructor. :mod:`.visa` imports PyVISA only when connecting.
"""

from spinlearn.hardware.backend import Backend
from spinlearn.hardware.errors import InstrumentError, SafetyLimitError
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.hardware.simulated import SimulatedBackend
from spinlearn.hardware.visa import VisaBackend

BACKENDS = {"simulated": SimulatedBackend, "visa": VisaBackend}

__all__ = [
    "BACKENDS",
    "Backend",
    "DeviceProfile",
    "InstrumentError",
    "SafetyLimitError",
    "SimulatedBackend",
    "VisaBackend",
]
