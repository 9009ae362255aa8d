r"""Magnetic tunnel junction (MTJ) neuron: a two-terminal device whose I-V curve is the activation.

Equations (Pereira et al. 2026, arXiv:2603.03947, and the study's page in the docs,
docs/studies/afd.md; the device model is tagged [I], a reconstruction from standard MTJ physics,
since the paper's full device model is not public):

* Free-layer response to the input current (spin-transfer torque / bias field), with a tunable,
  non-volatile operating point :math:`(I_0, I_s)` per device:

  .. math:: m(I) = \cos\theta(I) = \tanh\!\left(\frac{I - I_0}{I_s}\right)

* Tunnel magnetoresistance and its bias dependence (Julliere / Slonczewski phenomenology):

  .. math:: \mathrm{TMR}(V) = \frac{\mathrm{TMR}_0}{1 + V^2 / V_h^2}, \qquad
            \mathrm{TMR}_0 = \frac{R_{AP} - R_P}{R_P}

* Resistance as a function of the angle between free and reference layer (linear in
  :math:`\cos\theta` in resistance; Slonczewski's form is linear in conductance, a simplification
  that keeps both limits R_P and R_AP exact):

  .. math:: R(\theta, V) = R_P + R_P\,\mathrm{TMR}(V)\,\frac{1 - \cos\theta}{2}

* Output voltage, self-consistent because TMR depends on the voltage across the junction:

  .. math:: V = I \, R(\theta(I), V)

  solved per device by Newton's method. With :math:`b = I R_P \mathrm{TMR}_0 (1 - m)/2`,
  :math:`g(V) = V - I R_P - b/(1 + V^2/V_h^2)` has :math:`g'(V) \ge 1` where ``V`` and ``I`` share a
  sign, so the root is unique and Newton converges from the zero-bias guess :math:`V = I R_P + b`.

* Read noise: every measurement adds Gaussian noise of rms ``read_noise_v`` (volts).

* Device-to-device variability ``v``: per instance, :math:`R_P`, :math:`\mathrm{TMR}_0` and
  :math:`I_s` are multiplied by :math:`1 + v\,\xi` and :math:`I_0` is shifted by
  :math:`v I_s \xi` (:math:`\xi \sim N(0,1)`, factors floored at 0.05 so a device stays physical).

All functions are pure, vectorised over a population of instances (the last tensor dimension) and
over any leading batch dimensions, and differentiable (for reference gradients only: training
reads the derivative from twin devices, see :mod:`spinlearn.learning.afd`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from spinlearn._fields import Validated, affects, param
from spinlearn.devices import population
from spinlearn.errors import ConfigError

#: Relative spread of a twin around its own neuron. [I] Twins are fabricated side by side, so they
#: are better matched than devices across a chip (Pelgrom); the paper requires "nominally identical".
DEFAULT_TWIN_MISMATCH = 0.02
NEWTON_STEPS = 5  # quadratic convergence: ~1e-16 relative residual up to |I| = 20 I_s at default TMR
NEWTON_STEPS_FLOAT32 = 4  # residual 3e-11 V up to |I| = 20 I_s, below float32 resolution
MIN_FACTOR = 0.05


@affects(
    accuracy=(
        "v_half_v",
        "i0_a",
        "read_noise_v",
    ),
    energy=(
        "r_p_ohm",
        "tmr0",
        "v_half_v",
        "i0_a",
        "is_a",
    ),
    scale=(
        "r_p_ohm",
        "tmr0",
        "is_a",
    ),
)
@dataclass(frozen=True)
class MTJParams(Validated):
    """Nominal parameters of one MTJ neuron (SI units)."""

    r_p_ohm: float = param(1000.0, "parallel-state resistance R_P (ohm)", ge=1, le=1e9)
    tmr0: float = param(1.2, "zero-bias TMR ratio (R_AP - R_P) / R_P (1.2 = 120 %)", gt=0, le=10)
    v_half_v: float = param(
        0.5, "bias voltage V_h at which the TMR has halved (V); huge: no bias dependence", ge=1e-3, le=1e9
    )
    i0_a: float = param(0.0, "centre I_0 of the free-layer response m(I) (A); tunable", ge=-1, le=1)
    is_a: float = param(100e-6, "width I_s of the free-layer response m(I) (A); tunable", ge=1e-9, le=1)
    read_noise_v: float = param(1e-4, "rms Gaussian noise of one voltage read (V)", ge=0, le=1)

    @property
    def r_ap_ohm(self) -> float:
        """Antiparallel-state resistance at zero bias (ohm)."""
        return self.r_p_ohm * (1.0 + self.tmr0)

    @property
    def current_scale_a(self) -> float:
        """Current that one unit of pre-activation drives through the device (A): ``I_s``."""
        return self.is_a

    @property
    def voltage_scale_v(self) -> float:
        """Voltage that reads as one unit of activation (V): ``I_s (R_P + R_AP) / 2``."""
        return self.is_a * 0.5 * (self.r_p_ohm + self.r_ap_ohm)


class MTJPopulation(NamedTuple):
    """Per-instance parameters of ``n`` devices, each a tensor of shape ``(n,)``."""

    r_p_ohm: torch.Tensor
    tmr0: torch.Tensor
    v_half_v: torch.Tensor
    i0_a: torch.Tensor
    is_a: torch.Tensor

    size = population.size


def nominal_population(
    params: MTJParams, n: int, device: torch.device | str = "cpu", dtype=torch.float32
) -> MTJPopulation:
    """``n`` identical devices with the nominal parameters."""
    return population.nominal(MTJPopulation, params, n, device, dtype)


def fitted_population(
    fits: Sequence[MTJParams], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> MTJPopulation:
    """One device per parameter set of ``fits`` (a profile's fits, say), in their order."""
    return population.stacked(MTJPopulation, fits, device, dtype)


def perturb(
    pop: MTJPopulation, spread: float, is_scale_a: float, generator: torch.Generator
) -> MTJPopulation:
    """Instances drawn around ``pop`` one by one with relative spread ``spread``.

    R_P, TMR0 and I_s are multiplied by ``1 + spread * xi`` (floored at ``MIN_FACTOR``); I_0 is
    shifted by ``spread * is_scale_a * xi``; V_h is kept. ``xi ~ N(0, 1)`` from ``generator``.
    """
    if not spread >= 0:
        raise ConfigError(f"spread = {spread!r}: must be >= 0")
    ref = pop.r_p_ohm
    xi = torch.randn(4, pop.size, generator=generator, device=ref.device, dtype=ref.dtype)
    factor = (1.0 + spread * xi).clamp_min(MIN_FACTOR)
    return MTJPopulation(
        r_p_ohm=pop.r_p_ohm * factor[0],
        tmr0=pop.tmr0 * factor[1],
        v_half_v=pop.v_half_v,
        i0_a=pop.i0_a + spread * is_scale_a * xi[2],
        is_a=pop.is_a * factor[3],
    )


def sample_population(
    params: MTJParams,
    n: int,
    variability: float,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> MTJPopulation:
    """Draw ``n`` device instances around ``params`` with relative spread ``variability``."""
    nominal = nominal_population(params, n, generator.device, dtype)
    return perturb(nominal, variability, params.is_a, generator)


def free_layer_response(current_a: torch.Tensor, pop: MTJPopulation) -> torch.Tensor:
    """m(I) = cos(theta) = tanh((I - I0) / Is), dimensionless in [-1, 1]."""
    return torch.tanh((current_a - pop.i0_a) / pop.is_a)


def tmr_at_bias(voltage_v: torch.Tensor, pop: MTJPopulation) -> torch.Tensor:
    """TMR(V) = TMR0 / (1 + V^2 / V_h^2)."""
    return pop.tmr0 / (1.0 + (voltage_v / pop.v_half_v) ** 2)


def resistance(m: torch.Tensor, voltage_v: torch.Tensor, pop: MTJPopulation) -> torch.Tensor:
    """R(theta, V) = R_P + R_P TMR(V) (1 - cos theta) / 2, with cos theta = m (ohm)."""
    return pop.r_p_ohm * (1.0 + tmr_at_bias(voltage_v, pop) * 0.5 * (1.0 - m))


def voltage(current_a: torch.Tensor, pop: MTJPopulation) -> torch.Tensor:
    """Noise-free output voltage V(I) solving V = I R(m(I), V) (volts).

    ``current_a`` has shape ``(..., n)``; the last dimension runs over the population. Newton runs on
    ``u = V / V_h``: ``u = A + B / (1 + u^2)`` with ``A = I R_P / V_h``, ``B = A TMR0 (1 - m) / 2``.
    """
    m = free_layer_response(current_a, pop)
    big_a = current_a * (pop.r_p_ohm / pop.v_half_v)
    big_b = big_a * (0.5 * pop.tmr0) * (1.0 - m)
    u = big_a + big_b
    one = torch.ones((), dtype=u.dtype, device=u.device)
    steps = NEWTON_STEPS if u.dtype == torch.float64 else NEWTON_STEPS_FLOAT32
    for _ in range(steps):
        r = u.square().add_(1.0).reciprocal_()  # 1 / (1 + u^2)
        br = big_b * r
        g = (u - big_a).sub_(br)  # g(u) = u - A - B r
        dg = torch.addcmul(one, br * r, u, value=2.0)  # g'(u) = 1 + 2 B u r^2
        u = torch.addcdiv(u, g, dg, value=-1.0)
    return u * pop.v_half_v


def slope(current_a: torch.Tensor, pop: MTJPopulation) -> torch.Tensor:
    """Noise-free dV/dI of the device (ohm), analytic: implicit differentiation of ``g(u, I) = 0``.

    With ``u = V / V_h`` solving ``u = A + B r``, ``r = 1 / (1 + u^2)``:
    ``du/dI = (A' + r B') / (1 + 2 B u r^2)``, ``A' = R_P / V_h``,
    ``B' = TMR0 / 2 ((1 - m) A' - A m')`` and ``m' = (1 - m^2) / I_s``.
    """
    m = free_layer_response(current_a, pop)
    da = pop.r_p_ohm / pop.v_half_v
    big_a = current_a * da
    big_b = big_a * (0.5 * pop.tmr0) * (1.0 - m)
    u = voltage(current_a, pop) / pop.v_half_v
    r = 1.0 / (1.0 + u * u)
    db = 0.5 * pop.tmr0 * ((1.0 - m) * da - big_a * (1.0 - m * m) / pop.is_a)
    return pop.v_half_v * (da + r * db) / (1.0 + 2.0 * big_b * u * r * r)


#: Grid of :class:`CurveTable`, per device in units of its own ``I_s`` around its own ``I_0``: the
#: step sets the interpolation error (module doc of the class), the half-range where reads fall
#: back to the Newton solve (the default AFD calibration range).
TABLE_STEP = 0.125
TABLE_HALF_RANGE = 32.0
_PAIR_DTYPE = {torch.float32: torch.float64, torch.float64: torch.complex128}  # two numbers as one


class CurveTable:
    r"""Noise-free I-V curves of ``n`` device columns, tabulated once, read by interpolation.

    Why: :func:`voltage` costs a ``tanh`` and four Newton steps (some 30 tensor passes) per
    element, the bulk of an AFD training step. The curves do not change during training, so each
    is tabulated when its group is built and a read becomes an index computation, one gather and
    a Horner evaluation.

    Each column ``j`` has a uniform grid in its reference device's units,
    :math:`I_k = I_{0,j} + (k h - H) I_{s,j}` (``h = TABLE_STEP``, ``H = TABLE_HALF_RANGE``), and
    ``K`` curves share it: curve ``q`` is device ``pops[q]`` read at ``I + shifts_a[q]`` (a neuron
    and its twin at ``I + dI``: one index and fraction for both). Between grid points each curve
    is the cubic Hermite interpolant of :math:`V` and :math:`dV/dI` (exact Newton solves and
    :func:`slope`, in float64), stored as power coefficients per interval. Its error is
    :math:`|V - p| \le (h I_s)^4 \max|V^{(4)}| / 384`: at the default step, with a 20 % device
    spread, below 2e-6 V in V and ~0.2 ohm in dV/dI (``tests/test_fast_reads.py``), i.e. far below
    a read's noise (1e-4 V) and the AFD truncation error :math:`|f''|\,\delta I / 2` (tens of ohm). In
    float32 the grid position carries a rounding of ~2^-14 intervals (~1e-6 V), the same for both
    curves of a pair, so it cancels in their difference. Currents off the grid (or non-finite) are
    solved exactly by :func:`voltage`. Memory: ``16 K n / h * 2 H`` bytes in float32 (4 MiB for
    a 256-wide neuron/twin group).
    """

    def __init__(
        self,
        pops: tuple[MTJPopulation, ...],
        shifts_a: tuple[float, ...],
        dtype: torch.dtype,
        step: float = TABLE_STEP,
        half_range: float = TABLE_HALF_RANGE,
    ) -> None:
        ref = pops[0]
        n, points = ref.size, round(2 * half_range / step) + 1
        self.pops, self.shifts_a, self.points, self.curves = pops, shifts_a, points, len(pops)
        self.dtype = dtype
        f64 = [MTJPopulation(*(p.to(torch.float64) for p in pop)) for pop in pops]
        is_a, i0_a = f64[0].is_a, f64[0].i0_a
        x = torch.linspace(-half_range, half_range, points, dtype=torch.float64, device=is_a.device)
        grid = i0_a + x[:, None] * is_a  # (points, n)
        h_a = step * is_a
        coefs = []
        for pop, shift in zip(f64, shifts_a, strict=True):
            v = voltage(grid + shift, pop)
            d = slope(grid + shift, pop) * h_a  # dV per interval
            dv = v[1:] - v[:-1]
            coefs.append(torch.stack((v[:-1], d[:-1], 3 * dv - 2 * d[:-1] - d[1:], d[:-1] + d[1:] - 2 * dv)))
        # (2 pairs of powers, K curves, n columns, points - 1 intervals, 2 powers): each pair of
        # powers is one element of twice the width, so one gather of 2 K elements per read reads all
        table = torch.stack(coefs, 1).transpose(2, 3).view(2, 2, self.curves, n, points - 1)
        self.table = table.permute(0, 2, 3, 4, 1).contiguous().to(dtype).view(_PAIR_DTYPE[dtype]).view(-1)
        self.scale = (1.0 / h_a).to(dtype)  # pos = I / (h I_s) + (H / h - I0 / (h I_s))
        self.offset = (half_range / step - i0_a / h_a).to(dtype)
        intervals = points - 1
        column = torch.arange(n, dtype=torch.int32, device=is_a.device) * intervals
        block = torch.arange(2 * self.curves, dtype=torch.int32, device=is_a.device) * (n * intervals)
        self._base = (block[:, None] + column).view(2, self.curves, n)

    def __call__(self, current_a: torch.Tensor, curves: slice = slice(None)) -> torch.Tensor:
        """Voltages of ``curves`` at ``current_a`` (shape ``(..., n)``): shape ``(K', ..., n)``."""
        base = self._base[:, curves]
        pos = torch.addcmul(self.offset, current_a, self.scale)
        lo, hi = torch.aminmax(pos)
        inside = bool(lo >= 0) and bool(hi < self.points - 1)  # False for NaN too
        pos_in = pos if inside else pos.nan_to_num(0.0).clamp_(0, self.points - 1)
        frac = torch.frac(pos_in)
        k = pos_in.to(torch.int32)
        if not inside:  # the elements off the grid get any interval here, then a Newton solve
            k.clamp_(max=self.points - 2)
        index = k.unsqueeze(0).unsqueeze(0) + base.view(*base.shape[:2], *(1,) * (k.dim() - 1), -1)
        pairs = self.table.index_select(0, index.view(-1)).view(index.shape)
        c = pairs.view(self.dtype).view(*index.shape, 2)
        v = torch.addcmul(c[1, ..., 0], c[1, ..., 1], frac)
        v = torch.addcmul(c[0, ..., 1], v, frac)
        v = torch.addcmul(c[0, ..., 0], v, frac)
        if not inside:
            self._exact_outside(current_a, pos, v, curves)
        return v

    def coefficients(self) -> torch.Tensor:
        """The power coefficients, ``(n, intervals, K, 4)``: column ``j``, interval ``k``, curve ``q``
        is ``c0 + c1 t + c2 t^2 + c3 t^3`` at position ``t`` in the interval (a view)."""
        n, intervals = self._base.shape[-1], self.points - 1
        pairs = self.table.view(self.dtype).view(2, self.curves, n, intervals, 2)
        return pairs.permute(2, 3, 1, 0, 4).reshape(n, intervals, self.curves, 4)

    def _exact_outside(self, current_a: torch.Tensor, pos: torch.Tensor, out: torch.Tensor, curves):
        """Newton solves (:func:`voltage`) for the elements off the grid, written into ``out``."""
        outside = ~((pos >= 0) & (pos < self.points - 1))
        column = outside.nonzero()[:, -1]
        current = current_a[outside]
        for q, (pop, shift) in enumerate(zip(self.pops[curves], self.shifts_a[curves], strict=True)):
            selected = MTJPopulation(*(p[column] for p in pop))
            out[q][outside] = voltage(current + shift, selected).to(out.dtype)


def read(
    current_a: torch.Tensor,
    pop: MTJPopulation,
    read_noise_v: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """One measurement of V(I) per element, with Gaussian read noise of rms ``read_noise_v``."""
    v = voltage(current_a, pop)
    if read_noise_v > 0:
        noise = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        v = v + read_noise_v * noise
    return v


@dataclass(frozen=True)
class MTJ:
    """A kind of MTJ neuron: nominal parameters plus the spread of a fabricated population.

    >>> neuron = MTJ(MTJParams(tmr0=1.2), variability=0.1)
    >>> pop = neuron.sample(16, torch.Generator().manual_seed(0))
    """

    params: MTJParams = MTJParams()
    variability: float = 0.1

    def __post_init__(self) -> None:
        if not self.variability >= 0:
            raise ConfigError(f"variability = {self.variability!r}: must be >= 0")

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> MTJPopulation:
        return sample_population(self.params, n, self.variability, generator, dtype)
