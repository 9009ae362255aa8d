r"""Superparamagnetic (stochastic) magnetic tunnel junction, sMTJ: a thermally driven telegraph source.

Study 4 (Koenders et al., Phys. Rev. Applied 23, 054035 (2025); see the study's page in the docs,
docs/studies/danp.md). What is confirmed [C]: each neuron gets the noise of its own sMTJ; the device
is in-plane, 60 nm, TMR above 100 %, RA ~ 15 Ohm um^2 [S]; the authors' simulated noise statistics
(:mod:`spinlearn.devices.smtj_noise`) and their trace format (voltage time series, parquet column
``V``, 5 us sampling) [S]. The physics model below is a standard Neel-Arrhenius reconstruction [I];
every constant is a field of :class:`SMTJParams`.

Two-state telegraph process
---------------------------
State :math:`s = +1` (parallel, P, low resistance) or :math:`s = -1` (antiparallel, AP). Mean
dwell times (Neel-Arrhenius with spin-transfer torque and field tilting of the barrier):

.. math:: \tau_P = \tau_0 \exp\!\left[\Delta_P\, (1 + I/I_c)_+\, (1 + H/H_k)_+^{\,n}\right], \qquad
          \tau_{AP} = \tau_0 \exp\!\left[\Delta_{AP}\, (1 - I/I_c)_+\, (1 - H/H_k)_+^{\,n}\right]

**Sign convention:** positive current ``I`` and positive field ``H`` (A/m, along the reference
layer) favour P: they lengthen :math:`\tau_P` and shorten :math:`\tau_{AP}`. The form usually
written, :math:`\tau_{P,AP} = \tau_0 \exp[\Delta(1 \mp I/I_c)(1 \mp H/H_k)^n]`, follows the STT
convention in which positive current favours AP; it is this model with :math:`I \to -I, H \to -H`. Factors
:math:`(x)_+ = \max(x, 0)`: past :math:`|I| = I_c` or :math:`|H| = H_k` the barrier is gone and the
device leaves the disfavoured state within :math:`\tau_0`.

Joule heating lowers the barrier (it is :math:`\Delta` in units of :math:`k_B T` at the bath
temperature :math:`T`). The junction heats while current flows through the resistance of the state
it is in (thermal time ~ ns, far below the dwell times):

.. math:: T_s = T + \alpha I^2 R_s, \qquad \Delta_s = \Delta\, T / T_s, \qquad
          R_P = R_P, \quad R_{AP} = R_P (1 + \mathrm{TMR})

Stepping
--------
With the current constant over a step :math:`\delta t`, the rates :math:`k_s = 1/\tau_s` are
constant and the two-state Markov jump process is solved exactly: the state at the next grid time
differs from the present one with probability

.. math:: p_s = \frac{k_s}{K}\left(1 - e^{-K\,\delta t}\right), \qquad K = k_P + k_{AP}

This counts the even numbers of flips inside a step as returns; the first-flip probability
:math:`1 - e^{-\delta t/\tau_s}` agrees to first order in :math:`\delta t/\tau` but would bias
the correlation time when :math:`\delta t` is not small (e.g. 5 us sampling of ~60 us dwells).
Consequences, exact at every :math:`\delta t`: the stationary autocorrelation of :math:`s` is
:math:`e^{-K t}`; the run length of a state in a sampled trace is geometric with mean
:math:`\delta t / p_s = \tau_s (1 + K\delta t/2 + O(\delta t^2))` (a sampled trace misses the
shortest excursions).

Steady state (a p-bit)
----------------------
.. math:: \langle s \rangle = \frac{\tau_P - \tau_{AP}}{\tau_P + \tau_{AP}}
          = \tanh\frac{E_P - E_{AP}}{2}, \qquad
          P(s = +1) = \frac{\tau_P}{\tau_P + \tau_{AP}} = \sigma(E_P - E_{AP})

with :math:`E_s = \ln(\tau_s/\tau_0)` the exponents above. At :math:`H = 0` without heating
(:math:`\alpha = 0`) and :math:`|I| < I_c`: :math:`E_P - E_{AP} = \Delta[(1 + I/I_c) - (1 - I/I_c)]
= 2\Delta I/I_c`, so :math:`\langle s \rangle = \tanh(\Delta\, I/I_c)` whatever :math:`n`.

Readout
-------
.. math:: R(s) = R_P \left(1 + \mathrm{TMR}\,\frac{1 - s}{2}\right), \qquad V = I R(s) + \sigma_r\,\xi

(bias dependence of the TMR neglected; :math:`\xi \sim N(0, 1)` read noise).

Variability
-----------
Per device, :math:`\Delta` and :math:`I_c` are multiplied by :math:`1 + v\,\xi`
(:math:`\xi \sim N(0, 1)`, spreads ``delta_variability`` and ``ic_variability``, factors floored at 0.05).
The spread of :math:`\Delta` spreads the dwell times log-normally.

Noise streams
-------------
The per-node noise that node perturbation draws (the authors' simulated telegraph statistics and
measured traces) is in :mod:`spinlearn.devices.smtj_noise`.

All functions are pure and vectorised over the population (last tensor dimension) and any leading
batch dimensions; every random draw comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from spinlearn._fields import Validated, affects, param
from spinlearn.devices import population

MIN_FACTOR = 0.05  # a variability draw below this would be a different device, not a spread one
OUTPUTS = ("state", "voltage")

Tensorish = torch.Tensor | float


@affects(
    accuracy=(
        "tau0_s",
        "delta",
        "ic_a",
        "hk_a_per_m",
        "field_exponent",
        "temperature_k",
        "alpha_k_per_w",
        "i_read_a",
        "read_noise_v",
        "dt_s",
        "delta_variability",
        "ic_variability",
    ),
    energy=(
        "r_p_ohm",
        "tmr0",
        "i_read_a",
    ),
    scale=(
        "r_p_ohm",
        "tmr0",
    ),
)
@dataclass(frozen=True)
class SMTJParams(Validated):
    """Nominal parameters of one superparamagnetic MTJ (SI units; barrier in k_B T).

    Defaults [I] are chosen for the authors' device class: R_P = RA / area = 15 Ohm um^2 over a
    60 nm disc [S]; Delta = 11 gives tau = e^11 ns ~ 60 us at zero bias, so at the authors' 5 us
    sampling (read current 1 uA) the state differs from the previous sample with probability 0.076,
    near the 0.0809 of their telegraph statistics [C].
    """

    tau0_s: float = param(1e-9, "attempt time tau_0 (s)", ge=1e-13, le=1e-6)
    delta: float = param(
        11.0,
        "energy barrier Delta in units of k_B T at the bath temperature; superparamagnet: ~5-20",
        gt=0,
        le=100,
    )
    ic_a: float = param(100e-6, "critical current I_c: the barrier vanishes at |I| = I_c (A)", ge=1e-9, le=1)
    hk_a_per_m: float = param(8e3, "anisotropy field H_k in A/m (8e3 A/m is mu0 H_k ~ 10 mT)", ge=1, le=1e8)
    field_exponent: float = param(2.0, "exponent n of the field factor (1 +- H/H_k)^n", ge=1, le=4)
    temperature_k: float = param(300.0, "bath temperature T (K)", gt=0, le=1000)
    alpha_k_per_w: float = param(
        5e5, "Joule heating coefficient alpha: T_eff = T + alpha I^2 R (K/W); 0: no heating", ge=0, le=1e10
    )
    r_p_ohm: float = param(5300.0, "parallel-state resistance R_P (ohm)", ge=1, le=1e9)
    tmr0: float = param(
        1.2, "TMR ratio (R_AP - R_P) / R_P (1.2 = 120 %; the authors' device: > 1)", gt=0, le=10
    )
    i_read_a: float = param(
        1e-6, "read (bias) current through the junction when no drive current is given (A)", ge=-1, le=1
    )
    read_noise_v: float = param(1e-4, "rms Gaussian noise of one voltage read (V)", ge=0, le=1)
    dt_s: float = param(
        5e-6, "time step = sampling interval (s); the authors' traces: 5 us", ge=1e-15, le=1e3
    )
    delta_variability: float = param(0.05, "device-to-device relative spread of Delta", ge=0, le=1)
    ic_variability: float = param(0.05, "device-to-device relative spread of I_c", ge=0, le=1)

    @property
    def r_ap_ohm(self) -> float:
        """Antiparallel-state resistance R_AP = R_P (1 + TMR) (ohm)."""
        return self.r_p_ohm * (1.0 + self.tmr0)

    @property
    def tau_zero_bias_s(self) -> float:
        """Dwell time of either state at I = 0, H = 0: tau_0 exp(Delta) (s)."""
        return self.tau0_s * math.exp(self.delta)


class SMTJPopulation(NamedTuple):
    """Per-device parameters of ``n`` sMTJs, each a tensor of shape ``(n,)``."""

    tau0_s: torch.Tensor
    delta: torch.Tensor
    ic_a: torch.Tensor
    hk_a_per_m: torch.Tensor
    field_exponent: torch.Tensor
    temperature_k: torch.Tensor
    alpha_k_per_w: torch.Tensor
    r_p_ohm: torch.Tensor
    tmr0: torch.Tensor

    size = population.size


def nominal_population(
    params: SMTJParams, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> SMTJPopulation:
    """``n`` identical devices with the nominal parameters."""
    return population.nominal(SMTJPopulation, params, n, device, dtype)


def sample_population(
    params: SMTJParams, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> SMTJPopulation:
    """``n`` devices around ``params``: Delta and I_c times ``1 + spread * xi`` (floored at MIN_FACTOR)."""
    pop = nominal_population(params, n, generator.device, dtype)
    xi = torch.randn(2, n, generator=generator, device=generator.device, dtype=dtype)
    spread = torch.tensor(
        [[params.delta_variability], [params.ic_variability]], device=generator.device, dtype=dtype
    )
    factor = (1.0 + spread * xi).clamp_min(MIN_FACTOR)
    return pop._replace(delta=pop.delta * factor[0], ic_a=pop.ic_a * factor[1])


def resistance(state: torch.Tensor, pop: SMTJPopulation) -> torch.Tensor:
    """R(s) = R_P (1 + TMR (1 - s) / 2): R_P for s = +1, R_AP for s = -1 (ohm)."""
    return pop.r_p_ohm * (1.0 + pop.tmr0 * 0.5 * (1.0 - state))


def voltage(state: torch.Tensor, current_a: Tensorish, pop: SMTJPopulation) -> torch.Tensor:
    """Noise-free read voltage V = I R(s) (V)."""
    return current_a * resistance(state, pop)


def barriers(
    current_a: Tensorish, pop: SMTJPopulation, field_a_per_m: Tensorish = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exponents ``(E_P, E_AP)`` with tau_s = tau_0 exp(E_s), heating of each state included."""
    current = torch.as_tensor(current_a, dtype=pop.delta.dtype, device=pop.delta.device)
    heat = pop.alpha_k_per_w * current.square()
    t = pop.temperature_k
    delta_p = pop.delta * t / (t + heat * pop.r_p_ohm)
    delta_ap = pop.delta * t / (t + heat * pop.r_p_ohm * (1.0 + pop.tmr0))
    x = current / pop.ic_a
    h = torch.as_tensor(field_a_per_m, dtype=x.dtype, device=x.device) / pop.hk_a_per_m
    n = pop.field_exponent
    e_p = delta_p * (1.0 + x).clamp_min(0.0) * (1.0 + h).clamp_min(0.0).pow(n)
    e_ap = delta_ap * (1.0 - x).clamp_min(0.0) * (1.0 - h).clamp_min(0.0).pow(n)
    return e_p, e_ap


