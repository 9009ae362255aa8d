"""Pieces shared by the MTJ experiments: model section, backend construction, device sweeps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spinlearn._fields import Validated, param
from spinlearn.config import DeviceConfig
from spinlearn.energy import Ledger
from spinlearn.experiments.registry import RunContext
from spinlearn.hardware import BACKENDS, Backend
from spinlearn.learning.afd import AFDConfig
from spinlearn.nn import MTJActivation, mlp


@dataclass(frozen=True)
class MLPConfig(Validated):
    """A fully connected network."""

    hidden: tuple[int, ...] = param((16,), "widths of the hidden layers", ge=1, le=100_000, min_len=1)
    activation: str = param("mtj", "mtj (devices, AFD) or tanh (digital baseline)", choices=("mtj", "tanh"))


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
