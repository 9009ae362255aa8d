"""The Backend protocol: the only way training drives and reads devices.

A backend owns named *groups* of neuron devices, each neuron with a twin (a second, separately
fabricated device of the same kind, used by analog finite differences). Training code allocates a
group, applies currents and reads voltages; it never sees how the devices are realised, so the same
training runs on the in-process simulator or, through ``hardware.visa``, on a real instrument.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from spinlearn.devices.mtj import MTJParams
from spinlearn.energy import Ledger


@runtime_checkable
class Backend(Protocol):
    """Drives and reads neuron/twin device pairs. Currents in amperes, voltages in volts."""

    #: Nominal parameters of the devices behind this backend (sets the current/voltage scales).
    params: MTJParams
    #: Where the tensors passed to and returned by this backend live.
    tensor_device: torch.device
    #: Energy ledger that every read feeds (device energy, DAC and ADC conversions), or None.
    ledger: Ledger | None

    def allocate(self, group: str, n: int) -> None:
        """Reserve ``n`` neuron devices and their ``n`` twins under the name ``group``."""
        ...

    def groups(self) -> dict[str, int]:
        """The allocated groups and their sizes, in allocation order."""
        ...

    def read(self, group: str, current_a: torch.Tensor, *, twin: bool = False) -> torch.Tensor:
        """Apply ``current_a`` (shape ``(..., n)``) and return the measured voltages, same shape.

        Element ``[..., j]`` goes to device ``j`` of the group (its twin when ``twin`` is true).
        """
        ...

    def read_pair(
        self, group: str, current_a: torch.Tensor, delta_i_a: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the neurons at ``I`` and their twins at ``I + dI`` in one shot (one trigger)."""
        ...

    @property
    def measurement_count(self) -> int:
        """Number of single-device voltage reads made so far."""
        ...

    def describe(self) -> dict[str, Any]:
        """What this backend is (kind, instrument identity, settings), for ``summary.json``."""
        ...

    def close(self) -> None:
        """Release the devices (a real instrument switches its output off)."""
        ...
