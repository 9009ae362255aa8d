r"""Magnetic-texture film with N electrodes: a conductance matrix that learns by itself.

Study 3 (Niu et al., PNAS 121, e2416294121 (2024); theory: Yu, Xiao, Bauer, PRB 104, L180405 (2021);
see the study's page in the docs, docs/studies/hopfield.md). What is confirmed [C]: electrodes on a
film with a malleable magnetic texture; the inter-electrode conductance matrix is the weight
matrix; voltage patterns applied to the electrodes reshape the texture, and the conductances
evolve by an Oja-like rule in a gradient-descent manner. The law below is **our reconstruction
[I]**: the paper's full model is not public. Every constant in it is a parameter of
:class:`TextureParams`.

State and readout
-----------------
Each pair of electrodes ``(i, j)`` is joined through the film by a link whose conductance follows
the local texture through anisotropic magnetoresistance (AMR):

.. math:: G_{ij} = G_0 \left(1 + \tfrac{\mathrm{AMR}}{2}\, w_{ij}\right), \qquad w_{ij} \in [-1, 1]

``w`` is the texture state of the link in units of the AMR half-span :math:`\Delta G = G_0\,
\mathrm{AMR}/2` (``w = +1``: magnetisation across the link, lowest resistivity; ``-1``: along it).
``w`` is symmetric (a link is one object) and has no diagonal (there is no link from an electrode
to itself). The Hopfield weights are read back as :math:`w_{ij} = (G_{ij} - G_0)/\Delta G`.

Drive
-----
A training pattern :math:`s \in \{\pm 1\}^N` is applied as node voltages :math:`V_i = V_0 s_i` for a
pulse of duration :math:`t_p`; each link carries :math:`I_{ij} = G_{ij}(V_i - V_j)`.

Texture dynamics (reconstruction [I])
-------------------------------------
Assumptions:

1. The texture moves only when the drive exceeds a depinning threshold, with a rate set by the
   squared drive (spin-transfer torque and Joule power are even in the current direction, as AMR is
   even in the magnetisation direction): :math:`\kappa = \mu\,(V_0^2 - V_\mathrm{dep}^2)_+`.
2. The current density in link ``ij`` tilts its texture: links between electrodes at opposite
   potential carry current, links between equal potentials do not. Since
   :math:`(V_i - V_j)^2 = 2V_0^2 (1 - s_i s_j)`, the current-driven term is, up to a constant that
   the relaxation absorbs, the Hebbian product :math:`\rho\, s_i s_j`.
3. Each electrode injects spin current in proportion to its excess current, i.e. to the local field
   :math:`y_i = \frac{1}{N}\sum_j w_{ij} s_j` that the texture already produces at that node
   (Kirchhoff), and this relaxes the links at that electrode toward the applied polarity of the
   other end: the term :math:`-\tfrac12 (y_i s_j + s_i y_j)`.
4. Electrode contacts differ: the coupling of link ``ij`` is :math:`c_i c_j` with
   :math:`c_i = 1 + v\,\xi_i` (per-electrode variability ``v``, floored at 0.1).

Together:

.. math:: \frac{dw_{ij}}{dt} = \kappa\, c_i c_j \left[\rho\, s_i s_j
          - \tfrac12 (y_i s_j + s_i y_j)\right], \qquad i \ne j

This is Oja's self-normalising form (Hebbian growth minus an output-dependent decay) with the
Hebbian factor taken from the applied, clamped voltages rather than from the film's response, and
it is exactly gradient descent on the reconstruction energy
:math:`E = \frac{N}{2}\sum_i (\rho s_i - y_i)^2` (for ``c = 1``): its fixed point for a set of
patterns is :math:`\frac1N W \xi^\mu = \rho\,\xi^\mu`, a (zero-diagonal) projection onto their span,
which is why it stores highly similar patterns that the Hebbian outer product confuses. The
self-normalisation keeps ``|w|`` near ``rho`` times the projector's entries; links that would leave
``[-1, 1]`` saturate there (the texture cannot rotate past alignment).

Integration: each pulse is one step with the fraction of the way the pulse relaxes the pattern's
own component, :math:`\eta = 1 - e^{-\kappa t_p}` (exact for that component, never overshoots).
Patterns are applied one after the other (each pulse sees the texture the previous one left).

Two laws (``law``)
------------------
``delta`` (the default) is the law above: a projection (delta) rule whose Hebbian factor is the
applied pattern. ``oja`` is Oja's form as the paper's abstract names it [C] ("adapts Oja's learning
algorithm in a gradient descent manner"): the Hebbian factor holds the film's *output* and the
decay is quadratic in the output. Its reconstruction from AMR and spin torque [I], with
assumptions 1 and 4 as above:

2'. The output of electrode ``i`` is the current it draws through the texture beyond the uniform
    background: by AMR and Kirchhoff, :math:`\Delta G\, V_0\, N y_i` with
    :math:`y_i = \frac1N \sum_j w_{ij} s_j` (in units of :math:`\Delta G V_0 N`). This current is
    spin-polarised by the texture it crossed; entering link ``ij`` towards the other end, whose
    potential :math:`V_0 s_j` sets its direction, it exerts a torque :math:`\propto y_i s_j`
    (symmetrised, a link is one object): the Hebbian factor with the output in it.
3'. The output current returns through the same texture. As a drive it produces at every node the
    response :math:`z_i = \frac1N \sum_j w_{ij} y_j` (linear in ``w``, as ``y`` is), and its
    spin-transfer torque opposes the growth: :math:`\propto -(y_i z_j + z_i y_j)/2`, quadratic in
    the output. :math:`\rho` sets where growth and decay balance.

.. math:: \frac{dw_{ij}}{dt} = \kappa\, c_i c_j \left[\tfrac12 (y_i s_j + s_i y_j)
          - \frac{1}{2\rho^2} (y_i z_j + z_i y_j)\right], \qquad i \ne j

In the matrix :math:`M = W/(\rho N)` and the normalised output :math:`u = M s` this is Oja's
symmetric subspace rule :math:`\dot M \propto \mathrm{sym}[u\, (s - M u)^T]` (Oja 1989), whose
step keeps one of the two terms of the gradient of the reconstruction error
:math:`\frac12 \lVert s - M M s \rVert^2`; the other, :math:`M e s^T` with
:math:`e = s - MMs`, vanishes where the patterns are reconstructed (Xu 1993): gradient descent "in
a manner". For one stored pattern, :math:`w = a\, s s^T` (zero diagonal) relaxes to
:math:`a (N-1)/N = \rho`, the delta law's fixed point :math:`W s / N = \rho s`, from either side.
Unlike the delta law it learns only through the output, so the as-grown texture is its seed; it
grows each direction of the patterns' span at a rate set by that direction's share of their
correlation (what similar patterns share fast, their differences slowly); and, the patterns being
reconstructed through :math:`MM`, a direction that the as-grown texture holds with the wrong sign
grows to :math:`-\rho` (an anti-memory) instead of :math:`+\rho`.
Integration: one Euler step per
pulse of size :math:`\eta` (the delta law's step fraction). A pattern's component :math:`a` then
maps to :math:`a + \eta a (1 - a^2/\rho^2)`: it converges while
:math:`a < \rho \sqrt{1 + 2/\eta}` (2.2 :math:`\rho` at the defaults); a film starts from its
as-grown texture, far below.

Noise and variability
---------------------
* As-grown texture: :math:`w^{(0)}_{ij} \sim N(0, \sigma_0^2)` (``initial_spread``).
* Thermal jitter: every pulse adds :math:`N(0, \sigma_w^2)` to each link (``write_noise``). The
  jitter of one epoch is added at the epoch's end with the summed variance; its feedback on the
  drive within the epoch (orders below the signal) is neglected.
* Read noise: every conductance read adds :math:`N(0, \sigma_r^2)` in units of the half-span.

Energy
------
Joule energy of one training pulse: :math:`E = t_p \sum_{i<j} G_{ij}(V_i - V_j)^2`; of one read of
the matrix at :math:`V_\mathrm{read}` (one link at a time, the other electrodes floating):
:math:`t_\mathrm{read}\, V_\mathrm{read}^2 \sum_{i<j} G_{ij}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spinlearn._fields import Validated, affects, param
from spinlearn.devices import _texture_fused
from spinlearn.errors import ConfigError

MIN_COUPLING = 0.1  # an electrode with a worse contact than this would have been rejected in fab
LAWS = ("delta", "oja")  # the texture laws of the module docstring


@affects(
    accuracy=(
        "v0_v",
        "v_depin_v",
        "mobility_per_v2_s",
        "pulse_s",
        "hebbian_gain",
        "variability",
        "initial_spread",
        "write_noise",
        "read_noise",
        "law",
    ),
    energy=(
        "g0_s",
        "amr_ratio",
        "v0_v",
        "v_read_v",
        "pulse_s",
        "t_read_s",
    ),
    scale=(
        "g0_s",
        "amr_ratio",
    ),
)
@dataclass(frozen=True)
class TextureParams(Validated):
    """Nominal parameters of a magnetic-texture film with electrodes (SI units)."""

    g0_s: float = param(1e-3, "mean link conductance G0 between two electrodes (S)", gt=0, le=1)
    amr_ratio: float = param(0.02, "AMR ratio: a link's conductance spans G0 (1 +- amr/2)", gt=0, lt=1)
    v0_v: float = param(0.5, "node voltage amplitude V0 of a training pattern (V)", gt=0, le=10)
    v_depin_v: float = param(0.1, "depinning voltage: below it the texture does not move (V)", gt=0, le=10)
    v_read_v: float = param(0.02, "voltage of a conductance read (V); must stay below depinning", gt=0, le=10)
    mobility_per_v2_s: float = param(
        3e6,
        "mu: texture relaxation rate per squared volt of drive above depinning (1/(V^2 s))",
        gt=0,
        le=1e15,
    )
    pulse_s: float = param(1e-6, "duration t_p of one training pattern's pulse (s)", gt=0, le=10)
    hebbian_gain: float = param(
        0.01, "rho: ratio of the current-driven (Hebbian) torque to the electrode relaxation", gt=0, le=1
    )
    variability: float = param(0.1, "relative spread of the per-electrode coupling c_i", ge=0, le=1)
    initial_spread: float = param(0.01, "std of the as-grown texture state w (half-span units)", ge=0, le=1)
    write_noise: float = param(
        2e-4, "std of the thermal texture jitter per pulse (half-span units)", ge=0, le=1
    )
    read_noise: float = param(1e-3, "std of one conductance read (half-span units)", ge=0, le=1)
    t_read_s: float = param(10e-9, "duration of one link's conductance read (s)", gt=0, le=1)
    law: str = param(
        "delta",
        "texture law: delta (projection rule, Hebbian factor from the applied pattern) or oja "
        "(Oja's form: the film's output in the Hebbian factor, a decay quadratic in the output)",
        choices=LAWS,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.v_read_v >= self.v_depin_v:
            raise ConfigError(
                f"v_read_v = {self.v_read_v} must be below v_depin_v = {self.v_depin_v}: "
                "a read would move the texture"
            )
        if self.v0_v <= self.v_depin_v:
            raise ConfigError(
                f"v0_v = {self.v0_v} must exceed v_depin_v = {self.v_depin_v}: the texture would never move"
            )

    @property
    def half_span_s(self) -> float:
        """AMR half-span of a link's conductance, Delta G (S)."""
        return self.g0_s * self.amr_ratio / 2

    @property
    def step_fraction(self) -> float:
        """eta = 1 - exp(-kappa t_p): how far one pulse relaxes the pattern's own component."""
        return relaxation_fraction(self.mobility_per_v2_s, self.v0_v, self.v_depin_v, self.pulse_s)


