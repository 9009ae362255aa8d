"""Device populations: the parameters of ``n`` devices of one kind, one ``(n,)`` tensor per parameter.

A kind's population is a NamedTuple whose fields are named as the kind's nominal parameters
(:class:`~spinlearn.devices.mtj.MTJPopulation`, :class:`~spinlearn.devices.smtj.SMTJPopulation`),
so that one population can be built from a parameter set, or from one parameter set per device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: A population's ``size``: its number of devices.
size = property(lambda pop: int(pop[0].shape[0]), doc="The number of devices.")


def nominal(cls: Any, params: Any, n: int, device: torch.device | str, dtype: torch.dtype) -> Any:
    """``n`` identical devices: every field of ``cls`` holds the parameter of ``params`` of its name."""
    if n < 1:
        raise ValueError(f"population size must be >= 1, got {n}")
    return cls(
        *(torch.full((n,), float(getattr(params, f)), device=device, dtype=dtype) for f in cls._fields)
    )


def stacked(cls: Any, params: Sequence[Any], device: torch.device | str, dtype: torch.dtype) -> Any:
    """One device per entry of ``params`` (parameter sets such as fits), in their order."""
    return cls(
        *(torch.tensor([getattr(p, f) for p in params], dtype=dtype, device=device) for f in cls._fields)
    )
