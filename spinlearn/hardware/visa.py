"""VisaBackend: train through a real source-measure unit over PyVISA, inside hard safety limits.

Three layers, each usable alone, each in a module of its own:

* :class:`~.sourcemeter.SourceMeter` (:mod:`.sourcemeter`): a Keithley 2400-compatible SourceMeter
  and a switch matrix over VISA; timeouts are retried, a wrong or garbled answer stops at once.
* :class:`~.bench.Bench` (:mod:`.bench`): the devices of a :class:`~.profile.DeviceProfile` behind a
  SourceMeter, every request checked against the profile's limits *before a command is written*.
* :class:`VisaBackend` (here): the :class:`~.backend.Backend` protocol on a Bench; a minibatch of
  neuron and twin biases goes out in ``ceil(2 * batch * width / max_list_points)`` round trips.

The output is switched off on every error, on :meth:`VisaBackend.close`, on leaving a ``with``
block and on Ctrl-C (the runner closes every backend of a run in a ``finally``).

AFD calibration and the limits: :class:`~spinlearn.learning.afd.TwinCalibration` sweeps
``I_0 +/- calibration_range * I_s`` (+/-3.2 mA at the defaults), beyond a real junction's
breakdown. The grid is not clipped silently (the interpolation would then be wrong without a
word); the sweep is refused, and the message names the ``--set afd.calibration_range=`` that fits
the profile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spinlearn.devices.mtj import MTJParams
from spinlearn.energy import Ledger
from spinlearn.errors import ConfigError
from spinlearn.hardware.bench import Bench
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.hardware.sourcemeter import SourceMeter


class VisaBackend:
    """The Backend protocol on an instrument: neuron/twin pairs of a device profile, over VISA.

    ``params`` sets the current and voltage scales of the layers (the profile's fitted nominal
    device, when it has one). Reads come back as ``dtype`` tensors on ``tensor_device``.
    """

    def __init__(
        self,
        bench: Bench,
        params: MTJParams,
        *,
        tensor_device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.bench = bench
        self.params = params
        self.tensor_device = torch.device(tensor_device)
        self.dtype = dtype
        self.ledger: Ledger | None = None
        self._groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._next_pair = 0
        self._reads = 0

    @classmethod
    def open(
        cls,
        resource: str,
        profile: DeviceProfile,
        params: MTJParams | None = None,
        *,
        visa_library: str = "@py",
        tensor_device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> VisaBackend:
        """Connect to ``resource`` and check it; ``params`` default to the profile's nominal device."""
        if params is None:
            params = profile.nominal or MTJParams()
        meter = SourceMeter.for_profile(resource, profile, visa_library)
        return cls(Bench(meter, profile), params, tensor_device=tensor_device, dtype=dtype)

    @classmethod
    def from_run(cls, device_cfg, ctx, dtype: torch.dtype = torch.float32) -> VisaBackend:
        """The backend of a ``spinlearn run --backend visa --resource RES`` (``device.profile`` needed)."""
        if not ctx.resource:
            raise ConfigError("--backend visa needs --resource (a VISA resource name)")
        if not device_cfg.profile:
            raise ConfigError(
                "--backend visa needs a device profile with the devices' limits: --set device.profile=FILE "
                "(`spinlearn calibrate` writes one)"
            )
        profile = DeviceProfile.load(device_cfg.profile)
        params = profile.nominal or device_cfg.mtj().params
        return cls.open(
            ctx.resource,
            profile,
            params,
            visa_library=ctx.visa_library,
            tensor_device=ctx.device,
            dtype=dtype,
        )

    # -- Backend protocol ----------------------------------------------------------------------------
    def groups(self) -> dict[str, int]:
        return {name: len(neurons) for name, (neurons, _) in self._groups.items()}

    def allocate(self, group: str, n: int) -> None:
        if group in self._groups:
            raise ValueError(f"device group {group!r} is already allocated")
        self.bench.profile.require_pairs(self._next_pair + n)
        pairs = np.arange(self._next_pair, self._next_pair + n)
        self._groups[group] = (2 * pairs, 2 * pairs + 1)
        for j, (a, b) in enumerate(zip(2 * pairs, 2 * pairs + 1, strict=True)):
            self.bench.names[a], self.bench.names[b] = f"{group} neuron {j}", f"{group} twin {j}"
        self._next_pair += n

    def _indices(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._groups[group]
        except KeyError:
            raise KeyError(f"device group {group!r} was never allocated") from None

    def read(self, group: str, current_a: torch.Tensor, *, twin: bool = False) -> torch.Tensor:
        index = self._indices(group)[1 if twin else 0]
        return self._measure(group, index, current_a)

    def read_pair(
        self, group: str, current_a: torch.Tensor, delta_i_a: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        neurons, twins = self._indices(group)
        both = torch.cat((current_a, current_a + delta_i_a), dim=-1)
        return self._measure(group, np.concatenate((neurons, twins)), both).tensor_split(2, dim=-1)

    def _measure(self, group: str, index: np.ndarray, current_a: torch.Tensor) -> torch.Tensor:
        if current_a.shape[-1] != len(index):
            raise ValueError(
                f"group {group!r} has {len(index)} devices, got currents of shape {tuple(current_a.shape)}"
            )
        flat = current_a.detach().to("cpu", torch.float64).reshape(-1, len(index)).numpy()
        rows = flat.shape[0]
        volts, _ = self.bench.measure(np.tile(index, rows), flat.ravel(), lambda: self._hint(group))
        self._reads += volts.size
        v = torch.from_numpy(volts).reshape(current_a.shape).to(self.tensor_device, self.dtype)
        if self.ledger is not None:
            self.ledger.device_reads(current_a, v)
        return v

    def _hint(self, group: str) -> str:
        index = np.concatenate(self._indices(group))
        p = self.params
        r = self.bench.safe_range(index, p.i0_a, p.current_scale_a)
        return (
            "; AFD calibration sweeps I_0 +/- afd.calibration_range x I_s: "
            f"--set afd.calibration_range={r:g} or less fits this profile; "
            "in training, lower train.lr or raise the profile's limits"
        )

    @property
    def measurement_count(self) -> int:
        return self._reads

    def state_dict(self) -> dict[str, Any]:
        """The counters a resumed run carries on (for checkpoints); the devices are on the bench."""
        meter = self.bench.meter
        return {
            "reads": self._reads,
            "readings": meter.readings,
            "round_trips": meter.round_trips,
            "busy_s": meter.busy_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        meter = self.bench.meter
        self._reads = state["reads"]
        meter.readings, meter.round_trips, meter.busy_s = (
            state["readings"],
            state["round_trips"],
            state["busy_s"],
        )

    def instrument_figures(self) -> dict[str, float]:
        """Readings taken through the instrument and the wall time spent waiting on it (s)."""
        meter = self.bench.meter
        return {
            "instrument_measurements": float(meter.readings),
            "instrument_time_s": round(meter.busy_s, 3),
            "instrument_round_trips": float(meter.round_trips),
        }

    def describe(self) -> dict[str, Any]:
        meter, profile = self.bench.meter, self.bench.profile
        return {
            "kind": "visa",
            "resource": meter.resource,
            "visa_library": meter.visa_library,
            "identity": meter.identity,
            "settings": meter.settings_record(),
            "profile": profile.source,
            "limits": {
                "max_current_a": float(self.bench.max_current.min()),
                "max_voltage_v": float(self.bench.max_voltage.min()),
                "compliance_v": float(self.bench.compliance.min()),
            },
            "fitted_profile": profile.fitted,
            "groups": {
                name: {
                    "neuron_channels": self.bench.channels[a].tolist(),
                    "twin_channels": self.bench.channels[b].tolist(),
                }
                for name, (a, b) in self._groups.items()
            },
            **self.instrument_figures(),
        }

    def close(self) -> None:
        self.bench.close()

    def __enter__(self) -> VisaBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
