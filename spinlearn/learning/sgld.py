r"""Stochastic gradient Langevin dynamics whose noise is domain-wall motion (push-pull programming).

Dalgaty et al. 2023, arXiv:2312.02771 (SGLD: Welling & Teh 2011); see the study's page in the docs
(docs/studies/dw-sgld.md). SGLD samples :math:`p(\theta) \propto e^{-U(\theta)/T}` by

.. math:: \theta \leftarrow \theta - \eta \nabla U(\theta) + \sqrt{2 \eta T / N}\, \xi,
          \qquad \xi \sim N(0, I)

written here with ``lr`` :math:`= \eta` applied to the gradient of the *mean* minibatch loss
:math:`\bar L` and ``data_size`` :math:`N`, i.e. :math:`U = N \bar L` with step :math:`\eta/N`
(``data_size=1`` gives the bare form: drift ``-lr * grad``, variance ``2 * lr * T``).

:class:`DWSGLD` realises one update per weight as pulse trains on its domain-wall pair
(:mod:`spinlearn.nn.dw`), never adding software random numbers to a weight:

1. **Drift**, quantised to ``bits``: ``d = -lr * grad`` becomes a signed code
   :math:`n = \mathrm{round}(d / \Delta)`, :math:`|n| \le 2^{k-1} - 1`, with one step
   :math:`\Delta = \max|d| / (2^{k-1} - 1)` per crossbar (a layer's weights and bias: one
   programming circuit drives the array). The code is sent as :math:`|n|` *push*
   pulses of a strong drive (overdrive ``drift_overdrive``: high drift per unit of diffusion) whose
   width makes the nominal mean step equal :math:`\Delta`.
2. **Diffusion**: push-pull *pairs* (a push and a pull: zero mean, two steps of variance) of a weak
   drive just above depinning (``diffusion_overdrive``), whose width makes ``pairs`` of them carry
   the whole Langevin variance :math:`V = 2 \eta T / N`. A weight whose drift pulses already
   diffuse by :math:`|n| s^2` gets :math:`p = \mathrm{round}(\mathrm{pairs}\,(1 - |n| s^2 / V))`
   pairs, so that drift and diffusion add up to :math:`V`. Where the drift's own diffusion exceeds
   :math:`V` the weight runs hotter than ``T`` (counted in ``hot_fraction``).

The device's Gaussian steps add up exactly, so the mean and variance of an update are the targets
up to quantisation, the rounding of ``p`` and each device's own mobility and diffusion (variability).

Parameters without domain walls behind them (batch-norm scale and offset: peripheral digital
circuits) take the floating-point SGLD step with software noise, as :class:`SGLD` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from spinlearn._fields import Validated, param
from spinlearn._random import own_generator
from spinlearn.devices.domain_wall import DWPopulation, Pulse, move_walls, wall_steps
from spinlearn.energy import Ledger
from spinlearn.errors import ConfigError
from spinlearn.hardware.dw_bank import SynapseBank
from spinlearn.learning import sgld_fused
from spinlearn.noise import GaussianPool

FLOAT32_EXACT = 2**24  # every integer up to this is a float32, so is every partial sum of smaller ones


def _count(values: torch.Tensor, largest: int) -> torch.Tensor:
    """Exact sum of integer-valued floats in ``[0, largest]`` (0-dim, on the device): in float32
    while its bound allows (a float64 sum converts ``values`` first, costing more than an update)."""
    return values.sum(dtype=None if largest * values.numel() <= FLOAT32_EXACT else torch.float64)


@dataclass(frozen=True)
class SGLDConfig(Validated):
    """The Langevin update and, for DW-SGLD, how it is sent as pulses."""

    temperature: float = param(1.0, "posterior temperature T (1: the Bayesian posterior)", ge=0, le=1e6)
    bits: int = param(6, "update precision k: drift codes in [-(2^(k-1)-1), 2^(k-1)-1]", ge=2, le=16)
    pairs: int = param(
        16, "push-pull pairs that carry the whole diffusion of a weight without drift", ge=1, le=4096
    )
    drift_overdrive: float = param(4.0, "I/I_th - 1 of the drift pulses", gt=0, le=100)
    diffusion_overdrive: float = param(0.2, "I/I_th - 1 of the push-pull pairs", gt=0, le=100)
    prior_std: float = param(0.0, "std of a Gaussian prior on the weights (0: flat prior)", ge=0, le=1e6)
    exact_noise: bool = param(
        False, "draw every wall step's randomness fresh (torch.randn) instead of from a GaussianPool"
    )


def code_step(peak: float, bits: int) -> float:
    """The drift per code step, ``Delta = peak / (2^(bits-1) - 1)`` for the largest drift ``peak``
    (0 when there is nothing to send)."""
    if bits < 2:
        raise ValueError(f"bits must be >= 2, got {bits}")
    if peak == 0.0 or not math.isfinite(peak):
        return 0.0
    return peak / (2 ** (bits - 1) - 1)


def quantise(drift: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """Signed integer codes (as floats) and the step ``Delta``: ``drift ~ codes * Delta``.

    Round to nearest with one step per tensor (:func:`code_step`), so the largest drift is sent
    exactly and smaller ones within ``Delta / 2``.
    """
    peak = float(drift.abs().max()) if drift.numel() else 0.0
    delta = code_step(peak, bits)
    if delta == 0.0:
        return torch.zeros_like(drift), 0.0
    return drift.mul(1.0 / delta).round_(), delta


class _Langevin(torch.optim.Optimizer):
    """Shared parts: the gradient of U (prior included) and the target variance."""

    def __init__(self, params, lr: float, temperature: float, data_size: int, prior_std: float, generator):
        if not lr > 0:
            raise ConfigError(f"lr = {lr!r}: must be > 0")
        if not temperature >= 0:
            raise ConfigError(f"temperature = {temperature!r}: must be >= 0")
        if data_size < 1:
            raise ConfigError(f"data_size = {data_size!r}: must be >= 1")
        super().__init__(
            params, {"lr": lr, "temperature": temperature, "data_size": data_size, "prior_std": prior_std}
        )
        # Without a generator: one of the optimizer's own, on the device of its first parameter.
        first = next((p for group in self.param_groups for p in group["params"]), None)
        self.generator = own_generator(generator, None if first is None else first.device)

    @staticmethod
    def grad_and_variance(p: torch.Tensor, group: dict) -> tuple[torch.Tensor, float]:
        """The gradient of the mean loss plus the prior's share, and the Langevin variance 2 lr T / N."""
        grad = p.grad
        if group["prior_std"] > 0:  # -log N(0, s^2) / N per weight: the prior's share of the mean loss
            grad = grad + p.detach() / (group["prior_std"] ** 2 * group["data_size"])
        return grad, 2.0 * group["lr"] * group["temperature"] / group["data_size"]

    def drift_and_variance(self, p: torch.Tensor, group: dict) -> tuple[torch.Tensor, float]:
        grad, variance = self.grad_and_variance(p, group)
        return grad.mul(-group["lr"]), variance

    def _software_step(self, p: torch.Tensor, drift: torch.Tensor, variance: float) -> None:
        p.add_(drift)
        if variance > 0:
            noise = torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
            p.add_(noise, alpha=math.sqrt(variance))