def dwell_times(
    current_a: Tensorish, pop: SMTJPopulation, field_a_per_m: Tensorish = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean dwell times ``(tau_P, tau_AP)`` in seconds at the given current (A) and field (A/m)."""
    e_p, e_ap = barriers(current_a, pop, field_a_per_m)
    return pop.tau0_s * e_p.exp(), pop.tau0_s * e_ap.exp()


def mean_state(current_a: Tensorish, pop: SMTJPopulation, field_a_per_m: Tensorish = 0.0) -> torch.Tensor:
    """Stationary <s> = (tau_P - tau_AP)/(tau_P + tau_AP) = tanh((E_P - E_AP)/2) (no overflow)."""
    e_p, e_ap = barriers(current_a, pop, field_a_per_m)
    return torch.tanh(0.5 * (e_p - e_ap))


def p_bit_probability(
    current_a: Tensorish, pop: SMTJPopulation, field_a_per_m: Tensorish = 0.0
) -> torch.Tensor:
    """Stationary probability of the P state, tau_P / (tau_P + tau_AP) = sigmoid(E_P - E_AP)."""
    e_p, e_ap = barriers(current_a, pop, field_a_per_m)
    return torch.sigmoid(e_p - e_ap)


def flip_probabilities(
    current_a: Tensorish, pop: SMTJPopulation, dt_s: float, field_a_per_m: Tensorish = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``(p_P, p_AP)`` that a device in P (in AP) is in the other state ``dt_s`` later.

    Exact for constant rates over the step: p_s = (k_s / K)(1 - exp(-K dt)), K = k_P + k_AP.
    """
    if not dt_s > 0:
        raise ValueError(f"dt_s must be > 0, got {dt_s}")
    e_p, e_ap = barriers(current_a, pop, field_a_per_m)
    log_k_dt = torch.logaddexp(-e_p, -e_ap) + torch.log(dt_s / pop.tau0_s)
    leave = -torch.expm1(-log_k_dt.exp())
    return torch.sigmoid(e_ap - e_p) * leave, torch.sigmoid(e_p - e_ap) * leave


def steady_state(
    current_a: Tensorish, pop: SMTJPopulation, generator: torch.Generator, field_a_per_m: Tensorish = 0.0
) -> torch.Tensor:
    """States (+1 / -1, shape ``(..., n)``) drawn from the stationary distribution."""
    p = p_bit_probability(current_a, pop, field_a_per_m)
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return torch.where(u < p, 1.0, -1.0).to(p.dtype)


def _advance(
    state: torch.Tensor, p_p: torch.Tensor, p_ap: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    u = torch.rand(state.shape, generator=generator, device=state.device, dtype=state.dtype)
    return torch.where(u < torch.where(state > 0, p_p, p_ap), -state, state)


def step(
    state: torch.Tensor,
    current_a: Tensorish,
    pop: SMTJPopulation,
    dt_s: float,
    generator: torch.Generator,
    field_a_per_m: Tensorish = 0.0,
) -> torch.Tensor:
    """One time step of ``dt_s`` for every device: the new states (+1 P / -1 AP)."""
    p_p, p_ap = flip_probabilities(current_a, pop, dt_s, field_a_per_m)
    return _advance(state, p_p, p_ap, generator)


def simulate(
    pop: SMTJPopulation,
    n_steps: int,
    dt_s: float,
    generator: torch.Generator,
    current_a: Tensorish,
    field_a_per_m: Tensorish = 0.0,
    state: torch.Tensor | None = None,
    output: str = "state",
    read_noise_v: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A trace ``(n_steps, n)`` of states (or read voltages) and the final state ``(n,)``.

    ``current_a`` and ``field_a_per_m`` are scalars, per-device ``(n,)`` or per-step ``(n_steps, n)``.
    Row ``t`` is the device after ``t + 1`` steps from ``state`` (default: drawn from the steady state
    at the first step's drive). The states are those of ``n_steps`` calls of :func:`step` with the
    same generator (same uniform draws, taken a block of steps at a time: on CPU the very same
    numbers). ``"voltage"``: I R(s) plus read noise, drawn after all the states.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    ref = pop.delta
    current = torch.as_tensor(current_a, dtype=ref.dtype, device=ref.device)
    field = torch.as_tensor(field_a_per_m, dtype=ref.dtype, device=ref.device)
    for name, value in (("current_a", current), ("field_a_per_m", field)):
        if value.dim() > 2 or (value.dim() == 2 and value.shape[0] != n_steps):
            raise ValueError(f"{name} must be a scalar, (n,) or (n_steps, n); got shape {tuple(value.shape)}")
    p_p, p_ap = flip_probabilities(current, pop, dt_s, field)
    p_p, p_ap = p_p.expand(n_steps, pop.size), p_ap.expand(n_steps, pop.size)
    if state is None:
        first_i = current[0] if current.dim() == 2 else current
        first_h = field[0] if field.dim() == 2 else field
        state = steady_state(first_i, pop, generator, first_h)
    is_p = torch.empty((n_steps, pop.size), dtype=torch.bool, device=ref.device)
    prev = (state.to(ref.dtype).expand(pop.size) > 0).clone()
    block = max(1, min(n_steps, (1 << 20) // pop.size))
    for start in range(0, n_steps, block):
        stop = min(start + block, n_steps)
        u = torch.rand((stop - start, pop.size), generator=generator, device=ref.device, dtype=ref.dtype)
        # Both outcomes per step precomputed, so the sequential part is one select per step.
        stay_p = u >= p_p[start:stop]
        go_p = u < p_ap[start:stop]
        for t in range(stop - start):
            prev = torch.where(prev, stay_p[t], go_p[t], out=is_p[start + t])
    states = is_p.to(ref.dtype).mul_(2.0).sub_(1.0)
    if output == "state":
        return states, states[-1].clone()
    trace = voltage(states, current, pop)
    if read_noise_v > 0:
        trace += read_noise_v * torch.randn(
            trace.shape, generator=generator, device=ref.device, dtype=ref.dtype
        )
    return trace, states[-1].clone()


@dataclass(frozen=True)
class SMTJ:
    """A kind of sMTJ: nominal parameters (with their spreads) and the time step.

    >>> device = SMTJ(SMTJParams(delta=11.0))
    >>> gen = torch.Generator().manual_seed(0)
    >>> pop = device.sample(64, gen)
    >>> trace, state = device.simulate(pop, 1000, gen, output="voltage")
    """

    params: SMTJParams = SMTJParams()

    def nominal(
        self, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> SMTJPopulation:
        return nominal_population(self.params, n, device, dtype)

    def sample(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> SMTJPopulation:
        return sample_population(self.params, n, generator, dtype)

    def _current(self, current_a: Tensorish | None) -> Tensorish:
        return self.params.i_read_a if current_a is None else current_a

    def steady_state(
        self,
        pop: SMTJPopulation,
        generator: torch.Generator,
        current_a: Tensorish | None = None,
        field_a_per_m: Tensorish = 0.0,
    ) -> torch.Tensor:
        return steady_state(self._current(current_a), pop, generator, field_a_per_m)

    def step(
        self,
        state: torch.Tensor,
        pop: SMTJPopulation,
        generator: torch.Generator,
        current_a: Tensorish | None = None,
        field_a_per_m: Tensorish = 0.0,
    ) -> torch.Tensor:
        return step(state, self._current(current_a), pop, self.params.dt_s, generator, field_a_per_m)

    def simulate(
        self,
        pop: SMTJPopulation,
        n_steps: int,
        generator: torch.Generator,
        current_a: Tensorish | None = None,
        field_a_per_m: Tensorish = 0.0,
        state: torch.Tensor | None = None,
        output: str = "state",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Trace of ``n_steps`` samples at ``params.dt_s``; voltages carry ``params.read_noise_v``."""
        current = self._current(current_a)
        return simulate(
            pop,
            n_steps,
            self.params.dt_s,
            generator,
            current,
            field_a_per_m,
            state,
            output,
            self.params.read_noise_v,
        )

    def mean_state(
        self, pop: SMTJPopulation, current_a: Tensorish | None = None, field_a_per_m: Tensorish = 0.0
    ) -> torch.Tensor:
        return mean_state(self._current(current_a), pop, field_a_per_m)

    def p_bit_probability(
        self, pop: SMTJPopulation, current_a: Tensorish | None = None, field_a_per_m: Tensorish = 0.0
    ) -> torch.Tensor:
        return p_bit_probability(self._current(current_a), pop, field_a_per_m)

    def dwell_times(
        self, pop: SMTJPopulation, current_a: Tensorish | None = None, field_a_per_m: Tensorish = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return dwell_times(self._current(current_a), pop, field_a_per_m)
