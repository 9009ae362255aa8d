"""The devices of a device profile behind a SourceMeter, every request checked against the limits.

Every request is checked against the :class:`~.profile.DeviceProfile` *before a command is
written*: non-finite currents, ``|I| > max_current_a``, and (for fitted devices) a predicted
``|V(I)| > compliance_v`` are refused with :class:`~.errors.SafetyLimitError`. The compliance of
each sweep is the smallest of its devices'. A reading in compliance or beyond ``max_voltage_v``
stops the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from spinlearn.devices import mtj
from spinlearn.hardware import scpi
from spinlearn.hardware.errors import InstrumentError, SafetyLimitError
from spinlearn.hardware.profile import DeviceProfile
from spinlearn.hardware.sourcemeter import SourceMeter


def _si(value: float, unit: str) -> str:
    """``0.0032, 'A'`` -> ``3.2 mA``."""
    if not math.isfinite(value):
        return f"{value} {unit}"
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


class Bench:
    """The devices of ``profile`` behind ``meter``; every request checked before it is written.

    Devices are indexed as in :attr:`DeviceProfile.devices` (pair ``k``: neuron ``2k``, twin
    ``2k + 1``). With ``allow_compliance`` (calibration sweeps) readings in compliance are returned
    flagged instead of stopping the run. Without a ``meter`` it only checks requests
    (:meth:`violations`, :meth:`safe_range`).
    """

    def __init__(
        self, meter: SourceMeter | None, profile: DeviceProfile, *, allow_compliance: bool = False
    ) -> None:
        self.meter = meter
        self.profile = profile
        self.allow_compliance = allow_compliance
        devices = profile.devices
        self.channels = np.array([e.channel for e in devices], dtype=np.int64)
        self.max_current = np.array([e.limits.max_current_a for e in devices])
        self.max_voltage = np.array([e.limits.max_voltage_v for e in devices])
        self.compliance = np.array([e.limits.compliance_v for e in devices])
        self.fits = mtj.fitted_population([e.fit for e in devices]) if profile.fitted else None
        self.names = [f"pair {k // 2} {'twin' if k % 2 else 'neuron'}" for k in range(len(devices))]

    def label(self, index: int) -> str:
        return f"{self.names[index]} (channel {self.channels[index]})"

    def violations(self, index: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Per request: 0 fine, 1 not finite, 2 beyond max_current_a, 3 predicted beyond compliance."""
        code = np.zeros(current.shape, dtype=np.int64)
        finite = np.isfinite(current)
        code[~finite] = 1
        code[finite & (np.abs(np.where(finite, current, 0.0)) > self.max_current[index])] = 2
        if self.fits is not None:
            ok = code == 0
            if ok.any():
                idx = torch.from_numpy(index[ok])
                pop = mtj.MTJPopulation(*(p[idx] for p in self.fits))
                v = mtj.voltage(torch.from_numpy(current[ok]), pop).numpy()
                over = np.zeros_like(ok)
                over[ok] = np.abs(v) > self.compliance[index[ok]]
                code[over] = 3
        return code

    def check(self, index: np.ndarray, current: np.ndarray, hint: Callable[[], str] | None = None) -> None:
        """Raise SafetyLimitError for the first request beyond the profile (nothing is written)."""
        code = self.violations(index, current)
        if not code.any():
            return
        k = int(np.flatnonzero(code)[0])
        d, i = int(index[k]), float(current[k])
        where, source = self.label(d), f"(device profile {self.profile.source})"
        if code[k] == 1:
            why = f"non-finite current ({i}) requested for {where} {source}"
        elif code[k] == 2:
            limit = _si(self.max_current[d], "A")
            why = f"{_si(i, 'A')} requested through {where} is beyond its max_current_a {limit} {source}"
        else:
            v = float(
                mtj.voltage(
                    torch.tensor([i], dtype=torch.float64),
                    mtj.MTJPopulation(*(p[d : d + 1] for p in self.fits)),
                )
            )
            why = (
                f"{_si(i, 'A')} requested through {where}: its fit predicts {v:+.3g} V, beyond its "
                f"compliance_v {self.compliance[d]:g} V {source}"
            )
        raise SafetyLimitError(f"refused before writing to the instrument: {why}{hint() if hint else ''}")

    def measure(
        self, index: np.ndarray, current: np.ndarray, hint: Callable[[], str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voltages (V) and compliance flags of device ``index[k]`` biased at ``current[k]`` (A).

        The whole request is checked first; then it goes out in sweeps of ``max_list_points``.
        Any failure switches the output off before it propagates.
        """
        index = np.asarray(index, dtype=np.int64).ravel()
        current = scpi.as_written(np.asarray(current, dtype=np.float64).ravel())  # check what is sent
        try:
            self.check(index, current, hint)
            step = self.meter.settings.max_list_points
            volts = np.empty_like(current)
            clamped = np.zeros(current.shape, dtype=bool)
            for start in range(0, len(current), step):
                part = slice(start, start + step)
                compliance = float(self.compliance[index[part]].min())
                v, c = self.meter.sweep(
                    self.channels[index[part]].tolist(), current[part].tolist(), compliance
                )
                volts[part], clamped[part] = v, c
                self._check_reading(index[part], current[part], v, c)
            return volts, clamped
        except BaseException:
            self.meter.safe_off()
            raise

    def _check_reading(
        self, index: np.ndarray, current: np.ndarray, v: np.ndarray, clamped: np.ndarray
    ) -> None:
        over = np.abs(v) > self.max_voltage[index]
        if over.any():
            k = int(np.flatnonzero(over)[0])
            raise InstrumentError(
                f"{self.label(int(index[k]))} read {v[k]:+.4g} V at {_si(current[k], 'A')}, beyond its "
                f"max_voltage_v {self.max_voltage[index[k]]:g} V: stopped"
            )
        if clamped.any() and not self.allow_compliance:
            k = int(np.flatnonzero(clamped)[0])
            raise InstrumentError(
                f"{self.label(int(index[k]))} went into compliance ({v[k]:+.4g} V) at "
                f"{_si(current[k], 'A')}: the reading is not a measurement; lower the current (train.lr) "
                "or recalibrate the profile"
            )

    def safe_range(self, index: np.ndarray, centre_a: float, scale_a: float) -> float:
        """Largest ``r`` (2 decimals, rounded down) keeping every device of ``index`` safe at
        ``centre +/- r scale``."""

        def fits(r: float) -> bool:
            grid = np.array([centre_a - r * scale_a, centre_a + r * scale_a])
            idx = np.repeat(index, 2)
            return not self.violations(idx, np.tile(grid, len(index))).any()

        lo, hi = 0.0, 1000.0
        if not fits(lo):
            return 0.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return math.floor(lo * 100) / 100

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()
