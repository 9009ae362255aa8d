"""How devices are driven and read: the Backend protocol and its implementations, and the
domain-wall synapse arrays that programming rules write to.

``BACKENDS`` maps the names of ``spinlearn run --backend NAME`` to classes; each has a
``from_run(device_cfg, ctx, dtype)`` constructor. :mod:`.visa` imports PyVISA only when connecting.
"""

from spinlearn.hardware.backend import Backend
from spinlearn.hardware.dw_bank import SynapseBank
from spinlearn.hardware.dw_synapses import DWSynapses
from spinlearn.hardware.errors import InstrumentError, SafetyLimitError
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.hardware.simulated import SimulatedBackend
from spinlearn.hardware.visa import VisaBackend

BACKENDS = {"simulated": SimulatedBackend, "visa": VisaBackend}

__all__ = [
    "BACKENDS",
    "Backend",
    "DWSynapses",
    "DeviceProfile",
    "InstrumentError",
    "SafetyLimitError",
    "SimulatedBackend",
    "SynapseBank",
    "VisaBackend",
]
