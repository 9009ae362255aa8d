r"""Domain-wall (DW) memristor synapse: a wall on a track whose position sets the conductance.

Dalgaty et al. 2023, arXiv:2312.02771; see the study's page in the docs (docs/studies/dw-sgld.md).
The device model is tagged [I]: a reconstruction from standard domain-wall physics, since the
paper's device model is not public.

* **Conductance.** A wall at position :math:`x \in [0, L]` on a track of length ``L`` (the magnetic
  free layer of an MTJ stack, read through the tunnel barrier) gives

  .. math:: G(x) = G_{min} + (G_{max} - G_{min})\, x / L                       \quad\text{(linear)}

  .. math:: G(x) = G_{min} + (G_{max} - G_{min})\,\frac{\tanh(s x / L)}{\tanh s} \quad\text{(saturating)}

  The functions below take the position from the middle of the track, :math:`z = x - L/2 \in
  [-L/2, L/2]` (``offset_m``), which keeps the update arithmetic short.

* **A programming pulse** of current :math:`I` and width :math:`t` drives the wall through a
  disordered pinning landscape. Below the depinning current :math:`I_{th}` the wall stays put.
  Above it, it drifts at :math:`v = v_0 (I / I_{th} - 1)` and diffuses with constant :math:`D`
  (thermally activated hops between pinning sites), so one pulse moves it by

  .. math:: \Delta x \sim \mathcal{N}\!\left(\pm v_0 (I/I_{th} - 1)\, t,\; 2 D t\right)

  (sign: the pulse polarity). Amplitude and width therefore set the mean step and its spread
  *independently*: the overdrive :math:`I/I_{th}` sets the ratio of drift to diffusion, the width
  scales both. A train of :math:`n_+` push and :math:`n_-` pull pulses adds up to mean
  :math:`(n_+ - n_-)\mu` and variance :math:`(n_+ + n_-)\sigma^2` (sums of independent Gaussians, so
  one draw per device stands for the whole train, exactly).
* **Ends of the track.** Near an end the wall is held by the edge: a step towards an end is scaled
  by :math:`\min(1, d/\lambda)`, ``d`` the distance left to that end, and the wall never leaves
  :math:`[0, L]`.
* **Device-to-device variability.** Each device's :math:`v_0` and :math:`D` are multiplied by
  :math:`1 + \nu \xi` (:math:`\xi \sim N(0,1)`, floored at ``MIN_FACTOR``): the programming circuit
  sees the nominal device, the track its own.
* **Read noise** (optional): a conductance read adds Gaussian noise of rms
  ``read_noise * (G_max - G_min)``.
* **Energy** of a pulse: Joule heating in the track, :math:`I^2 R_{track} t`.

Everything is vectorised over arbitrary tensors of devices; random numbers come from the caller
(a ``torch.Generator`` or a :class:`spinlearn.noise.GaussianPool` drawn from one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from spinlearn._fields import Validated, affects, param
from spinlearn.errors import ConfigError

MIN_FACTOR = 0.05  # variability floor: a device's mobility and diffusion stay positive


@affects(
    accuracy=(
        "track_length_m",
        "response",
        "saturation",
        "velocity_m_per_s",
        "diffusion_m2_per_s",
        "edge_length_m",
        "variability",
        "read_noise",
    ),
    energy=(
        "g_min_s",
        "g_max_s",
        "threshold_a",
        "track_resistance_ohm",
    ),
    scale=(
        "g_min_s",
        "g_max_s",
        "threshold_a",
    ),
)
@dataclass(frozen=True)
class DWParams(Validated):
    """Nominal parameters of a domain-wall synapse (SI units). Defaults are [I] estimates."""

    track_length_m: float = param(1e-6, "length L of the wall's track (m)", gt=0, le=1)
    g_min_s: float = param(50e-6, "conductance G_min with the wall at x = 0 (S)", gt=0, le=1)
    g_max_s: float = param(100e-6, "conductance G_max with the wall at x = L (S)", gt=0, le=1)
    response: str = param("linear", "G(x): linear or saturating (tanh)", choices=("linear", "saturating"))
    saturation: float = param(2.0, "sharpness s of the saturating response tanh(s x/L)/tanh(s)", gt=0, le=100)
    threshold_a: float = param(
        1e-3, "depinning current I_th below which the wall does not move (A)", gt=0, le=10
    )
    velocity_m_per_s: float = param(1.0, "wall velocity v0 per unit overdrive I/I_th - 1 (m/s)", gt=0, le=1e4)
    diffusion_m2_per_s: float = param(
        2e-9, "diffusion constant D of the driven wall in the pinning landscape (m^2/s)", gt=0, le=1
    )
    edge_length_m: float = param(
        20e-9, "length lambda over which steps shrink near a track end (m)", gt=0, le=1
    )
    variability: float = param(0.1, "relative device-to-device spread of v0 and D", ge=0, le=1)
    read_noise: float = param(0.0, "rms conductance read noise, as a fraction of G_max - G_min", ge=0, le=1)
    track_resistance_ohm: float = param(
        500.0, "resistance of the track to the pulse current (ohm)", gt=0, le=1e9
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.g_max_s <= self.g_min_s:
            raise ConfigError(f"g_max_s = {self.g_max_s:g} must exceed g_min_s = {self.g_min_s:g}")


@dataclass(frozen=True)
class Pulse:
    """One programming pulse: current ``current_a`` (A) for ``width_s`` (s)."""

    current_a: float
    width_s: float

    def overdrive(self, params: DWParams) -> float:
        """``I / I_th - 1`` above depinning, else 0 (the wall does not move)."""
        return max(self.current_a / params.threshold_a - 1.0, 0.0)

    def mean_step_m(self, params: DWParams) -> float:
        """Nominal mean displacement ``v0 (I/I_th - 1) t`` (m)."""
        return params.velocity_m_per_s * self.overdrive(params) * self.width_s

    def step_variance_m2(self, params: DWParams) -> float:
        """Nominal variance ``2 D t`` of one displacement (m^2); zero below depinning."""
        return 2.0 * params.diffusion_m2_per_s * self.width_s if self.overdrive(params) > 0 else 0.0

    def energy_j(self, params: DWParams) -> float:
        """Joule energy ``I^2 R_track t`` of one pulse (J)."""
        return self.current_a**2 * params.track_resistance_ohm * self.width_s

    @classmethod
    def for_mean_step(cls, step_m: float, overdrive: float, params: DWParams) -> Pulse:
        """The pulse at ``I = (1 + overdrive) I_th`` whose nominal mean step is ``step_m``."""
        width = step_m / (params.velocity_m_per_s * overdrive)
        return cls((1.0 + overdrive) * params.threshold_a, width)

    @classmethod
    def for_variance(cls, variance_m2: float, overdrive: float, params: DWParams) -> Pulse:
        """The pulse at ``I = (1 + overdrive) I_th`` whose nominal step variance is ``variance_m2``."""
        width = variance_m2 / (2.0 * params.diffusion_m2_per_s)
        return cls((1.0 + overdrive) * params.threshold_a, width)


class DWPopulation(NamedTuple):
    """Per-device factors on the nominal mobility ``v0`` and diffusion ``D`` (same shape as the array)."""

    velocity: torch.Tensor
    diffusion: torch.Tensor


def sample_population(
    params: DWParams, shape: tuple[int, ...], generator: torch.Generator, dtype=torch.float32
) -> DWPopulation:
    """Devices of ``shape`` with relative spread ``params.variability`` of v0 and D."""
    xi = torch.randn((2, *shape), generator=generator, device=generator.device, dtype=dtype)
    factors = (1.0 + params.variability * xi).clamp_min(MIN_FACTOR)
    return DWPopulation(factors[0], factors[1])


def conductance(offset_m: torch.Tensor, params: DWParams) -> torch.Tensor:
    """G in siemens of walls at ``offset_m`` from the middle of the track (linear or saturating)."""
    frac = offset_m / params.track_length_m + 0.5
    if params.response == "saturating":
        s = params.saturation
        frac = torch.tanh(s * frac) / math.tanh(s)
    return params.g_min_s + (params.g_max_s - params.g_min_s) * frac


def read_noise_s(shape: tuple[int, ...], params: DWParams, generator: torch.Generator, dtype=torch.float32):
    """Gaussian noise (S) of one conductance read per device: rms ``read_noise * (G_max - G_min)``."""
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return noise.mul_(params.read_noise * (params.g_max_s - params.g_min_s))


def apply_trains(
    offset_m: torch.Tensor,
    pop: DWPopulation,
    params: DWParams,
    drift: torch.Tensor,
    variance: torch.Tensor,
    noise: torch.Tensor,
    step_m: float,
    sigma_m: float,
) -> torch.Tensor:
    """Wall offsets from the track's middle after pulse trains (in place on ``offset_m``, returned).

    The trains' nominal total mean is ``drift * step_m`` and their variance ``variance * sigma_m**2``
    (``drift``, ``variance``: tensors in any unit, e.g. signed pulse counts and pulse counts weighted
    by their variance; both are overwritten). Each device scales them by its own ``v0`` and ``D``
    factors and draws its displacement with the standard normal ``noise``. A step towards an end
    shrinks by ``min(1, d / lambda)`` (``d``: the room left), and the wall stays on the track.
    """
    unit = step_m or sigma_m  # metres per unit of the step below (drift is zero where step_m is)
    if unit == 0 or offset_m.numel() == 0:
        return offset_m
    step = wall_steps(pop, drift, variance, noise, sigma_m / unit)
    move_walls(offset_m, step, params, unit, scratch=variance)
    return offset_m


def wall_steps(
    pop: DWPopulation, drift: torch.Tensor, variance: torch.Tensor, noise: torch.Tensor, sigma: float = 1.0
) -> torch.Tensor:
    """Free displacements ``drift v + sigma sqrt(variance D) noise`` of devices with factors ``pop``
    (in place in ``drift``, returned; ``variance`` is overwritten)."""
    step = drift.mul_(pop.velocity)
    # noise / rsqrt(v): half the cost of noise * sqrt(v) here, and 0 where v is (x / inf)
    return step.addcdiv_(noise, variance.mul_(pop.diffusion).rsqrt_(), value=sigma)


def move_walls(
    offset_m: torch.Tensor,
    step: torch.Tensor,
    params: DWParams,
    unit: float = 1.0,
    segments: list[slice] | None = None,
    scratch: torch.Tensor | None = None,
) -> None:
    """Move walls at ``offset_m`` by ``step * unit`` metres (in place), held by the track's ends.

    A step towards an end shrinks by ``min(1, d / lambda)`` (``d``: the room left) and the wall
    stays on the track. Usually no wall is within reach of an end: every factor is then 1 and the
    clamp a no-op, so two reductions replace six passes (the same result, to rounding). Where some
    wall is, only the ``segments`` (flat ranges, e.g. one per weight tensor) that hold one take the
    edge computation; ``scratch`` (shaped like ``offset_m``) spares it a temporary.
    """
    half, edge = 0.5 * params.track_length_m, params.edge_length_m

    def clear(ranges: list[slice]) -> list[bool]:
        """Per range: no wall within reach of an end, so every edge factor is 1 (one GPU sync)."""
        lows_highs = [x for r in ranges for x in (*torch.aminmax(step[r]), *torch.aminmax(offset_m[r]))]
        flat = torch.stack(lows_highs).tolist()
        return [
            max(-flat[i], flat[i + 1]) * abs(unit) <= edge and max(-flat[i + 2], flat[i + 3]) <= half - edge
            for i in range(0, len(flat), 4)
        ]

    ranges = [slice(None)]
    verdicts = clear(ranges)
    if not verdicts[0] and segments is not None and len(segments) > 1:
        ranges = segments
        verdicts = clear(ranges)
    for r, is_clear in zip(ranges, verdicts, strict=True):
        if is_clear:
            offset_m[r].add_(step[r], alpha=unit)
        else:
            _move_near_ends(offset_m[r], step[r], half, edge, unit, None if scratch is None else scratch[r])


def _move_near_ends(
    offset_m: torch.Tensor, step: torch.Tensor, half: float, edge: float, unit: float, scratch
) -> None:
    """The full edge computation of :func:`move_walls`, in place.

    Room left in the direction of the step: L/2 - z moving up, L/2 + z moving down, i.e.
    L/2 - z sign(step) = L/2 - copysign(z, z step): no boolean masks or sign(), which cost several
    multiplications each on a CPU. Steps are scaled by min(room, lambda) / lambda."""
    negative_room = torch.mul(offset_m, step, out=scratch) if scratch is not None else offset_m * step
    torch.copysign(offset_m, negative_room, out=negative_room).sub_(half).clamp_(min=-edge)
    offset_m.addcmul_(step, negative_room, value=-unit / edge).clamp_(-half, half)


@dataclass(frozen=True)
class DomainWall:
    """A kind of domain-wall synapse: nominal parameters; ``sample`` draws a fabricated array.

    >>> dw = DomainWall(DWParams(variability=0.1))
    >>> pop = dw.sample((256, 784), torch.Generator().manual_seed(0))
    """

    params: DWParams = DWParams()

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, dtype=torch.float32) -> DWPopulation:
        return sample_population(self.params, shape, generator, dtype)
