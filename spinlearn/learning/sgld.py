r"""Stochastic gradient Langevin dynamics whose noise is domain-wall motion (push-pull programming).

PAPERS.md section 2 (Dalgaty et al., arXiv:2312.02771; SGLD: Welling & Teh 2011). SGLD samples
:math:`p(\theta) \propto e^{-U(\theta)/T}` by

.. math:: \theta \leftarrow \theta - \eta \nabla U(\theta) + \sqrt{2 \eta T / N}\, \xi,
          \qquad \xi \sim N(0, I)

written here with ``lr`` :math:`= \eta` applied to the gradient of the *mean* minibatch loss
:math:`\bar L` and ``data_size`` :math:`N`, i.e. :math:`U = N \bar L` with step :math:`\eta/N`
(``data_size=1`` gives the bare form: drift ``-lr * grad``, variance ``2 * lr * T``).

:class:`DWSGLD` realises one update per weight as pulse trains on its domain-wall pair
(:mod:`spinlearn.nn.dw`), never adding software random numbers to a weight:

1. **Drift**, quantised to ``bits``: ``d = -lr * grad`` becomes a signed code
   :math:`n = \mathrm{round}(d / \Delta)`, :math:`|n| \le 2^{k-1} - 1`, with one step
   :math:`\Delta = \max|d| / (2^{k-1} - 1)` per tensor. The code is sent as :math:`|n|` *push*
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

import torch
from torch import nn

from spinlearn._fields import Validated, param
from spinlearn.devices.domain_wall import Pulse
from spinlearn.energy import Ledger
from spinlearn.noise import GaussianPool

CHUNK = 1 << 18  # elements per slice of a DW update: bounds the temporaries of large tensors
FLOAT32_EXACT = 2**24  # every integer up to this is a float32, so is every partial sum of smaller ones


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
            raise ValueError(f"lr must be > 0, got {lr}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if data_size < 1:
            raise ValueError(f"data_size must be >= 1, got {data_size}")
        super().__init__(
            params, {"lr": lr, "temperature": temperature, "data_size": data_size, "prior_std": prior_std}
        )
        self.generator = generator if generator is not None else torch.default_generator

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


class DWSGLD(_Langevin):
    """SGLD sent as push-pull pulse trains to the domain-wall pairs behind each weight (module doc).

    Counters (since construction): ``pulses`` (drift and pair pulses), ``pulse_energy_j`` and
    ``hot_fraction`` (share of weight updates whose drift pulses alone exceeded the target variance).
    With a ``ledger``, every step's pulses are booked there as ``dw_pulse``.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        config: SGLDConfig | None = None,
        data_size: int = 1,
        generator: torch.Generator | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config or SGLDConfig()
        super().__init__(params, lr, self.config.temperature, data_size, self.config.prior_std, generator)
        self.ledger = ledger
        self.noise = GaussianPool(self.generator, exact=self.config.exact_noise)
        self.pulses = 0
        self.pulse_energy_j = 0.0
        self._updates = 0
        self._hot = 0
        self._pairs_target: dict[tuple, torch.Tensor] = {}  # cfg.pairs as a 0-dim tensor
        self._work: dict[tuple, torch.Tensor] = {}  # scratch per (dtype, device), see _scratch
        self._views: dict[tuple, tuple[torch.Tensor, ...]] = {}  # its views per (dtype, device, size)

    def _scratch(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Three work buffers shaped like ``like`` (a chunk), reused across tensors and steps (the
        views are cached too: making them costs like a small tensor's arithmetic)."""
        base, key = (like.dtype, like.device), (like.dtype, like.device, like.numel())
        if key not in self._views:
            work = self._work.get(base)
            if work is None or work.shape[1] < like.numel():
                work = self._work[base] = like.new_empty((3, max(like.numel(), 1 << 16)))
                self._views = {k: v for k, v in self._views.items() if k[:2] != base}  # stale views
            self._views[key] = work[:, : like.numel()].unbind()
        return self._views[key]

    @property
    def hot_fraction(self) -> float:
        return self._hot / self._updates if self._updates else 0.0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                synapses = getattr(p, "synapses", None)
                if synapses is None:
                    self._software_step(p, *self.drift_and_variance(p, group))
                else:
                    self._program(p, synapses, group)

    def _program(self, p: torch.Tensor, synapses, group: dict) -> None:
        """Quantise the drift, count the pulses, and send them (in slices of ``CHUNK`` weights).

        Written as few in-place passes as possible: on a CPU the update is bound by the number of
        elementwise kernels, not by arithmetic."""
        cfg, device = self.config, synapses.params
        lr = group["lr"]
        grad, variance = self.grad_and_variance(p, group)
        low, high = torch.stack(torch.aminmax(grad)).tolist()  # one GPU sync
        delta = code_step(lr * max(-low, high), cfg.bits)  # weight units per code
        to_m = 1.0 / synapses.weight_per_m
        push_var = pair_var = 0.0  # variance of one drift pulse, of one pair pulse (weight units^2)
        if delta > 0:
            push = Pulse.for_mean_step(delta * to_m, cfg.drift_overdrive, device)
            push_var = push.step_variance_m2(device) / to_m**2
        if variance > 0:
            pair_var = variance / (2 * cfg.pairs)  # `pairs` pairs carry the whole V
            pair = Pulse.for_variance(pair_var * to_m**2, cfg.diffusion_overdrive, device)
        # Variance unit: one drift pulse if there are any, else one pair pulse. ratio: a pair pulse's
        # variance in units of a drift pulse's (pairs: ratio-weighted, drift pulses: 1 each).
        unit_var = push_var or pair_var
        ratio = pair_var / push_var if push_var else 1.0
        # the largest code whose drift pulses alone stay within V (larger codes run hot), if any
        cool = math.floor(2 * cfg.pairs * ratio) if pair_var and push_var else None
        hot_possible = cool is not None and cool < 2 ** (cfg.bits - 1) - 1
        synapses.begin_update()
        flat_grad, flat_p = grad.reshape(-1), p.view(-1)
        noise = self.noise.take((flat_grad.numel(),))
        pairs_target = self._pairs_target.get((flat_grad.dtype, flat_grad.device))
        if pairs_target is None:  # a 0-dim tensor: torch.sub(tensor, ...) is twice as fast as with a number
            pairs_target = self._pairs_target[flat_grad.dtype, flat_grad.device] = torch.tensor(
                float(cfg.pairs), dtype=flat_grad.dtype, device=flat_grad.device
            )
        largest = max(2 ** (cfg.bits - 1) - 1, cfg.pairs, cool + 1 if hot_possible else 0)
        drift_pulses = pair_pulses = hot = 0
        whole = flat_grad.numel() <= CHUNK  # one chunk: no slicing (views cost like small updates)
        for first in range(0, flat_grad.numel(), CHUNK):
            chunk = None if whole else slice(first, first + CHUNK)
            grad_chunk = flat_grad if whole else flat_grad[chunk]
            # Scratch buffers, no temporaries: fresh allocations cost more than the arithmetic.
            codes, n, pairs = self._scratch(grad_chunk)
            if delta:
                torch.mul(grad_chunk, -lr / delta, out=codes).round_()
            else:
                codes.zero_()
            torch.abs(codes, out=n)
            # Counts are sums of integer-valued floats in [0, largest]: exact in float32 while their
            # bound is (a float64 sum converts the chunk first, costing more than the whole update).
            exact = None if largest * n.numel() <= FLOAT32_EXACT else torch.float64
            sums = [n.sum(dtype=exact)]  # one GPU sync per chunk for all counts, below
            if hot_possible:  # codes are integers: clamp(n, cool, cool + 1) - cool is 1 where hot
                sums.append(torch.clamp(n, cool, cool + 1, out=pairs).sum(dtype=exact) - cool * n.numel())
            var_units = n  # in units of unit_var: drift pulses, then the pairs' share
            if pair_var:
                # pairs that top the drift pulses' own diffusion (n / (2 ratio) pairs) up to V
                torch.sub(pairs_target, n, alpha=0.5 / ratio if push_var else 0.0, out=pairs).round_()
                if hot_possible:
                    pairs.clamp_(min=0.0)
                sums.append(2 * pairs.sum(dtype=exact))
                var_units = n.add_(pairs, alpha=2.0 * ratio) if push_var else pairs.mul_(2.0)
            counts = [round(v) for v in torch.stack(sums).tolist()]
            drift_pulses += counts[0]
            hot += counts[1] if hot_possible else 0
            pair_pulses += counts[-1] if pair_var else 0
            synapses.program(
                codes, var_units, noise if whole else noise[chunk], delta, math.sqrt(unit_var), chunk
            )
            synapses.read_into(flat_p if whole else flat_p[chunk], chunk)
        energy = drift_pulses * push.energy_j(device) if drift_pulses else 0.0
        if pair_pulses:
            energy += pair_pulses * pair.energy_j(device)
        self._updates += flat_grad.numel()
        self._hot += hot
        self.pulses += drift_pulses + pair_pulses
        self.pulse_energy_j += energy
        if self.ledger is not None:
            self.ledger.add("dw_pulse", drift_pulses + pair_pulses, energy)


class PosteriorSamples:
    """Thinned weight samples of a Langevin chain, and the posterior-averaged prediction.

    ``observe(model, step)`` keeps a copy of what the network computes with (parameters, batch-norm
    statistics; not the wall positions and device factors behind a crossbar, which the read-back
    weights already express) every ``thin`` steps after ``burn_in``, the last ``keep`` of them.
    ``predict`` is the mean of the samples' softmax outputs: the Monte Carlo estimate of the
    posterior predictive.
    """

    def __init__(self, burn_in: int, thin: int, keep: int) -> None:
        if burn_in < 0 or thin < 1 or keep < 1:
            raise ValueError(f"need burn_in >= 0, thin >= 1, keep >= 1; got {burn_in}, {thin}, {keep}")
        self.burn_in, self.thin, self.keep = burn_in, thin, keep
        self.states: list[dict[str, torch.Tensor]] = []

    @staticmethod
    def _state(model: nn.Module) -> dict[str, torch.Tensor]:
        return {
            k: v.detach().clone()
            for k, v in model.state_dict().items()
            if not (k.startswith("synapses.") or ".synapses." in k)
        }

    def observe(self, model: nn.Module, step: int) -> None:
        if step > self.burn_in and (step - self.burn_in) % self.thin == 0:
            self.states.append(self._state(model))
            del self.states[: -self.keep]

    @torch.no_grad()
    def sample_outputs(self, model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """Class probabilities of ``x`` under each kept sample, ``(samples, n, classes)`` (the
        current state alone if no sample was kept yet); the model's state is restored after."""
        current = self._state(model)
        outputs = []
        try:
            for state in self.states or [current]:
                model.load_state_dict(state, strict=False)
                outputs.append(softmax_outputs(model, x, batch_size))
        finally:
            model.load_state_dict(current, strict=False)
        return torch.stack(outputs)

    def predict(self, model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """Posterior-averaged class probabilities of ``x``."""
        return self.sample_outputs(model, x, batch_size).mean(0)


@torch.no_grad()
def softmax_outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    model.eval()
    return torch.cat([torch.softmax(model(x[s : s + batch_size]), 1) for s in range(0, len(x), batch_size)])


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of ``labels`` under ``probs`` (nats)."""
    picked = probs.gather(1, labels[:, None]).squeeze(1).clamp_min(1e-12)
    return float(-picked.log().mean())


def _excess_and_bin(
    probs: torch.Tensor, labels: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example (last but one dimension): confidence minus correctness, and its confidence bin."""
    confidence, predicted = probs.max(-1)
    which = (confidence * bins).long().clamp(max=bins - 1)
    return confidence - (predicted == labels).to(confidence.dtype), which


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): confidence vs accuracy in ``bins`` equal-width bins,
    weighted by the share of samples in each bin: ``sum_b |sum_{i in b} (conf_i - correct_i)| / n``."""
    excess, which = _excess_and_bin(probs, labels, bins)
    per_bin = torch.zeros(bins, dtype=excess.dtype, device=excess.device).index_add_(0, which, excess)
    return float(per_bin.abs().sum() / max(len(labels), 1))


def ece_gap(
    samples: torch.Tensor,
    labels: torch.Tensor,
    resamples: int = 1000,
    bins: int = 15,
    generator: torch.Generator | None = None,
) -> tuple[float, float, float]:
    """ECE of the posterior average minus the mean ECE of its ``samples`` (``(K, n, classes)``
    probabilities), and a 95 % paired-bootstrap interval of that difference over the test examples.

    Why: on a well-classified test set ECE is a few thousandths, the same order as its sampling
    error, so the sign of a difference means little without an interval. Each bootstrap replicate
    reweights the examples by multinomial counts; an ECE is then ``sum_b |sum_{i in b} c_i (conf_i -
    correct_i)| / n``, one matrix product for all replicates. Returns ``(gap, low, high)``.
    """
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2, got {resamples}")
    models = torch.cat((samples.mean(0, keepdim=True), samples))  # posterior first, then each sample
    excess, which = _excess_and_bin(models, labels, bins)  # (K + 1, n)
    per_bin = torch.zeros((*excess.shape, bins), dtype=excess.dtype, device=excess.device)
    per_bin.scatter_(2, which.unsqueeze(2), excess.unsqueeze(2))  # (K + 1, n, bins)
    n = labels.numel()
    draws = torch.randint(
        0, n, (resamples, n), generator=generator, device=generator.device if generator else None
    )
    counts = torch.zeros(resamples + 1, n, dtype=excess.dtype, device=excess.device)
    counts[0] = 1.0  # replicate 0: the test set itself
    counts[1:].scatter_add_(1, draws.to(excess.device), torch.ones_like(counts[1:]))
    eces = torch.einsum("rn,mnb->mrb", counts, per_bin).abs().sum(2) / n  # (K + 1, R + 1)
    gaps = eces[0] - eces[1:].mean(0)
    low, high = torch.quantile(gaps[1:], torch.tensor([0.025, 0.975], dtype=gaps.dtype, device=gaps.device))
    return float(gaps[0]), float(low), float(high)
