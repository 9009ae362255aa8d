r"""Hopfield associative memory: texture self-learning, software rules, recall and energy.

Training on the device (:func:`train_texture`) is nothing but voltage pulses applied to a
:class:`~spinlearn.devices.texture.TextureFilm`; the weights are then read from its conductances.
The software baselines compute the weight matrix digitally from the same patterns:

* ``hebbian``: :math:`W = \frac1N \sum_\mu \xi^\mu \xi^{\mu T}`, zero diagonal (Hopfield 1982;
  capacity :math:`\alpha_c \approx 0.138` for random patterns, Amit, Gutfreund, Sompolinsky 1985).
* ``storkey``: one incremental pass, :math:`\Delta w_{ij} = \frac1N(\xi_i\xi_j - \xi_i h_{ji} -
  h_{ij}\xi_j)`, :math:`h_{ij} = \sum_{k \ne i,j} w_{ik}\xi_k` (Storkey 1997).
* ``oja``: Oja's symmetric subspace rule (Oja 1989), :math:`\Delta W = \frac{\eta}{N}\,
  \mathrm{sym}[y (\xi - W y)^T]` with the network's output :math:`y = W\xi`, zero diagonal, started
  from the Hebbian matrix scaled to unit spectral norm (Oja's own normalisation), epochs as the
  texture's. It converges toward a projector onto the patterns' principal subspace, but slowly in
  the directions that similar patterns barely span.

Recall: sign dynamics :math:`s_i \leftarrow \mathrm{sign}(\sum_j w_{ij} s_j)` (a zero field keeps
the state), ``async`` (one neuron at a time in a random order each sweep; the energy
:math:`E = -\frac12 s^T W s` never rises) or ``sync`` (all at once; may end in a 2-cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch

from spinlearn.devices.texture import LAWS, TextureFilm
from spinlearn.errors import ConfigError

#: ``texture``: the film under its configured law; ``texture_LAW``: the film under that law.
RULES = ("hebbian", "storkey", "oja", "texture", *(f"texture_{law}" for law in LAWS))
RECALL_MODES = ("async", "sync")


def _check_patterns(patterns: torch.Tensor) -> None:
    if patterns.ndim != 2 or patterns.shape[0] < 1 or patterns.shape[1] < 2:
        raise ConfigError(f"patterns must have shape (P >= 1, N >= 2), got {tuple(patterns.shape)}")
    if not bool(((patterns == 1) | (patterns == -1)).all()):
        raise ConfigError("pattern entries must be +1 or -1")


def hebbian(patterns: torch.Tensor) -> torch.Tensor:
    """Outer-product rule, zero diagonal."""
    _check_patterns(patterns)
    w = patterns.T @ patterns / patterns.shape[1]
    return w.fill_diagonal_(0.0)


def storkey(patterns: torch.Tensor) -> torch.Tensor:
    r"""Storkey's incremental rule, one pass in pattern order.

    With :math:`h = W\xi` and a zero diagonal, :math:`\xi_i h_{ji} = \xi_i h_j - w_{ij}`, so one
    pattern's update is :math:`\frac1N(\xi\xi^T - \xi h^T - h \xi^T + 2W)`.
    """
    _check_patterns(patterns)
    n = patterns.shape[1]
    w = torch.zeros(n, n, device=patterns.device, dtype=patterns.dtype)
    for x in patterns:
        h = w @ x
        w.mul_(1.0 + 2.0 / n).addr_(x, x - h, alpha=1.0 / n).addr_(h, x, alpha=-1.0 / n)
        w.fill_diagonal_(0.0)
    return w


def oja(patterns: torch.Tensor, epochs: int, lr: float) -> torch.Tensor:
    """Oja's symmetric subspace rule, ``epochs`` passes in pattern order (see the module docstring)."""
    _check_patterns(patterns)
    n = patterns.shape[1]
    w = hebbian(patterns)
    w /= torch.linalg.matrix_norm(w, 2).clamp_min(1e-12)
    for _ in range(epochs):
        for x in patterns:
            y = w @ x
            residual = x - w @ y
            w.addr_(y, residual, alpha=lr / (2 * n)).addr_(residual, y, alpha=lr / (2 * n))
            w.fill_diagonal_(0.0)
        if not bool(torch.isfinite(w).all()):
            raise ConfigError(f"train.oja_lr = {lr} makes Oja's rule diverge; lower it")
    return w


