"""MTJActivation: a layer of MTJ neurons whose gradients come from twin devices (AFD)."""

from __future__ import annotations

import torch
from torch import nn

from spinlearn.devices.mtj import MTJPopulation
from spinlearn.energy import Ledger
from spinlearn.errors import ConfigError, TrainingDiverged
from spinlearn.hardware.backend import Backend
from spinlearn.hardware.simulated import SimulatedBackend
from spinlearn.learning.afd import AFDConfig, TwinCalibration, measured_slope, twin_derivative
from spinlearn.learning.afd_fused import FusedAFD


class MTJActivation(nn.Module):
    """``width`` MTJ neurons driven through ``backend``; output is the measured, normalised voltage.

    Forward: the pre-activation ``z`` becomes the current ``I = z I_scale`` through each neuron
    device; the output is ``y = V(I) / V_scale`` as read by the backend (read noise included).
    While gradients are recorded, each twin is read at ``I + dI`` in the same shot and the measured
    slope ``dy/dz = f'(I) I_scale / V_scale`` is kept for the backward pass (see
    :mod:`spinlearn.learning.afd`). Without gradients (evaluation) only the neurons are read.
    On the simulated backend's CPU fast path, the read, calibration and slope run as one fused
    pass (:mod:`spinlearn.learning.afd_fused`); ``fused=False`` keeps the reference composition.

    Scales default to the backend's nominal device: ``I_scale = I_s``, ``V_scale = I_s (R_P+R_AP)/2``.
    Because inputs and outputs are normalised by them, the nominal resistances (``r_p_ohm``,
    ``tmr0``) set only the scale of the read voltages (and the read energy), not what the network
    learns; the device-to-device spread, the read noise and the twins' mismatch do.

    ``MTJActivation(32)`` makes 32 neurons on a backend of its own (a :class:`SimulatedBackend` of
    nominal devices, drawn from its own generator: :mod:`spinlearn._random`); pass ``backend`` to
    share one (one chip, one energy ledger) and ``group`` to name the neurons on it (default
    ``neurons<k>``, ``k`` counting the backend's groups).

    The layer's ``state_dict`` holds its chip: the per-device parameters of the neurons and twins
    (simulated backends) and the twin calibration, so that ``load_state_dict`` puts the saved
    devices back (:func:`spinlearn.nn.transfer_weights` keeps the target's devices instead).
    """

    def __init__(
        self,
        width: int,
        backend: Backend | None = None,
        group: str | None = None,
        afd: AFDConfig | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.width = width
        self.fused = fused
        self._fused_step: FusedAFD | None = None
        backend = backend if backend is not None else SimulatedBackend(dtype=dtype)
        self.backend = backend
        self.group = group if group is not None else f"neurons{len(backend.groups())}"
        self.afd = afd or AFDConfig()
        self.i_scale_a = backend.params.current_scale_a
        self.v_scale_v = backend.params.voltage_scale_v
        device = backend.tensor_device if device is None else torch.device(device)
        min_step = 1024 * torch.finfo(dtype).eps * self.i_scale_a
        if self.afd.delta_i_a < min_step:
            raise ConfigError(
                f"afd.delta_i_a = {self.afd.delta_i_a:g}: below the {dtype} resolution of the "
                f"currents; use >= {min_step:.2g} A"
            )
        backend.allocate(self.group, width)
        #: (reads, sum of |I V| in W) of the twin calibration when no ledger was attached to book it
        #: (``spinlearn.track_energy`` books it later as calibration); None when one was.
        self.calibration_reads: tuple[int, float] | None = None
        self.calibration = None
        if self.afd.calibrate:
            self.calibration = self._calibrate(dtype, device)

    #: One MTJ neuron stands for one digital activation unit (the energy baseline counts it so).
    IS_ACTIVATION = True

    def _calibrate(self, dtype: torch.dtype, device: torch.device) -> TwinCalibration:
        """Measure the twin mismatch, booked as ``calibration`` in the backend's ledger, or kept in
        :attr:`calibration_reads` for a ledger attached later."""
        backend = self.backend
        attached = backend.ledger
        ledger = attached if attached is not None else Ledger()
        backend.ledger = ledger
        try:
            with ledger.in_phase("calibration"):
                return TwinCalibration.measure(backend, self.group, self.width, self.afd, dtype, device)
        finally:
            backend.ledger = attached
            if attached is None:
                joules = ledger.joules["calibration"]["mtj_read"]
                self.calibration_reads = (
                    ledger.counts["calibration"]["mtj_read"],
                    joules / ledger.config.t_read_s,
                )

    #: State keys (under the layer's prefix) that describe its chip rather than what it learned.
    DEVICE_KEYS = ("neurons.", "twins.", "calibration.")

    def chip_state(self) -> dict[str, torch.Tensor]:
        """The chip as tensors: each neuron's and twin's parameters (``neurons.<field>``,
        ``twins.<field>``; on a backend that simulates them) and the twin calibration
        (``calibration.offsets_v``, ``calibration.grid_a`` = first current and step)."""
        out: dict[str, torch.Tensor] = {}
        if isinstance(self.backend, SimulatedBackend):
            for name, twin in (("neurons", False), ("twins", True)):
                pop = self.backend.population(self.group, twin)
                out.update({f"{name}.{field}": value for field, value in zip(pop._fields, pop, strict=True)})
        if self.calibration is not None:
            c = self.calibration
            out["calibration.offsets_v"] = c.offsets_v
            out["calibration.grid_a"] = torch.tensor([c.i_min_a, c.step_a], dtype=torch.float64)
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for key, value in self.chip_state().items():
            destination[prefix + key] = value if keep_vars else value.detach()

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        ours = [prefix + key for key in self.chip_state()]
        unexpected_keys[:] = [k for k in unexpected_keys if k not in ours]
        absent = [k for k in ours if k not in state_dict]
        if absent:  # the target's own chip stays (transfer_weights); strict loading reports them
            if strict:
                missing_keys.extend(absent)
            return
        saved = {key[len(prefix) :]: state_dict[key] for key in ours}
        if isinstance(self.backend, SimulatedBackend):
            neurons, twins = (
                MTJPopulation(*(saved[f"{name}.{field}"] for field in MTJPopulation._fields))
                for name in ("neurons", "twins")
            )
            self.backend.set_population(self.group, neurons, twins)
        if self.calibration is not None:
            first, step = saved["calibration.grid_a"].tolist()
            offsets = saved["calibration.offsets_v"].to(self.calibration.offsets_v)
            self.calibration = TwinCalibration(first, step, offsets)
        self._fused_step = None
        if getattr(self.backend, "fast", False):  # the curves a trained layer read through
            self.backend.curve_table(self.group, self.afd.delta_i_a)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        training = torch.is_grad_enabled() and z.requires_grad
        if training and self.fused and FusedAFD.applies(self.backend, self.calibration, z):
            measured = self._fused(z)
            if measured is not None:
                return measured_slope(z, *measured)
        current = z.detach() * self.i_scale_a
        if not training:
            return self.backend.read(self.group, current) / self.v_scale_v
        # One sum instead of an elementwise isfinite: a non-finite element makes it non-finite (a
        # finite overflow needs currents of ~1e34 A, diverged all the same).
        if not torch.isfinite(current.sum()):
            raise TrainingDiverged(f"non-finite input current to MTJ layer {self.group!r}")
        v, v_twin = self.backend.read_pair(self.group, current, self.afd.delta_i_a)
        mismatch = self.calibration(current) if self.calibration is not None else 0.0
        slope = twin_derivative(v, v_twin, self.afd.delta_i_a, mismatch, self.i_scale_a / self.v_scale_v)
        return measured_slope(z, v * (1.0 / self.v_scale_v), slope)

    def _fused(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        step = self._fused_step
        if step is None:
            table = self.backend.curve_table(self.group, self.afd.delta_i_a)
            step = self._fused_step = FusedAFD(
                self.backend, table, self.calibration, self.i_scale_a, self.v_scale_v, self.afd.delta_i_a
            )
        return step(z)

    def extra_repr(self) -> str:
        return f"width={self.width}, group={self.group!r}, delta_i_a={self.afd.delta_i_a:g}"
