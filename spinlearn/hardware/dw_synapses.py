r"""DWSynapses: the differential pairs of domain-wall devices behind one weight tensor.

The device array a crossbar layer (:mod:`spinlearn.nn.dw`) reads its weights from and a programming
rule (:class:`spinlearn.learning.sgld.DWSGLD`) writes to with pulses; the wall physics is in
:mod:`spinlearn.devices.domain_wall`, consecutive arrays share flat storage in
:class:`~spinlearn.hardware.dw_bank.SynapseBank`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spinlearn._random import own_generator
from spinlearn.devices.domain_wall import DomainWall, conductance, read_noise_s
from spinlearn.errors import ConfigError


class DWSynapses(nn.Module):
    """Differential pairs of domain-wall devices behind one weight tensor.

    Walls are kept in *weight-direction* coordinates ``u``: ``u = z`` for G+ and ``u = -z`` for G-
    (``z``: offset from the middle of the track), so that a rise of ``w`` is a rise of ``u`` on
    either device and, for the linear response, ``w = (w_max / L) (u+ + u-)``. Per update only one
    device of a pair is pulsed, the *active* one (one draw per weight); every ``rebalance_every``
    updates the device nearer the middle of its track becomes the active one, so that programming
    keeps headroom both ways and neither device drifts to an end.

    Buffers: ``u`` (2, *shape): active then passive device; ``velocity`` and ``diffusion``
    (2, *shape): their factors on the nominal v0 and D; ``plus_active`` (*shape): the active device
    is G+. Programming (:class:`~spinlearn.learning.sgld.DWSGLD`) re-points them to views into a
    :class:`~spinlearn.hardware.dw_bank.SynapseBank` shared with other tensors, and works on that.
    """

    #: State keys that describe the chip (each device's factors) rather than what it learned (walls).
    DEVICE_KEYS = ("velocity", "diffusion")

    def __init__(
        self,
        initial: torch.Tensor,
        kind: DomainWall,
        w_max: float,
        generator: torch.Generator | None = None,
        rebalance_every: int = 8,
    ):
        super().__init__()
        if not w_max > 0:
            raise ConfigError(f"w_max = {w_max!r}: must be > 0")
        self.params = kind.params
        self.w_max = float(w_max)
        self.alpha = self.w_max / (self.params.g_max_s - self.params.g_min_s)  # weight per siemens
        self.generator = generator = own_generator(generator, initial.device)
        self.rebalance_every = rebalance_every
        shape = (2, *initial.shape)
        pop = kind.sample(shape, generator, initial.dtype)
        self.register_buffer("velocity", pop.velocity)
        self.register_buffer("diffusion", pop.diffusion)
        self.register_buffer("u", torch.empty(shape, dtype=initial.dtype, device=initial.device))
        self.register_buffer(
            "plus_active", torch.ones(initial.shape, dtype=torch.bool, device=initial.device)
        )
        self.set_exact(initial)

    @property
    def weight_per_m(self) -> float:
        """Nominal dw/du of one device, ``w_max / L`` (exact for the linear response)."""
        return self.w_max / self.params.track_length_m

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Wall offsets ``(z+, z-)`` of G+ and G- from the middle of their tracks (m)."""
        plus = torch.where(self.plus_active, self.u[0], self.u[1])
        minus = torch.where(self.plus_active, self.u[1], self.u[0])
        return plus, -minus

    def set_exact(self, weight: torch.Tensor) -> None:
        """Write-verify ``weight`` (clipped to +/- w_max): G+ and G- placed symmetrically about the
        middle of their range."""
        p = self.params
        frac = (weight / self.w_max).clamp(-1.0, 1.0)
        g = 0.5 * (1.0 + torch.stack((frac, -frac)))  # G+ and G- as fractions of their range
        if p.response == "saturating":
            g = torch.atanh((g * math.tanh(p.saturation)).clamp(max=1 - 1e-7)) / p.saturation
        z_plus, z_minus = (g - 0.5) * p.track_length_m
        self.plus_active.fill_(True)
        self.u[0] = z_plus
        self.u[1] = -z_minus

    def weight(self) -> torch.Tensor:
        """Noise-free ``alpha (G+ - G-)``."""
        if self.params.response == "linear":  # no need to know which device is which
            return (self.u[0] + self.u[1]).mul_(self.weight_per_m)
        z_plus, z_minus = self.offsets()
        return self.alpha * (conductance(z_plus, self.params) - conductance(z_minus, self.params))

    def read_noise(self) -> torch.Tensor | None:
        """``alpha (dG+ - dG-)`` of one noisy read of both devices, or None without read noise."""
        if self.params.read_noise == 0:
            return None
        noise = read_noise_s(self.u.shape, self.params, self.generator, self.u.dtype)
        return self.alpha * (noise[0] - noise[1])


__all__ = ["DWSynapses"]