def train_texture(
    film: TextureFilm,
    patterns: torch.Tensor,
    epochs: int | Iterable[int],
    on_epoch: Callable[[int], None] | None = None,
) -> None:
    """Apply every pattern once per epoch, in order: the film learns by itself.

    ``epochs``: how many, or the 0-based epochs to run (a resumed run's remaining ones, from
    :meth:`spinlearn.checkpoint.Checkpoint.epochs`). ``on_epoch`` gets each epoch's 1-based number.
    """
    _check_patterns(patterns)
    for epoch in range(epochs) if isinstance(epochs, int) else epochs:
        film.apply(patterns)
        if on_epoch is not None:
            on_epoch(epoch + 1)


def software_weights(rule: str, patterns: torch.Tensor, epochs: int, oja_lr: float) -> torch.Tensor:
    """The weight matrix of a software ``rule`` (``hebbian``, ``storkey`` or ``oja``)."""
    if rule == "hebbian":
        return hebbian(patterns)
    if rule == "storkey":
        return storkey(patterns)
    if rule == "oja":
        return oja(patterns, epochs, oja_lr)
    raise ConfigError(f"unknown software rule {rule!r} (known: hebbian, storkey, oja)")


class Recall(NamedTuple):
    states: torch.Tensor  # (B, N) final states
    sweeps: int  # sweeps run (each updates every neuron once)
    converged: bool  # True when a sweep changed nothing


def _sign_keep(field: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, state)).to(state.dtype)


def recall(
    weights: torch.Tensor,
    probes: torch.Tensor,
    mode: str = "async",
    generator: torch.Generator | None = None,
    max_sweeps: int = 50,
) -> Recall:
    """Run the sign dynamics from ``probes`` (B x N) until a sweep changes nothing."""
    if mode not in RECALL_MODES:
        raise ConfigError(f"recall mode {mode!r} unknown (known: {', '.join(RECALL_MODES)})")
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1] or probes.shape[-1] != weights.shape[0]:
        raise ConfigError(f"weights {tuple(weights.shape)} and probes {tuple(probes.shape)} do not fit")
    s = probes.to(weights.dtype).clone()
    if mode == "sync":
        for sweep in range(1, max_sweeps + 1):
            new = _sign_keep(s @ weights, s)
            if torch.equal(new, s):
                return Recall(s, sweep, True)
            s = new
        return Recall(s, max_sweeps, False)
    n = weights.shape[0]
    field = s @ weights  # weights are symmetric: field[:, i] = sum_j w_ij s_j
    for sweep in range(1, max_sweeps + 1):
        changed = False
        for i in torch.randperm(n, generator=generator, device="cpu").tolist():
            new = _sign_keep(field[:, i], s[:, i])
            delta = new - s[:, i]
            if bool(delta.any()):
                changed = True
                s[:, i] = new
                field.addr_(delta, weights[i])
        if not changed:
            return Recall(s, sweep, True)
    return Recall(s, max_sweeps, False)


def energy(weights: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Hopfield energy E = -1/2 s^T W s of each state (rows of ``states``)."""
    return -0.5 * ((states @ weights) * states).sum(-1)


def overlap(states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Overlap m = s . xi / N of each state with its target (1: exact recall, -1: the inverse)."""
    return (states * targets).mean(-1)


def flip_probes(
    patterns: torch.Tensor, per_pattern: int, flip_min: float, flip_max: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_pattern`` probes of every pattern, each with a fraction in [flip_min, flip_max] flipped.

    Returns ``(probes, index)``: ``index[k]`` is the pattern probe ``k`` came from. The number of
    flipped pixels is ``round(f N)`` with ``f`` uniform in the range; which pixels, uniformly.
    """
    if not 0 <= flip_min <= flip_max <= 1:
        raise ConfigError(f"flip fractions must satisfy 0 <= min <= max <= 1, got {flip_min}, {flip_max}")
    count, n = patterns.shape
    index = torch.arange(count).repeat_interleave(per_pattern)
    fractions = flip_min + (flip_max - flip_min) * torch.rand(len(index), generator=generator)
    flips = (fractions * n).round().long()
    ranks = torch.rand(len(index), n, generator=generator).argsort(1).argsort(1)  # a random order per probe
    mask = ranks < flips[:, None]
    probes = patterns.cpu()[index] * torch.where(mask, -1.0, 1.0)
    return probes.to(patterns), index.to(patterns.device)


__all__ = [
    "RECALL_MODES",
    "RULES",
    "Recall",
    "energy",
    "flip_probes",
    "hebbian",
    "oja",
    "overlap",
    "recall",
    "software_weights",
    "storkey",
    "train_texture",
]
