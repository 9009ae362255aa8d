"""Pieces shared by the MTJ experiments: device and model sections, backend construction, sweeps."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from spinlearn._fields import Validated, param
from spinlearn.checkpoint import Snapshot, restore
from spinlearn.config import DataConfig, TrainConfig
from spinlearn.devices.mtj import DEFAULT_TWIN_MISMATCH, MTJ, MTJParams, fitted_population, voltage
from spinlearn.energy import EnergyConfig, Ledger
from spinlearn.errors import ConfigError
from spinlearn.experiments.registry import RunContext
from spinlearn.hardware import BACKENDS, Backend, DeviceProfile
from spinlearn.hardware.bench import Bench
from spinlearn.learning.afd import DEFAULT_CALIBRATION_RANGE, AFDConfig
from spinlearn.nn import MTJActivation, mlp


@dataclass(frozen=True)
class DeviceConfig(MTJParams):
    """The neuron devices: nominal MTJ parameters plus the spread of the fabricated population."""

    variability: float = param(0.1, "relative device-to-device spread of R_P, TMR0, I_s, I_0", ge=0, le=1)
    twin_mismatch: float | None = param(
        DEFAULT_TWIN_MISMATCH,
        "relative spread of each twin around its own neuron (adjacent devices); "
        "null draws twins independently with spread `variability`",
        ge=0,
        le=1,
    )
    profile: str | None = param(
        None,
        "device profile YAML from `spinlearn calibrate`: the simulated backend then uses its fitted "
        "devices (and its median device for the scales); --backend visa its limits and channels",
    )

    def mtj(self) -> MTJ:
        """The device kind these settings describe."""
        return MTJ(self.as_base(MTJParams), self.variability)


@dataclass(frozen=True)
class ExperimentConfig:
    """Sections shared by every experiment; experiments subclass it to add their own."""

    device: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    energy: EnergyConfig = dataclasses.field(default_factory=EnergyConfig)


@dataclass(frozen=True)
class MLPConfig(Validated):
    """A fully connected network."""

    hidden: tuple[int, ...] = param((16,), "widths of the hidden layers", ge=1, le=100_000, min_len=1)
    activation: str = param("mtj", "mtj (devices, AFD) or tanh (digital baseline)", choices=("mtj", "tanh"))


def profile_calibration_range(cfg: Any) -> tuple[Any, str | None]:
    """``cfg`` with ``afd.calibration_range`` derived from the device profile when the config names
    a profile and leaves the range unset: the widest range (in units of I_s, at most the default)
    that keeps every device of the profile within its limits, so that the documented two steps
    (``spinlearn calibrate``, then ``run --backend visa --set device.profile=FILE``) work with
    defaults. Returns the config and a line saying what was derived (None when nothing was)."""
    afd, device = getattr(cfg, "afd", None), getattr(cfg, "device", None)
    if not isinstance(afd, AFDConfig) or afd.calibration_range is not None:
        return cfg, None
    if not isinstance(device, DeviceConfig) or not device.profile:
        return cfg, None
    profile = DeviceProfile.load(device.profile)
    params = profile.nominal or device.mtj().params
    every = np.arange(len(profile.devices))
    widest = min(
        Bench(None, profile).safe_range(every, params.i0_a, params.current_scale_a),
        _below_compliance(profile, params),
    )
    if widest <= 0:
        raise ConfigError(
            f"device profile {device.profile}: its limits leave no current range around I_0 = "
            f"{params.i0_a:.3g} A to calibrate the twins in (afd.calibration: false skips it)"
        )
    chosen = min(widest, DEFAULT_CALIBRATION_RANGE)
    note = f"afd.calibration_range = {chosen:g} (I_s), the widest the limits of {device.profile} allow"
    return dataclasses.replace(cfg, afd=dataclasses.replace(afd, calibration_range=chosen)), note


#: The calibration sweep keeps the voltage its devices are predicted to reach below this share of the
#: compliance: the prediction (a fit, or the nominal device where the profile holds no fits) misses
#: device-to-device spread and read noise, and a reading in compliance stops the run.
COMPLIANCE_MARGIN = 0.8


def _below_compliance(profile: DeviceProfile, params) -> float:
    """Largest ``r`` (in I_s, 2 decimals, rounded down) for which every device's predicted voltage
    at ``I_0 +/- r I_s`` stays within ``COMPLIANCE_MARGIN`` of its compliance."""
    devices = profile.devices
    fits = [e.fit or params for e in devices]
    pop = fitted_population(fits)
    allowed = COMPLIANCE_MARGIN * torch.tensor([e.limits.compliance_v for e in devices], dtype=torch.float64)

    def fits_at(r: float) -> bool:
        ends = torch.tensor(
            [params.i0_a - r * params.current_scale_a, params.i0_a + r * params.current_scale_a]
        )
        return bool((voltage(ends[:, None].double(), pop).abs() <= allowed).all())

    lo, hi = 0.0, DEFAULT_CALIBRATION_RANGE
    if fits_at(hi):
        return hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fits_at(mid) else (lo, mid)
    return math.floor(lo * 100) / 100


def make_backend(
    device_cfg: DeviceConfig, ctx: RunContext, dtype=torch.float32, ledger: Ledger | None = None
) -> Backend:
    """The backend a run trains through: ``ctx.backend`` (the simulator unless the run names an
    instrument), registered on ``ctx`` so that the runner records and closes it."""
    backend = BACKENDS[ctx.backend].from_run(device_cfg, ctx, dtype)
    ctx.backends.append(backend)
    backend.ledger = ledger
    return backend


def mtj_mlp(
    sizes: list[int],
    activation: str,
    backend: Backend | None,
    afd: AFDConfig,
    device: torch.device,
    generator: torch.Generator,
) -> nn.Sequential:
    """An MLP whose hidden activations are MTJ neurons on ``backend`` (or digital tanh).

    ``generator`` (on the CPU) draws the initial weights.
    """

    def act(width: int, index: int) -> nn.Module:
        if activation == "tanh":
            return nn.Tanh()
        return MTJActivation(width, backend, f"hidden{index}", afd, device=device)

    return mlp(sizes, act, generator).to(device)


def restore_kept(model: nn.Module, saved: dict, snapshot: Snapshot) -> None:
    """Put a kept seed back (:mod:`spinlearn.experiments.kept`): the model's state (its chip included) and the
    snapshot's objects (its backend, the run generator) as they stood before the final score."""
    model.load_state_dict(saved["model"])
    for name, obj in snapshot.objects.items():
        if name in saved["context"]:
            restore(obj, saved["context"][name])


def sweep_devices(
    backend: Backend, group: str, width: int, n_show: int = 8, points: int = 201
) -> dict[str, list]:
    """Measured V(I) of the first ``n_show`` neurons of ``group`` and of their twins (for plots)."""
    p = backend.params
    currents = torch.linspace(p.i0_a - 8 * p.is_a, p.i0_a + 8 * p.is_a, points)
    grid = currents[:, None].expand(points, width).to(backend.tensor_device)
    neuron = backend.read(group, grid)[:, :n_show]
    twin = backend.read(group, grid, twin=True)[:, :n_show]
    return {
        "current_a": currents.tolist(),
        "neuron_v": neuron.T.cpu().tolist(),
        "twin_v": twin.T.cpu().tolist(),
    }