class SGLD(_Langevin):
    """Floating-point SGLD, the reference: drift ``-lr * grad`` plus software Gaussian noise."""

    def __init__(
        self,
        params: Iterable,
        lr: float,
        temperature: float = 1.0,
        data_size: int = 1,
        prior_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(params, lr, temperature, data_size, prior_std, generator)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._software_step(p, *self.drift_and_variance(p, group))


class _Plan(NamedTuple):
    """One crossbar's scales for one step (see :meth:`DWSGLD._plan`)."""

    scale: float  # codes per unit of gradient, -lr / Delta (0: nothing to send)
    unit_m: float  # nominal wall step of one drift pulse (m)
    drift_var_m2: float  # variance of one drift pulse (m^2)
    pair_var_m2: float  # variance of one pulse of a push-pull pair (m^2)
    pair_alpha: float  # pairs saved per drift pulse (its own diffusion replaces them)
    cool: int | None  # the largest code whose drift pulses stay within V, where larger ones are possible
    push_energy_j: float
    pair_energy_j: float
    weight_per_m: float


class _WindowViews(NamedTuple):
    """Cached views for one window of a bank (making views costs like a small tensor's arithmetic)."""

    scratch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # codes, n, pairs
    segments: list[tuple[torch.Tensor, torch.Tensor]]  # per segment: its codes, the parameter's part
    runs: list[tuple[int, tuple[torch.Tensor, ...]]]  # per run: a tensor of it, its codes, n, pairs
    run_windows: list[slice]  # per run: its range in the window
    active: torch.Tensor
    passive: torch.Tensor
    velocity: torch.Tensor
    diffusion: torch.Tensor
    arrays: tuple[tuple[np.ndarray, ...], list[np.ndarray]] | None  # window's, parameters', fused step


class DWSGLD(_Langevin):
    """SGLD sent as push-pull pulse trains to the domain-wall pairs behind each weight (module doc).

    The devices of consecutive weight tensors are updated together in
    :class:`~spinlearn.hardware.dw_bank.SynapseBank` s (one set of passes for all); each crossbar keeps
    its own quantisation step and pulses.

    Counters (since construction): ``pulses`` (drift and pair pulses), ``pulse_energy_j`` and
    ``hot_fraction`` (share of weight updates whose drift pulses alone exceeded the target variance).
    With a ``ledger``, every step's pulses are booked there as ``dw_pulse``.

    On the CPU in float32 the update runs in a fused kernel (:mod:`.sgld_fused`), one call per
    window for up to eight tensors; ``fused=False``, CUDA and float64 run the same update as eager
    tensor passes.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        config: SGLDConfig | None = None,
        data_size: int = 1,
        generator: torch.Generator | None = None,
        ledger: Ledger | None = None,
        fused: bool = True,
    ) -> None:
        self.config = config or SGLDConfig()
        self.fused = fused  # on the CPU in float32, the fused kernel (.sgld_fused); else eager passes
        # (read at every step, so that it can be switched between steps)
        super().__init__(params, lr, self.config.temperature, data_size, self.config.prior_std, generator)
        self.ledger = ledger
        # Each weight's wall steps take fresh pool numbers every step; a pool serves 32 times its
        # size before it is redrawn (drawing costs more than a whole update here), and is 32 times
        # a step's need, so two steps' windows overlap with probability ~1/16.
        self.noise = GaussianPool(self.generator, reuse=32, spread=32, exact=self.config.exact_noise)
        self.pulses = 0
        self.pulse_energy_j = 0.0
        self._updates = 0
        self._hot = 0
        self._banks: dict[int, tuple[tuple[int, ...], list[SynapseBank]]] = {}  # per param group
        self._pairs_target: dict[tuple, torch.Tensor] = {}  # cfg.pairs as a 0-dim tensor
        self._work: dict[tuple, torch.Tensor] = {}  # scratch (3, window) per (dtype, device)
        self._views: dict[tuple, _WindowViews] = {}  # per (bank id, window, runs)

    @property
    def hot_fraction(self) -> float:
        return self._hot / self._updates if self._updates else 0.0

    def state_dict(self) -> dict:
        """torch's optimizer state with the counters, the noise pool's position and each synapse
        bank's update count (which sets when its pairs rebalance): what a checkpoint needs."""
        state = super().state_dict()
        state["dw"] = {
            "pulses": self.pulses,
            "pulse_energy_j": self.pulse_energy_j,
            "updates": self._updates,
            "hot": self._hot,
            "noise": self.noise.state_dict(),
            "bank_updates": {
                index: [bank._updates for bank in self._group_banks(index, group)]
                for index, group in enumerate(self.param_groups)
            },
        }
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        dw = state_dict.pop("dw")
        super().load_state_dict(state_dict)
        self.pulses, self.pulse_energy_j = dw["pulses"], dw["pulse_energy_j"]
        self._updates, self._hot = dw["updates"], dw["hot"]
        self.noise.load_state_dict(dw["noise"])
        for index, group in enumerate(self.param_groups):
            for bank, updates in zip(self._group_banks(index, group), dw["bank_updates"][index], strict=True):
                bank._updates = updates

    @torch.no_grad()
    def step(self, closure=None):
        for index, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is not None and getattr(p, "synapses", None) is None:
                    self._software_step(p, *self.drift_and_variance(p, group))
            banks = self._group_banks(index, group)
            if banks:
                self._program_group(banks, group)

    def _program_group(self, banks: list[SynapseBank], group: dict) -> None:
        """Plan every DW tensor of the group (one GPU sync for all), program each bank, count."""
        cfg, lr = self.config, group["lr"]
        grads: list[list[torch.Tensor | None]] = []
        live: list[tuple[int, int]] = []  # (bank, parameter) with a gradient
        variance = 0.0
        for b, bank in enumerate(banks):
            grads.append([])
            for i, p in enumerate(bank.params):
                grad = None
                if p.grad is not None:
                    grad, variance = self.grad_and_variance(p, group)
                    live.append((b, i))
                grads[-1].append(grad)
        if not live:
            return
        # flat gradients; numpy ones where the fused kernel programs every bank (CPU float32)
        fused = self.fused and all(sgld_fused.applies(bank.u) for bank in banks)
        flat = [[None if g is None else g.reshape(-1) for g in bank_grads] for bank_grads in grads]
        if fused:  # contiguous (a strided gradient stays strided through reshape), no autograd
            flat = [
                [None if g is None else g.detach().contiguous().numpy() for g in bank_flat]
                for bank_flat in flat
            ]
            extremes = [x for p in sgld_fused.peaks([flat[b][i] for b, i in live]) for x in (-p, p)]
        else:
            extremes = torch.stack([x for b, i in live for x in torch.aminmax(grads[b][i])]).tolist()
        # a crossbar's parameters (weight and bias) share one quantisation step, so one plan
        keys = [getattr(banks[b].params[i], "crossbar", banks[b].params[i]) for b, i in live]
        peaks: dict[object, float] = {}
        for k, key in enumerate(keys):
            prior, low, high = peaks.get(key, 0.0), extremes[2 * k], extremes[2 * k + 1]
            # max() drops a NaN that is not its first argument, so any NaN is kept by hand: a peak
            # that is not finite sends the crossbar no drift (code_step)
            peaks[key] = math.nan if math.isnan(prior + high - low) else max(prior, -low, high)
        plans: list[list[_Plan | None]] = [[None] * len(bank.params) for bank in banks]
        shared: dict[object, _Plan] = {}
        for (b, i), key in zip(live, keys, strict=True):
            if key not in shared:
                delta = code_step(lr * peaks[key], cfg.bits)
                shared[key] = self._plan(delta, variance, banks[b].synapses[i], lr)
            plans[b][i] = shared[key]
        count, energy = 0, 0.0
        for bank, bank_flat, bank_plans in zip(banks, flat, plans, strict=True):
            if any(plan is not None for plan in bank_plans):
                bank_count, bank_energy = self._program(bank, bank_flat, bank_plans, variance > 0, fused)
                count += bank_count
                energy += bank_energy
        self._updates += sum(grads[b][i].numel() for b, i in live)
        self.pulses += count
        self.pulse_energy_j += energy
        if self.ledger is not None:
            self.ledger.add("dw_pulse", count, energy)

    def _group_banks(self, index: int, group: dict) -> list[SynapseBank]:
        """The group's banks, (re)built when its parameters or their buffers changed."""
        params = [p for p in group["params"] if getattr(p, "synapses", None) is not None]
        key = tuple(id(p) for p in params)
        known = self._banks.get(index)
        if known is not None and known[0] == key and all(b.holds_all() for b in known[1]):
            return known[1]
        banks = SynapseBank.pack(params)
        self._banks[index] = (key, banks)
        self._views = {}  # views of banks that are gone (their ids may be reused)
        for bank in banks:
            base = (bank.u.dtype, bank.u.device)
            size = max(w.stop - w.start for w in map(bank.window_range, range(len(bank.windows))))
            if base not in self._work or self._work[base].shape[1] < size:
                self._work[base] = bank.u.new_empty((3, size))
        return banks

    def _window(self, bank: SynapseBank, w: int, plans: list[_Plan | None]) -> _WindowViews:
        """The views of window ``w`` for this step's ``plans``: runs are the consecutive segments
        that share a plan (a crossbar's weight and bias), so its passes run once for all of them."""
        segments = bank.windows[w]
        runs: list[list[int]] = []  # segment numbers per run
        for k, seg in enumerate(segments):
            plan = plans[seg.index]
            if plan is None:
                continue
            if runs and plans[segments[runs[-1][-1]].index] is plan and runs[-1][-1] == k - 1:
                runs[-1].append(k)
            else:
                runs.append([k])
        key = (id(bank), w, tuple(map(tuple, runs)))
        views = self._views.get(key)
        if views is None:
            span = bank.window_range(w)
            size = span.stop - span.start
            scratch = tuple(self._work[bank.u.dtype, bank.u.device][:, :size].unbind())
            windows = [slice(segments[r[0]].window.start, segments[r[-1]].window.stop) for r in runs]
            views = self._views[key] = _WindowViews(
                scratch,
                [(scratch[0][seg.window], bank.flat_params[seg.index][seg.flat]) for seg in segments],
                [
                    (segments[r[0]].index, tuple(buf[window] for buf in scratch))
                    for r, window in zip(runs, windows, strict=True)
                ],
                windows,
                bank.u[0, span],
                bank.u[1, span],
                bank.velocity[0, span],
                bank.diffusion[0, span],
                None,
            )
            if sgld_fused.applies(bank.u):  # numpy views of the window and each parameter, for the kernel
                window_arrays = (views.active, views.passive, views.velocity, views.diffusion)
                arrays = (
                    tuple(a.numpy() for a in window_arrays),
                    [param.numpy() for _, param in views.segments],
                )
                views = self._views[key] = views._replace(arrays=arrays)
        return views

    def _plan(self, delta: float, variance: float, synapses, lr: float) -> _Plan:
        """Pulses for one tensor: drift pulses of mean step ``delta`` (weight units), pairs whose
        ``cfg.pairs`` carry the variance ``variance``, both at the overdrives of the config."""
        cfg, device = self.config, synapses.params
        to_m = 1.0 / synapses.weight_per_m
        drift_var_m2 = pair_var_m2 = push_energy = pair_energy = 0.0
        if delta > 0:
            push = Pulse.for_mean_step(delta * to_m, cfg.drift_overdrive, device)
            drift_var_m2, push_energy = push.step_variance_m2(device), push.energy_j(device)
        if variance > 0:
            pair_var_m2 = variance / (2 * cfg.pairs) * to_m**2  # `pairs` pairs carry the whole V
            pair = Pulse.for_variance(pair_var_m2, cfg.diffusion_overdrive, device)
            pair_energy = pair.energy_j(device)
        ratio = pair_var_m2 / drift_var_m2 if drift_var_m2 else 1.0  # a pair pulse, in drift pulses
        # the largest code whose drift pulses alone stay within V (larger codes run hot), if any
        cool = math.floor(2 * cfg.pairs * ratio) if pair_var_m2 and drift_var_m2 else None
        return _Plan(
            scale=-lr / delta if delta else 0.0,
            unit_m=delta * to_m,
            drift_var_m2=drift_var_m2,
            pair_var_m2=pair_var_m2,
            pair_alpha=0.5 / ratio if drift_var_m2 and pair_var_m2 else 0.0,
            cool=cool if cool is not None and cool < 2 ** (cfg.bits - 1) - 1 else None,
            push_energy_j=push_energy,
            pair_energy_j=pair_energy,
            weight_per_m=synapses.weight_per_m,
        )

    def _program(
        self, bank: SynapseBank, flat_grads: list, plans: list[_Plan | None], diffuse: bool, fused: bool
    ) -> tuple[int, float]:
        """Quantise each tensor's drift, count the pulses, and send them, window by window; returns
        the pulses sent and their energy (J). ``flat_grads``: each tensor's flat gradient (numpy
        arrays where ``fused``, the fused kernel's). ``diffuse``: whether there is a Langevin variance.

        Written as few in-place passes as possible: on a CPU the update is bound by the number of
        elementwise kernels, not by arithmetic. Per window, the passes that need a crossbar's own
        scales run per crossbar (a run of segments); the rest run once over the window."""
        cfg = self.config
        clamp_pairs = any(plan is not None and plan.cool is not None for plan in plans)
        pairs_target = self._pairs_target.get((bank.u.dtype, bank.u.device))
        if pairs_target is None:  # a 0-dim tensor: torch.sub(tensor, ...) is twice as fast as with a number
            pairs_target = self._pairs_target[bank.u.dtype, bank.u.device] = bank.u.new_tensor(
                float(cfg.pairs)
            )
        linear = bank.dw_params.response == "linear"
        bank.begin_update(self._work[bank.u.dtype, bank.u.device].unbind(), kernel=fused)
        count, energy, largest_code = 0, 0.0, 2 ** (cfg.bits - 1) - 1
        for w, segments in enumerate(bank.windows):
            views = self._window(bank, w, plans)
            if fused:
                window_count, window_energy = self._program_fused(
                    bank, views, segments, plans, flat_grads, diffuse, clamp_pairs
                )
                count += window_count
                energy += window_energy
                continue
            codes, n, pairs = views.scratch
            for seg, (c, _) in zip(segments, views.segments, strict=True):
                plan = plans[seg.index]
                if plan is None or not plan.scale:
                    c.zero_()
                else:
                    torch.mul(flat_grads[seg.index][seg.flat], plan.scale, out=c)
            codes.round_()
            torch.abs(codes, out=n)
            # Per run: drift pulses, hot weights, pairs (summed on the device, fetched in one sync).
            drift_sums, hot_sums, pair_sums, not_hot = [], [], [], 0
            for index, (_, ns, ps) in views.runs:
                plan = plans[index]
                drift_sums.append(_count(ns, largest_code))
                # codes are integers: clamp(n, cool, cool + 1) - cool is 1 where hot
                if plan.cool is not None:
                    hot_sums.append(_count(torch.clamp(ns, plan.cool, plan.cool + 1, out=ps), plan.cool + 1))
                    not_hot += plan.cool * ns.numel()
                if diffuse:  # pairs that top the drift pulses' own diffusion up to V
                    torch.sub(pairs_target, ns, alpha=plan.pair_alpha, out=ps)
            if diffuse:
                pairs.round_()
                if clamp_pairs:
                    pairs.clamp_(min=0.0)
            for index, (c, ns, ps) in views.runs:
                plan = plans[index]
                if diffuse:
                    pair_sums.append(_count(ps, cfg.pairs))
                    ns.mul_(plan.drift_var_m2).add_(ps, alpha=2.0 * plan.pair_var_m2)  # variance (m^2)
                else:
                    ns.mul_(plan.drift_var_m2)
                c.mul_(plan.unit_m)  # drift (m)
            noise = self.noise.take((codes.numel(),))
            step = wall_steps(DWPopulation(views.velocity, views.diffusion), codes, n, noise)
            move_walls(views.active, step, bank.dw_params, segments=views.run_windows, scratch=n)
            if linear:  # read back: w = (u+ + u-) w_max / L
                torch.add(views.active, views.passive, out=pairs)
                for seg, (_, param) in zip(segments, views.segments, strict=True):
                    plan = plans[seg.index]
                    if plan is not None:
                        torch.mul(pairs[seg.window], plan.weight_per_m, out=param)
            values = [round(v) for v in torch.stack(drift_sums + hot_sums + pair_sums).tolist()]
            drift, rest = values[: len(drift_sums)], values[len(drift_sums) :]
            self._hot += sum(rest[: len(hot_sums)]) - not_hot
            pair_pulses = [2 * v for v in rest[len(hot_sums) :]] or [0] * len(drift)
            count += sum(drift) + sum(pair_pulses)
            energy += sum(
                d * plans[index].push_energy_j + q * plans[index].pair_energy_j
                for (index, _), d, q in zip(views.runs, drift, pair_pulses, strict=True)
            )
        if not linear:
            for i, plan in enumerate(plans):
                if plan is not None:
                    bank.params[i].detach().copy_(bank.synapses[i].weight())
        return count, energy

    def _program_fused(
        self,
        bank: SynapseBank,
        views: _WindowViews,
        segments,
        plans,
        flat_grads,
        diffuse,
        clamp_pairs,
    ) -> tuple[int, float]:
        """One window of :meth:`_program` in the fused kernel (:mod:`.sgld_fused`): the same pool
        window, so the same noise as the eager passes."""
        noise = self.noise.take((views.active.numel(),)).numpy()
        half, edge = 0.5 * bank.dw_params.track_length_m, bank.dw_params.edge_length_m
        window, params = views.arrays
        live = [
            (seg.window.start, flat_grads[seg.index][seg.flat], param, plans[seg.index])
            for seg, param in zip(segments, params, strict=True)
            if plans[seg.index] is not None
        ]
        counts = sgld_fused.program_window(
            window, live, noise, diffuse, clamp_pairs, float(self.config.pairs), half, edge
        )
        count, energy = 0, 0.0
        for (_, _, _, plan), (drift, hot, pairs) in zip(live, counts, strict=True):
            self._hot += hot
            pair_pulses = 2 * pairs
            count += drift + pair_pulses
            energy += drift * plan.push_energy_j + pair_pulses * plan.pair_energy_j
        return count, energy
