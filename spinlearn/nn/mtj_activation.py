"""MTJActivation: a layer of MTJ neurons whose gradients come from twin devices (AFD)."""

from __future__ import annotations

import torch
from torch import nn

from spinlearn.errors import ConfigError, TrainingDiverged
from spinlearn.hardware.backend import Backend
from spinlearn.learning.afd import AFDConfig, TwinCalibration, measured_slope, twin_derivative


class MTJActivation(nn.Module):
    """``width`` MTJ neurons driven through ``backend``; output is the measured, normalised voltage.

    Forward: the pre-activation ``z`` becomes the current ``I = z I_scale`` through each neuron
    device; the output is ``y = V(I) / V_scale`` as read by the backend (read noise included).
    While gradients are recorded, each twin is read at ``I + dI`` in the same shot and the measured
    slope ``dy/dz = f'(I) I_scale / V_scale`` is kept for the backward pass (see
    :mod:`spinlearn.learning.afd`). Without gradients (evaluation) only the neurons are read.

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
    ) -> None:
        super().__init__()
        self.width = width
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
        current = z.detach() * self.i_scale_a
        if not (torch.is_grad_enabled() and z.requires_grad):
            return self.backend.read(self.group, current) / self.v_scale_v
        # One sum instead of an elementwise isfinite: a non-finite element makes it non-finite (a
        # finite overflow needs currents of ~1e34 A, diverged all the same).
        if not torch.isfinite(current.sum()):
            raise TrainingDiverged(f"non-finite input current to MTJ layer {self.group!r}")
        v, v_twin = self.backend.read_pair(self.group, current, self.afd.delta_i_a)
        mismatch = self.calibration(current) if self.calibration is not None else 0.0
        slope = twin_derivative(v, v_twin, self.afd.delta_i_a, mismatch, self.i_scale_a / self.v_scale_v)
        return measured_slope(z, v * (1.0 / self.v_scale_v), slope)

    def extra_repr(self) -> str:
        return f"width={self.width}, group={self.group!r}, delta_i_a={self.afd.delta_i_a:g}"
