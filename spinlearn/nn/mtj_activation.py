"""MTJActivation: a layer of MTJ neurons whose gradients come from twin devices (AFD)."""

from __future__ import annotations

import torch
from torch import nn

from spinlearn.errors import ConfigError, TrainingDiverged
from spinlearn.hardware.backend import Backend
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
    """

    def __init__(
        self,
        width: int,
        backend: Backend,
        group: str,
        afd: AFDConfig | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.width = width
        self.fused = fused
        self._fused_step: FusedAFD | None = None
        self.backend = backend
        self.group = group
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
        backend.allocate(group, width)
        self.calibration = (
            TwinCalibration.measure(backend, group, width, self.afd, dtype, device)
            if self.afd.calibrate
            else None
        )

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