def relaxation_fraction(mobility_per_v2_s: float, v0_v: float, v_depin_v: float, pulse_s: float) -> float:
    """eta = 1 - exp(-mu (V0^2 - V_dep^2)_+ t_p); zero at or below the depinning voltage."""
    kappa = mobility_per_v2_s * max(v0_v**2 - v_depin_v**2, 0.0)
    return -math.expm1(-kappa * pulse_s)


def symmetric_noise(n: int, std: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """A symmetric ``n x n`` Gaussian matrix with zero diagonal: one draw per link."""
    z = torch.randn(n, n, generator=generator, device=like.device, dtype=like.dtype)
    z = (z + z.T).mul_(std / math.sqrt(2.0))  # each link's entry: one N(0, std^2) draw, mirrored
    return z.fill_diagonal_(0.0)


class TextureFilm:
    """One fabricated film with ``n_nodes`` electrodes: its texture state and its physics.

    Training only goes through :meth:`apply` (voltage pulses); the weights only through
    :meth:`read_weights` (conductance reads). ``writes`` and ``reads`` count pulses and link reads;
    ``write_energy_j`` and ``read_energy_j`` accumulate their Joule energy.
    """

    def __init__(
        self,
        params: TextureParams,
        n_nodes: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if n_nodes < 2:
            raise ConfigError(f"a Hopfield film needs at least 2 electrodes, got {n_nodes}")
        self.params, self.n, self.generator = params, n_nodes, generator
        like = torch.empty(0, device=device, dtype=dtype)
        xi = torch.randn(n_nodes, generator=generator, device=device, dtype=dtype)
        self.coupling = (1.0 + params.variability * xi).clamp_min(MIN_COUPLING)
        self.w = symmetric_noise(n_nodes, params.initial_spread, generator, like).clamp_(-1.0, 1.0)
        self.writes = self.reads = 0
        self.write_energy_j = self.read_energy_j = 0.0

    def state_dict(self) -> dict:
        """The texture and the film's counters (for checkpoints; the couplings are drawn again)."""
        return {
            "w": self.w,
            "writes": self.writes,
            "reads": self.reads,
            "write_energy_j": self.write_energy_j,
            "read_energy_j": self.read_energy_j,
        }

    def load_state_dict(self, state: dict) -> None:
        self.w.copy_(state["w"])
        self.writes, self.reads = state["writes"], state["reads"]
        self.write_energy_j, self.read_energy_j = state["write_energy_j"], state["read_energy_j"]

    def conductance(self) -> torch.Tensor:
        """True link conductances G (S), zero on the diagonal (no link)."""
        g = self.params.g0_s + self.params.half_span_s * self.w
        return g.fill_diagonal_(0.0)

    def read_weights(self) -> torch.Tensor:
        """One measurement of every link, as weights ``(G_read - G0) / Delta G`` (read noise included)."""
        p = self.params
        noise = symmetric_noise(self.n, p.read_noise, self.generator, self.w)
        links = self.n * (self.n - 1) // 2
        self.reads += links
        self.read_energy_j += p.t_read_s * p.v_read_v**2 * self._total_conductance_s() / 2
        return self.w + noise

    def apply(self, patterns: torch.Tensor) -> None:
        """Apply ``patterns`` (P x N, entries +-1) one pulse each, in order; the texture evolves.

        Exact sequential Euler steps of the law in the module docstring, computed in O(P^2 N) plus
        two N x P x N products: the updates of one epoch are rank-2 terms, so the field each pattern
        meets is the initial field plus the low-rank corrections of the pulses before it. On the CPU
        the pulse loop and the write-back run as two numba passes (:mod:`._texture_fused`).
        """
        if patterns.ndim != 2 or patterns.shape[1] != self.n:
            raise ConfigError(f"patterns must have shape (P, {self.n}), got {tuple(patterns.shape)}")
        s = patterns.to(self.w)
        if self.params.law == "oja":
            self._apply_oja(s)
            return
        p, n = self.params, self.n
        count = s.shape[0]
        eta, rho = p.step_fraction, p.hebbian_gain
        # a_mu = c o s_mu and b_mu = c o y_mu (y_mu as pattern mu met it), side by side per pattern:
        # the correction below is then one product over both (the loop is bound by reading them)
        ab = torch.empty(count, 2, n, device=s.device, dtype=s.dtype)
        a, b = ab[:, 0], ab[:, 1]
        torch.mul(self.coupling, s, out=a)
        field0 = s @ self.w / n  # y of every pattern against the texture before the epoch
        self.write_energy_j += self._pulse_energy_j(s, field0)
        self.writes += count
        ax_all = a @ s.T  # a_nu . s_mu of every pair at once: column mu holds pattern mu's
        diag = torch.zeros(n, device=s.device, dtype=s.dtype)  # removed diagonal of the updates so far
        if _texture_fused.applies(self.w):
            arrays = (s, ab, ax_all, field0, self.coupling, diag)
            _texture_fused.pulses(*(t.numpy() for t in arrays), eta, rho)
            self._write_back(a.T @ (0.5 * (rho * a - b)), eta, p.write_noise * math.sqrt(count), fused=True)
            return
        weights = torch.empty(count, 2, device=s.device, dtype=s.dtype)  # of a_nu and b_nu in the correction
        y = torch.empty(n, device=s.device, dtype=s.dtype)
        for mu in range(count):
            x = s[mu]
            if mu:
                # correction = rho (ax . a) - (ax . b + bx . a) / 2 over the patterns before mu
                ax = ax_all[:mu, mu]
                torch.mv(b[:mu], x, out=weights[:mu, 0])  # bx
                weights[:mu, 0].mul_(-0.5).add_(ax, alpha=rho)
                torch.mul(ax, -0.5, out=weights[:mu, 1])
                correction = weights[:mu].reshape(-1) @ ab[:mu].reshape(2 * mu, n)
                torch.addcmul(correction.mul_(eta), diag, x, value=-1.0, out=y)
                y.div_(n).add_(field0[mu])
                torch.mul(self.coupling, y, out=b[mu])
            else:
                torch.mul(self.coupling, field0[0], out=b[0])
            diag.addcmul_(a[mu], torch.add(b[mu], a[mu], alpha=-rho), value=-eta)  # eta a (rho a - b)
        self._write_back(a.T @ (0.5 * (rho * a - b)), eta, p.write_noise * math.sqrt(count), fused=False)

    def _write_back(self, half: torch.Tensor, eta: float, noise_std: float, fused: bool) -> None:
        """The epoch's update: ``w <- clip(w + eta (H + H^T) + Z, -1, 1)`` with a zero diagonal and
        ``Z`` a :func:`symmetric_noise` draw of ``noise_std`` (none at 0); ``fused``: in one numba
        pass (:mod:`._texture_fused`, the same draw and arithmetic), else in eager passes."""
        if fused:
            noise, scale = None, 0.0
            if noise_std:  # symmetric_noise's draw, scaled and mirrored in the write-back
                noise = torch.randn(
                    self.n, self.n, generator=self.generator, device=self.w.device, dtype=self.w.dtype
                )
                noise, scale = noise.numpy(), noise_std / math.sqrt(2.0)
            _texture_fused.write_back(self.w.numpy(), half.numpy(), eta, noise, scale)
            return
        self.w += eta * (half + half.T)  # one sum per link: w stays exactly symmetric
        self.w.fill_diagonal_(0.0)
        if noise_std:
            self.w += symmetric_noise(self.n, noise_std, self.generator, self.w)
        self.w.clamp_(-1.0, 1.0)

    def _apply_oja(self, s: torch.Tensor) -> None:
        """Oja's law (module docstring), one Euler step of size eta per pulse, in order."""
        p, n = self.params, self.n
        eta, decay = p.step_fraction, 0.5 / p.hebbian_gain**2
        self.write_energy_j += self._pulse_energy_j(s, s @ self.w / n)
        self.writes += s.shape[0]
        c = self.coupling
        for x in s:
            y = self.w @ x / n  # the output: the texture's part of each electrode's current
            z = self.w @ y / n  # the film's response to the output current
            # c_i c_j [y_i u_j + u_i y_j] with u = x / 2 - decay z: two rank-1 updates
            cy, cu = c * y, c * (0.5 * x - decay * z)
            self.w.addr_(cy, cu, alpha=eta).addr_(cu, cy, alpha=eta).fill_diagonal_(0.0)
        if p.write_noise:
            self.w += symmetric_noise(n, p.write_noise * math.sqrt(len(s)), self.generator, self.w)
        self.w.clamp_(-1.0, 1.0)

    def _total_conductance_s(self) -> float:
        """sum_{i != j} G_ij (S), from the state without building G."""
        p, n = self.params, self.n
        return p.g0_s * n * (n - 1) + p.half_span_s * float(self.w.sum())

    def _pulse_energy_j(self, s: torch.Tensor, field: torch.Tensor) -> float:
        """t_p V0^2 sum over pulses of sum_{i!=j} G_ij (1 - s_i s_j), with G = G0 + Delta G w.

        ``field = s W / N`` is reused: s^T W s = N (field . s), so this costs no extra N^2 work.
        """
        p, n = self.params, self.n
        count = s.shape[0]
        g0_correlated = p.g0_s * float((s.sum(1) ** 2 - n).sum())  # sum_{i!=j} s_i s_j, per pulse
        w_correlated = p.half_span_s * n * float((field * s).sum())
        per_pulses = count * self._total_conductance_s() - g0_correlated - w_correlated
        return per_pulses * p.v0_v**2 * p.pulse_s


__all__ = ["LAWS", "TextureFilm", "TextureParams", "relaxation_fraction", "symmetric_noise"]
