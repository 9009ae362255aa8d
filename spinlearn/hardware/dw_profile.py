"""Domain-wall profile: measured synapses' fitted parameters, per device and their median (YAML).

``spinlearn fit dw`` writes one (:mod:`.fit_dw`); ``--set device.profile=FILE``
in the domain-wall experiments, or :func:`domain_wall` in Python, builds the synapses from it.
Layout (SI units, the keys of :class:`~spinlearn.devices.domain_wall.DWParams`)::

    kind: domain_wall
    nominal:                  # the median device: replaces these parameters of the model
      threshold_a: 1.0e-3
      velocity_m_per_s: 1.0
      ...
    devices:                  # every measured device (kept verbatim)
      - {device: A1, fit: {threshold_a: ..., ...}, fit_quality: {...}}
    fit: {...}                # how the fit was made (kept verbatim)

An array drawn from the profile has the median device's threshold, conductance range and edge
length, and its devices' mobility and diffusion spread by ``nominal.variability`` (the spread the
fit measured across the devices, when it could), as the model's variability describes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spinlearn.config import read_yaml
from spinlearn.devices.domain_wall import DomainWall, DWParams
from spinlearn.errors import ConfigError
from spinlearn.hardware.profile import _plain

KIND = "domain_wall"
_TOP_KEYS = ("kind", "nominal", "devices", "fit")
_PARAM_KEYS = tuple(f.name for f in dataclasses.fields(DWParams))


@dataclass(frozen=True)
class DWProfile:
    """The fitted median device (``nominal``: keys of DWParams), every device's fit, and the record."""

    nominal: dict[str, Any]
    devices: tuple[dict[str, Any], ...] = ()
    fit: dict[str, Any] | None = None
    source: str = "built"

    @classmethod
    def load(cls, path: str | Path) -> DWProfile:
        return cls.from_dict(read_yaml(path, "domain-wall profile"), str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str) -> DWProfile:
        where = f"domain-wall profile {source}"
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ConfigError(
                f"{where} is not a domain-wall profile (no `kind: {KIND}`; see `spinlearn fit dw`)"
            )
        unknown = [k for k in data if k not in _TOP_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
        nominal = data.get("nominal")
        if not isinstance(nominal, dict) or not nominal:
            raise ConfigError(f"{where}: nominal must be a mapping of domain-wall parameters")
        bad = [k for k in nominal if k not in _PARAM_KEYS]
        if bad:
            raise ConfigError(f"{where}: nominal: unknown key {bad[0]!r} (known: {', '.join(_PARAM_KEYS)})")
        devices = data.get("devices") or []
        if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
            raise ConfigError(f"{where}: devices must be a list of mappings")
        fit = data.get("fit")
        if fit is not None and not isinstance(fit, dict):
            raise ConfigError(f"{where}: fit must be a mapping")
        profile = cls(dict(nominal), tuple(devices), fit, source)
        profile.params()  # every value checked now, with the file named
        return profile

    def params(self, base: DWParams | None = None) -> DWParams:
        """``base`` (default: the model's defaults) with the profile's median device."""
        try:
            return dataclasses.replace(base or DWParams(), **self.nominal)
        except ConfigError as exc:
            raise ConfigError(f"domain-wall profile {self.source}: nominal.{exc}") from None

    def to_yaml(self) -> str:
        data = {"kind": KIND, "nominal": self.nominal, "devices": list(self.devices), "fit": self.fit or {}}
        header = "# spinlearn domain-wall profile: fitted parameters (SI units) per device and their median\n"
        return header + yaml.safe_dump(_plain(data), sort_keys=False)


def domain_wall(path: str | Path, base: DWParams | None = None) -> DomainWall:
    """The kind of synapse the profile at ``path`` describes (``base``: the parameters it leaves)."""
    return DomainWall(DWProfile.load(path).params(base))
