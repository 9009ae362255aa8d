"""Device profile: hard safety limits, the channel of every device and, after calibration, its fit.

A profile is a YAML file. ``spinlearn calibrate`` reads one holding limits (or uses the built-in
defaults) and writes one that adds the fitted MTJ parameters of every device. Layout (SI units;
every key is optional)::

    limits:                 # defaults for every device
      max_current_a: 1.2e-3 # largest |I| a device may carry; a larger request is refused
      max_voltage_v: 1.5    # the device's voltage rating (below its breakdown)
      compliance_v: 1.4     # the source-measure unit's voltage clamp, <= max_voltage_v
    instrument:
      model: "2400"         # text the *IDN? answer must contain
      timeout_s: 10         # longest wait for one answer
      retries: 2            # extra tries after a timeout
      max_list_points: 100  # bias points per list sweep (Keithley 2400: 100)
      nplc: 0.01            # integration time per reading, in power-line cycles
    pairs: 32               # neuron/twin pairs on channels (1, 2), (3, 4), ...; or a list:
    # pairs:
    #   - neuron: {channel: 1}
    #     twin: {channel: 2, max_current_a: 8.0e-4}   # per-device limits override `limits`
    nominal: {...}          # written by calibrate: medians of the fitted parameters
    calibration: {...}      # written by calibrate: instrument, sweep, residuals (kept verbatim)

Each device entry may also hold ``fit`` (the keys of :class:`~spinlearn.devices.mtj.MTJParams`) and
``fit_quality`` (kept verbatim). Pairs are handed out in file order: the first allocated layer of
``n`` neurons gets pairs ``0 .. n-1``.

Safety model: ``max_current_a`` bounds every request; ``compliance_v`` is set on the instrument
before its output is enabled, so the junction never sees more; when the device has a fit, a request
whose predicted voltage exceeds ``compliance_v`` is refused as well (a reading in compliance is not
a valid measurement). All three are checked before a command is written.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from spinlearn._fields import Validated, param
from spinlearn.config import read_yaml
from spinlearn.devices.mtj import MTJParams, MTJPopulation, fitted_population
from spinlearn.errors import ConfigError
from spinlearn.hardware.scpi import MAX_CURRENT_A, MAX_VOLTAGE_V

DEFAULT_PAIRS = 32
MAX_CHANNEL = 9999


@dataclass(frozen=True)
class DeviceLimits(Validated):
    """Hard limits of one device. Defaults suit the simulated 1 kOhm junctions of the virtual bench."""

    max_current_a: float = param(
        1.2e-3,
        "largest |current| the device may carry (A); a larger request is refused",
        gt=0,
        le=MAX_CURRENT_A,
    )
    max_voltage_v: float = param(
        1.5, "voltage rating of the device, below its breakdown (V)", gt=0, le=MAX_VOLTAGE_V
    )
    compliance_v: float = param(
        1.4,
        "voltage compliance of the source-measure unit for this device (V); <= max_voltage_v",
        gt=0,
        le=MAX_VOLTAGE_V,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compliance_v > self.max_voltage_v:
            raise ConfigError(
                f"compliance_v = {self.compliance_v:g}: must be <= max_voltage_v ({self.max_voltage_v:g})"
            )


@dataclass(frozen=True)
class InstrumentSettings(Validated):
    """How the source-measure unit is driven."""

    model: str = param("2400", "text the instrument's *IDN? answer must contain")
    timeout_s: float = param(10.0, "longest wait for one answer (s)", gt=0, le=600)
    retries: int = param(
        2, "extra tries after a timeout (the instrument is re-synchronised first)", ge=0, le=10
    )
    max_list_points: int = param(
        100, "bias points per source-list sweep, one trigger (Keithley 2400: 100)", ge=1, le=100_000
    )
    nplc: float = param(0.01, "integration time per reading, in power-line cycles", ge=0.01, le=10)


@dataclass(frozen=True)
class DeviceEntry:
    """One device: its switch channel, its limits and (after calibration) its fitted parameters."""

    channel: int
    limits: DeviceLimits
    fit: MTJParams | None = None
    fit_quality: dict[str, Any] | None = None


_LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(DeviceLimits))
_ENTRY_KEYS = ("channel", *_LIMIT_KEYS, "fit", "fit_quality")
_TOP_KEYS = ("limits", "instrument", "pairs", "nominal", "calibration")


def _check_keys(mapping: Any, allowed: tuple[str, ...], where: str) -> dict:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(allowed)})")
    return mapping


def _build(cls, values: dict, where: str, base=None):
    """``cls(**values)`` (or ``base`` updated by ``values``), a ConfigError naming ``where`` if bad."""
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _params(values: Any, where: str) -> MTJParams:
    keys = tuple(f.name for f in dataclasses.fields(MTJParams))
    return _build(MTJParams, _check_keys(values, keys, where), where)


@dataclass(frozen=True)
class DeviceProfile:
    """Limits, channels and fits of the neuron/twin device pairs behind an instrument."""

    limits: DeviceLimits
    instrument: InstrumentSettings
    pairs: tuple[tuple[DeviceEntry, DeviceEntry], ...]
    nominal: MTJParams | None = None
    calibration: dict[str, Any] | None = None
    source: str = "built-in defaults"

    @classmethod
    def default(cls, pairs: int = DEFAULT_PAIRS) -> DeviceProfile:
        """Built-in limits, ``pairs`` pairs on channels (1, 2), (3, 4), ..."""
        return cls.from_dict({"pairs": pairs}, "built-in defaults")

    @classmethod
    def load(cls, path: str | Path) -> DeviceProfile:
        data = read_yaml(path, "device profile")
        return cls.from_dict(data if data is not None else {}, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str) -> DeviceProfile:
        where = f"device profile {source}"
        _check_keys(data, _TOP_KEYS, where)
        raw_limits = _check_keys(data.get("limits", {}), _LIMIT_KEYS, f"{where}: limits")
        limits = _build(DeviceLimits, raw_limits, f"{where}: limits")
        inst_keys = tuple(f.name for f in dataclasses.fields(InstrumentSettings))
        inst = _check_keys(data.get("instrument", {}), inst_keys, f"{where}: instrument")
        instrument = _build(InstrumentSettings, inst, f"{where}: instrument")
        raw_pairs = data.get("pairs", DEFAULT_PAIRS)
        if isinstance(raw_pairs, int) and not isinstance(raw_pairs, bool):
            if not 1 <= raw_pairs <= MAX_CHANNEL // 2:
                raise ConfigError(f"{where}: pairs = {raw_pairs}: must be >= 1 and <= {MAX_CHANNEL // 2}")
            raw_pairs = [
                {"neuron": {"channel": 2 * k + 1}, "twin": {"channel": 2 * k + 2}} for k in range(raw_pairs)
            ]
        if not isinstance(raw_pairs, list) or not raw_pairs:
            raise ConfigError(f"{where}: pairs must be a count or a non-empty list of neuron/twin entries")
        pairs = []
        for k, pair in enumerate(raw_pairs):
            _check_keys(pair, ("neuron", "twin"), f"{where}: pairs[{k}]")
            if set(pair) != {"neuron", "twin"}:
                raise ConfigError(f"{where}: pairs[{k}] needs both a neuron and a twin")
            pairs.append(
                tuple(_entry(pair[r], limits, f"{where}: pairs[{k}].{r}") for r in ("neuron", "twin"))
            )
        channels = [e.channel for pair in pairs for e in pair]
        if len(set(channels)) != len(channels):
            dup = next(c for c in channels if channels.count(c) > 1)
            raise ConfigError(f"{where}: channel {dup} is used by more than one device")
        nominal = _params(data["nominal"], f"{where}: nominal") if data.get("nominal") is not None else None
        calibration = data.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise ConfigError(f"{where}: calibration must be a mapping")
        return cls(limits, instrument, tuple(pairs), nominal, calibration, source)

    # -- queries ---------------------------------------------------------------------------------
    @property
    def devices(self) -> list[DeviceEntry]:
        """Every device, pair by pair: neuron 0, twin 0, neuron 1, twin 1, ..."""
        return [e for pair in self.pairs for e in pair]

    @property
    def fitted(self) -> bool:
        """Whether every device has fitted parameters."""
        return all(e.fit is not None for e in self.devices)

    def population(self, start: int, n: int, twin: bool, dtype=torch.float32, device="cpu") -> MTJPopulation:
        """Fitted parameters of the neurons (or twins) of pairs ``start .. start + n - 1``."""
        self.require_pairs(start + n)
        entries = [pair[1 if twin else 0] for pair in self.pairs[start : start + n]]
        missing = [e.channel for e in entries if e.fit is None]
        if missing:
            raise ConfigError(
                f"device profile {self.source} has no fitted parameters for channel {missing[0]} "
                "(run `spinlearn calibrate` to fit them)"
            )
        return fitted_population([e.fit for e in entries], device, dtype)

    def require_pairs(self, needed: int) -> None:
        if needed > len(self.pairs):
            raise ConfigError(
                f"device profile {self.source} has {len(self.pairs)} neuron/twin pairs; "
                f"the network needs {needed}"
            )

    # -- writing -----------------------------------------------------------------------------------
    def without_fits(self) -> DeviceProfile:
        """The same limits and channels, no fitted parameters (what a fresh calibration starts from)."""
        pairs = tuple(
            tuple(dataclasses.replace(e, fit=None, fit_quality=None) for e in pair) for pair in self.pairs
        )
        return dataclasses.replace(self, pairs=pairs, nominal=None, calibration=None)

    def with_fits(
        self,
        fits: list[MTJParams],
        quality: list[dict[str, Any]],
        nominal: MTJParams,
        calibration: dict[str, Any],
    ) -> DeviceProfile:
        """This profile with one fit per device (in :attr:`devices` order)."""
        if len(fits) != len(quality) or len(fits) != 2 * len(self.pairs):
            raise ValueError(f"expected {2 * len(self.pairs)} fits, got {len(fits)}")
        pairs = tuple(
            tuple(
                dataclasses.replace(e, fit=fits[2 * k + r], fit_quality=quality[2 * k + r])
                for r, e in enumerate(p)
            )
            for k, p in enumerate(self.pairs)
        )
        return dataclasses.replace(self, pairs=pairs, nominal=nominal, calibration=calibration)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "limits": dataclasses.asdict(self.limits),
            "instrument": dataclasses.asdict(self.instrument),
            "pairs": [
                {role: _entry_dict(e, self.limits) for role, e in zip(("neuron", "twin"), p, strict=True)}
                for p in self.pairs
            ],
        }
        if self.nominal is not None:
            out["nominal"] = dataclasses.asdict(self.nominal)
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out

    def to_yaml(self) -> str:
        header = "# spinlearn device profile: limits (SI units), channels and fitted MTJ parameters\n"
        return header + yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)


def _entry(raw: Any, limits: DeviceLimits, where: str) -> DeviceEntry:
    _check_keys(raw, _ENTRY_KEYS, where)
    channel = raw.get("channel")
    if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= MAX_CHANNEL:
        raise ConfigError(f"{where}: channel = {channel!r}: must be an integer >= 1 and <= {MAX_CHANNEL}")
    own = {k: raw[k] for k in _LIMIT_KEYS if k in raw}
    device_limits = _build(DeviceLimits, own, where, base=limits) if own else limits
    fit = _params(raw["fit"], f"{where}.fit") if raw.get("fit") is not None else None
    quality = raw.get("fit_quality")
    if quality is not None and not isinstance(quality, dict):
        raise ConfigError(f"{where}.fit_quality must be a mapping")
    return DeviceEntry(channel, device_limits, fit, quality)


def _entry_dict(e: DeviceEntry, defaults: DeviceLimits) -> dict[str, Any]:
    out: dict[str, Any] = {"channel": e.channel}
    for key in _LIMIT_KEYS:  # only the overrides, so the file stays readable
        if getattr(e.limits, key) != getattr(defaults, key):
            out[key] = getattr(e.limits, key)
    if e.fit is not None:
        out["fit"] = dataclasses.asdict(e.fit)
    if e.fit_quality is not None:
        out["fit_quality"] = e.fit_quality
    return out


def _plain(v: Any) -> Any:
    """YAML-safe plain data: floats rounded to 7 significant digits for a readable file."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.7g}")
    return v
