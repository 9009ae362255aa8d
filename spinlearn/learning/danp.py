r"""Decorrelated activity-based node perturbation (DANP): learning from the noise of stochastic MTJs.

Koenders et al., "Noise-based Local Learning using Stochastic Magnetic Tunnel Junctions", Phys. Rev.
Applied 23, 054035 (2025); Dalm, van Gerven, Ahmad, arXiv:2310.00965; see the study's page in the
docs (docs/studies/danp.md). The rule is checked line by line against the authors' public code,
github artcogsys/MTJ-Node-Perturbation (commit 2db32df), files ``nodeperturbation/np.py``,
``decor.py``, ``net.py``, ``noise.py``, ``utils.py``, ``run.py`` and ``conf/`` (read through the
stored-code index; ``bp.py`` is not in it).

Network [C]
-----------
For layers :math:`l = 1 \dots L`, with :math:`h_0 = x`:

.. math:: z_l = R_l h_{l-1} + c_l, \qquad a_l = W_l z_l + b_l + \xi_l, \qquad h_l = f(a_l)

:math:`f` = LeakyReLU(0.01) on hidden layers, identity on the output. :math:`\xi_l` is the noise of
layer :math:`l`'s own devices, on every layer including the output (one source per layer,
:data:`~spinlearn.learning.danp_noise.NOISE_SOURCES`). :math:`R_l = I`, :math:`c_l = 0` at the
start; ``np`` keeps them there and skips them. :math:`W_l, b_l \sim U(\pm 1/\sqrt{\mathrm{fan\_in}})`
(``torch.nn.Linear``'s default, which the authors' layers inherit).

Rule [C]
--------
Each minibatch of :math:`B` samples runs two noisy passes (1) and (2) with independent noise (one
forward of :math:`2B` rows). Per sample :math:`n`, with :math:`L_n` the per-sample loss:

.. math:: \delta L_n = L^{(1)}_n - L^{(2)}_n, \qquad
          \delta a_{l,n} = a^{(1)}_{l,n} - a^{(2)}_{l,n}, \qquad
          s_n = \frac{N\, \delta L_n}{\sum_l \lVert \delta a_{l,n} \rVert^2}

.. math:: \nabla W_l = \sum_n s_n\, \delta a_{l,n}\, z^{(1)T}_{l,n}, \qquad
          \nabla b_l = \sum_n s_n\, \delta a_{l,n}

:math:`N = \sum_l n_l`, every unit being perturbed. Activity-based: :math:`\delta a_l` is the whole
difference of the pre-activations, noise propagated from lower layers included. The gradients are
*summed* over the batch and written to ``.grad`` (replacing it), so a torch optimizer steps them
(Adam in the paper, :func:`make_optimizers`). Decorrelation (``danp``), from pass (1) only:

.. math:: C_l = \frac{1}{B}\sum_n z^{(1)}_{l,n} z^{(1)T}_{l,n}, \qquad
          \nabla R_l = \left(C_l \circ (1 - I)\right) R_l, \qquad
          \nabla c_l = \sum_n z^{(1)}_{l,n}

stepped by plain SGD with rate :math:`\eta_d`: :math:`\Delta R_l = -\eta_d (C_l \circ (1 - I)) R_l`.
A sample whose :math:`\sum_l \lVert\delta a_{l,n}\rVert^2 = 0` (the two passes saw the same noise)
carries no information and is left out (:math:`s_n = 0`); when every sample is, the forward
gradients are set to ``None`` so the optimizer skips them (the decorrelation step, which needs no
perturbation, still happens). NaN/Inf raises :class:`~spinlearn.errors.TrainingDiverged` naming
the layer, before any ``.grad`` is touched.

Details taken from the authors' code [C]
----------------------------------------
* ``np.py`` ``NPLinear``: one forward of the batch stacked twice, noise drawn for each half; the
  weight gradient is ``einsum(s * (a1 - a2), clean_input)`` where ``clean_input`` is the first half
  of the layer's input, i.e. :math:`z^{(1)}` (with decorrelation, the decorrelated input); bias
  gradient the sum of ``s * (a1 - a2)``; per-layer squared norms summed into the denominator.
* ``net.py`` ``PerturbNet.train_step``: per-sample losses (``reduction="none"``),
  :math:`\delta L = L^{(1)} - L^{(2)}`, :math:`s = \delta L \cdot N / \sum_l \lVert\delta a_l\rVert^2`
  with :math:`N` the summed ``out_features`` of the perturbed layers; no guard against a zero
  denominator (ours: leave the sample out, above). Loss ``CCE`` = per-sample cross-entropy;
  ``MSE`` = :math:`\sum_k (y_k - \mathrm{onehot}_k)^2` per sample (``loss="mse"`` here).
* ``decor.py`` ``HalfBatchDecorLinear``: a decorrelation layer in front of *every* layer (input
  layer included), :math:`C` from the first half of the batch with :math:`1/B`, gradient
  ``(C * (1 - I)) @ R``; its bias exists although built with ``bias=False`` (the check is
  ``if bias is not None``), starts at zero and gets ``grad = z.sum(0)`` (``decor_bias``, default
  on). ``run.py``: Adam (betas 0.9/0.999, eps 1e-8) on :math:`W, b`; SGD with ``decor_lr`` on
  :math:`R, c`; decorrelation exists only when ``decor_lr != 0`` (``np`` here).
* ``conf/runs/NP_*_MNIST.yaml``: 3 x 500 hidden, batch 64, lr 4.8828e-5, decor_lr 1.9073e-7, noise
  scale 1 for (simulated) sMTJ noise and 0.0125 for Bernoulli noise.
* ``utils.py`` ``test`` / ``PerturbNet.test_step``: test accuracy from a *noisy* pass (both halves
  noisy, the first half kept); :func:`accuracy` with ``noisy=True`` draws the same statistics.
* BP baseline (``NoPerturbNet``): per-sample losses *summed*, ``loss.sum().backward()``; with
  ``decor_lr != 0`` its ``DecorLinear`` layers are trained on the full batch of the clean pass, but
  the authors' BP runs (``conf/runs/BP_*.yaml``) use ``decor_lr = 0``: no decorrelation.
  :func:`backprop_gradients` does both (``train_decorrelation``, default off).

Where this differs from the authors
-----------------------------------
* The decorrelation is usually written :math:`z = R h`; the authors' code also carries the bias
  :math:`c` (above); ``decor_bias=False`` gives the bias-free form.
* Layer 1 sees the same input in both passes, so :math:`z_1` and :math:`W_1 z_1` are computed once
  for the B samples (the same numbers; the authors compute them twice).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spinlearn._fields import Validated, param
from spinlearn._random import own_generator
from spinlearn.errors import ConfigError, TrainingDiverged
from spinlearn.learning.danp_noise import NoiseConfig, NoiseSource, layer_sources

VARIANTS = ("danp", "np")
#: The authors' Adam learning rate for the noise-based MNIST runs [C].
AUTHORS_LR = 4.8828e-5


# ---------------------------------------------------------------------------------------------------
# Losses (per sample: the rule needs one loss difference per sample)


def cross_entropy_per_sample(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row (the authors' ``CCE``)."""
    return F.cross_entropy(output, target, reduction="none")


def mse_per_sample(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_k (y_k - \\mathrm{onehot}_k)^2` of each row (the authors' ``MSE``)."""
    onehot = F.one_hot(target, output.shape[1]).to(output.dtype)
    return (output - onehot).square().sum(1)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": cross_entropy_per_sample,
    "mse": mse_per_sample,
}


# ---------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class DANPConfig(Validated):
    """The node-perturbation rule and the network it trains."""

    variant: str = param(
        "danp",
        "danp (decorrelated) or np (plain node perturbation: R fixed at I, no bias c)",
        choices=VARIANTS,
    )
    decor_lr: float = param(
        1.9073e-7,
        "decorrelation learning rate eta_d (plain SGD, as the authors; their MNIST value)",
        ge=0,
        le=1,
    )
    decor_bias: bool = param(
        True, "decorrelation carries a bias c trained on the column sums of z (the authors' code does)"
    )
    loss: str = param(
        "cross_entropy", "per-sample loss: cross_entropy or mse (sum over classes)", choices=tuple(LOSSES)
    )
    negative_slope: float = param(0.01, "slope of the hidden LeakyReLU for negative input", ge=0, lt=1)


# ---------------------------------------------------------------------------------------------------
# The network


class DANPNetwork(nn.Module):
    """An MLP ``sizes = (in, h1, ..., out)`` with a noise source on every layer and, for ``danp``,
    a decorrelation matrix :math:`R_l` (and bias :math:`c_l`) in front of every layer.

    ``generator`` draws the initial weights (and, when it lives on ``device``, the noise; otherwise
    a generator on ``device`` seeded from it does); without one, a generator of the network's own
    seeded from torch's default generator (:mod:`spinlearn._random`). Parameters: ``weights[l]``,
    ``biases[l]`` (trained through ``.grad``); ``decorrelation[l]``, ``decorrelation_bias[l]`` (``danp`` only;
    ``requires_grad=False``: no autograd ever reaches them). ``noise_sources[l]`` may be replaced
    by any callable ``n_rows -> (n_rows, sizes[l + 1])``. Build it on the device it trains on:
    ``.to()`` moves the parameters, but the sources keep drawing on their generator's device (their
    samples are then copied over at every call).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        generator: torch.Generator | None = None,
        config: DANPConfig | None = None,
        noise: NoiseConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ConfigError(f"sizes = {list(sizes)}: needs at least two layer widths, each >= 1")
        self.sizes = sizes
        self.config = config or DANPConfig()
        self.noise_config = noise or NoiseConfig()
        self.decorrelated = self.config.variant == "danp"
        self.loss_fn = LOSSES[self.config.loss]
        generator = own_generator(generator, device)
        device = generator.device if device is None else torch.device(device)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            for shape, params in (((fan_out, fan_in), self.weights), ((fan_out,), self.biases)):
                u = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)
                params.append(nn.Parameter(((2 * u - 1) * bound).to(device)))
        self.decorrelation, self.decorrelation_bias = nn.ParameterList(), nn.ParameterList()
        if self.decorrelated:
            for width in sizes[:-1]:
                eye = torch.eye(width, device=device, dtype=dtype)
                self.decorrelation.append(nn.Parameter(eye, requires_grad=False))
                if self.config.decor_bias:
                    zero = torch.zeros(width, device=device, dtype=dtype)
                    self.decorrelation_bias.append(nn.Parameter(zero, requires_grad=False))
        if generator.device == device:
            noise_generator = generator
        else:
            seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
            noise_generator = torch.Generator(device).manual_seed(seed)
        self.noise_sources: list[NoiseSource] = layer_sources(
            sizes[1:], noise_generator, self.noise_config, dtype
        )

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def n_perturbed(self) -> int:
        """N: the number of perturbed units (every unit of every layer, output included)."""
        return sum(self.sizes[1:])

    def forward_parameters(self) -> list[nn.Parameter]:
        """:math:`W_l, b_l` of every layer (the ones Adam steps)."""
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def decorrelation_parameters(self) -> list[nn.Parameter]:
        """:math:`R_l` (and :math:`c_l`) of every layer (SGD with ``decor_lr``); empty for ``np``."""
        return [*self.decorrelation, *self.decorrelation_bias]

    def decorrelation_matrix(self, layer: int) -> torch.Tensor:
        """:math:`R_l` (the identity for ``np``)."""
        if self.decorrelated:
            return self.decorrelation[layer]
        w = self.weights[layer]
        return torch.eye(w.shape[1], device=w.device, dtype=w.dtype)

    def layer_input(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """:math:`z_l = R_l h_{l-1} + c_l` (``h`` itself for ``np``)."""
        if not self.decorrelated:
            return h
        r = self.decorrelation[layer]
        if self.config.decor_bias:
            return torch.addmm(self.decorrelation_bias[layer], h, r.t())
        return h @ r.t()

    def noise(self, layer: int, n_rows: int, like: torch.Tensor) -> torch.Tensor:
        """``n_rows`` successive noise samples of layer ``layer``'s nodes, on ``like``'s device/dtype."""
        xi = self.noise_sources[layer](n_rows)
        if xi.shape != (n_rows, self.sizes[layer + 1]):
            raise ValueError(
                f"noise source of layer {layer + 1} gave shape {tuple(xi.shape)}, "
                f"expected {(n_rows, self.sizes[layer + 1])}"
            )
        return xi.to(device=like.device, dtype=like.dtype)

    def forward(self, x: torch.Tensor, noisy: bool = False) -> torch.Tensor:
        """Output of one pass: clean, or ``noisy`` (the authors' evaluation) with fresh noise."""
        return self._run(x, noisy)[0]

    def _run(self, x: torch.Tensor, noisy: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self._check_input(x)
        h, inputs = x, []
        for layer in range(self.n_layers):
            z = self.layer_input(layer, h)
            inputs.append(z)
            a = torch.addmm(self.biases[layer], z, self.weights[layer].t())
            if noisy:
                a = a + self.noise(layer, a.shape[0], a)
            h = a if layer == self.n_layers - 1 else F.leaky_relu(a, self.config.negative_slope)
        return h, inputs

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"input must have shape (batch, {self.sizes[0]}), got {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------------
# The rule


class DANPStepResult(NamedTuple):
    """What one :func:`danp_step` measured."""

    loss: float  #: mean per-sample loss of pass (1)
    loss_difference: float  #: mean |L1_n - L2_n|
    skipped: int  #: samples left out because sum_l ||da_l,n||^2 = 0


def _decorrelation_gradient(z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """:math:`(C \\circ (1 - I)) R` with :math:`C = z^T z / B`, never forming C when B < d."""
    batch, width = z.shape
    # diag(C) R goes in as the product's addend, and 1/B as its alpha: two passes over the d x d
    # result instead of four; in place, since an out-of-place addmm copies its addend first (a
    # transposing copy, as costly here as the product's addend pass itself)
    diag_r = r * z.square().sum(0).mul_(-1.0)[:, None]
    if batch < width:  # 2 B d^2 vs B d^2 + d^3 flops
        return diag_r.addmm_(z.t(), z @ r, alpha=1.0 / batch, beta=1.0 / batch)
    return diag_r.addmm_(z.t() @ z, r, alpha=1.0 / batch, beta=1.0 / batch)


def _decorrelation_gradients(net: DANPNetwork, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = [_decorrelation_gradient(z, r) for z, r in zip(inputs, net.decorrelation, strict=True)]
    if net.config.decor_bias:
        grads += [z.sum(0) for z in inputs]  # pushes each layer's input towards zero mean
    return grads


def _diverged(what: str) -> TrainingDiverged:
    return TrainingDiverged(f"DANP step: {what}")


@torch.no_grad()
def danp_step(net: DANPNetwork, x: torch.Tensor, target: torch.Tensor) -> DANPStepResult:
    """Two noisy passes of ``(x, target)``; writes the DANP (or NP) gradients to ``.grad``.

    Forward parameters get :math:`\\nabla W_l, \\nabla b_l` (module docstring; ``None`` when every
    sample was left out); for ``danp`` the decorrelation parameters get :math:`\\nabla R_l` (and
    :math:`\\nabla c_l`). No autograd graph is built. Raises :class:`TrainingDiverged` naming the
    first layer with NaN/Inf, leaving every ``.grad`` as it was.
    """
    net._check_input(x)
    batch, n_layers = x.shape[0], net.n_layers
    # Layer 1's input is the same in both passes: z_1 and W_1 z_1 once for the B samples.
    z = net.layer_input(0, x)
    a = torch.addmm(net.biases[0], z, net.weights[0].t()).repeat(2, 1)
    a += net.noise(0, 2 * batch, a)
    inputs, diffs = [z], [a[:batch] - a[batch:]]
    for layer in range(1, n_layers):
        z = net.layer_input(layer, F.leaky_relu(a, net.config.negative_slope))
        a = torch.addmm(net.biases[layer], z, net.weights[layer].t())
        a += net.noise(layer, 2 * batch, a)
        inputs.append(z[:batch])
        diffs.append(a[:batch] - a[batch:])
    losses = net.loss_fn(a, target.repeat(2))
    delta_loss = losses[:batch] - losses[batch:]
    norms = [d.square().sum(1) for d in diffs]
    total = torch.stack(norms).sum(0)
    live = total > 0
    scale = torch.where(live, delta_loss * net.n_perturbed / torch.where(live, total, 1.0), 0.0)

    grads = []
    for d, z in zip(diffs, inputs, strict=True):
        d.mul_(scale[:, None])
        grads += [d.t() @ z, d.sum(0)]
    decor_grads = _decorrelation_gradients(net, inputs) if net.decorrelated else []

    # One host sync for every check: each entry is finite iff its tensor is.
    checks = torch.stack(
        [n.sum() for n in norms]
        + [losses.sum(), scale.sum()]
        + [g.sum() for g in grads + decor_grads]
        + [losses[:batch].mean(), delta_loss.abs().mean(), (~live).sum().to(losses.dtype)]
    ).tolist()
    if not all(math.isfinite(v) for v in checks[:-3]):
        _raise_first_nonfinite(net, checks, n_layers)
    assert not any(g.requires_grad for g in grads + decor_grads), "DANP must not build an autograd graph"

    skipped = int(checks[-1])
    all_skipped = skipped == batch
    for p, g in zip(net.forward_parameters(), grads, strict=True):
        p.grad = None if all_skipped else g
    for p, g in zip(net.decorrelation_parameters(), decor_grads, strict=True):
        p.grad = g
    return DANPStepResult(loss=checks[-3], loss_difference=checks[-2], skipped=skipped)


def _raise_first_nonfinite(net: DANPNetwork, checks: list[float], n_layers: int) -> None:
    bad = [not math.isfinite(v) for v in checks]
    for layer in range(n_layers):
        if bad[layer]:
            raise _diverged(f"non-finite pre-activation differences in layer {layer + 1} of {n_layers}")
    if bad[n_layers]:
        raise _diverged("non-finite loss at the output")
    if bad[n_layers + 1]:
        raise _diverged("non-finite perturbation scale s_n (sum_l ||da_l||^2 underflowed)")
    start = n_layers + 2
    for layer in range(n_layers):
        if bad[start + 2 * layer] or bad[start + 2 * layer + 1]:
            raise _diverged(f"non-finite weight gradient in layer {layer + 1} of {n_layers}")
    start += 2 * n_layers
    for i, flag in enumerate(bad[start:-3]):
        if flag:
            raise _diverged(f"non-finite decorrelation update in layer {i % n_layers + 1} of {n_layers}")


def backprop_gradients(
    net: DANPNetwork, x: torch.Tensor, target: torch.Tensor, *, train_decorrelation: bool = False
) -> float:
    """The backprop baseline on the same network: clean pass, autograd, gradients into ``.grad``.

    The loss is summed over the batch (the authors' ``loss.sum().backward()``), so the gradients
    compare directly with :func:`danp_step`'s. :math:`R_l, c_l` are frozen, as in the authors' BP
    runs (``decor_lr = 0``); ``train_decorrelation`` also writes their decorrelation gradients,
    from the full batch of the clean pass, as their ``NoPerturbNet`` with ``DecorLinear`` does.
    Returns the mean per-sample loss.
    """
    with torch.enable_grad():
        output, inputs = net._run(x, noisy=False)
        loss = net.loss_fn(output, target).sum()
        if not torch.isfinite(loss):
            raise _diverged(f"non-finite backprop loss ({loss.item()})")
        grads = torch.autograd.grad(loss, net.forward_parameters())
    for p, g in zip(net.forward_parameters(), grads, strict=True):
        p.grad = g
    if train_decorrelation and net.decorrelated:
        with torch.no_grad():
            decor = _decorrelation_gradients(net, [z.detach() for z in inputs])
        for p, g in zip(net.decorrelation_parameters(), decor, strict=True):
            p.grad = g
    return loss.item() / x.shape[0]


def make_optimizers(
    net: DANPNetwork, lr: float = AUTHORS_LR, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> list[torch.optim.Optimizer]:
    """The authors' pair: Adam on :math:`W, b`; SGD with ``config.decor_lr`` on :math:`R, c` (danp)."""
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.Adam(net.forward_parameters(), lr=lr, betas=betas, eps=eps)
    ]
    if net.decorrelated and net.config.decor_lr > 0:
        optimizers.append(torch.optim.SGD(net.decorrelation_parameters(), lr=net.config.decor_lr))
    return optimizers


@torch.no_grad()
def accuracy(
    net: DANPNetwork, x: torch.Tensor, y: torch.Tensor, *, noisy: bool, batch_size: int = 4096
) -> float:
    """Fraction of ``x`` classified as ``y``; ``noisy=True`` is the authors' test accuracy."""
    correct = 0
    for start in range(0, len(x), batch_size):
        out = net(x[start : start + batch_size], noisy=noisy)
        correct += int((out.argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(len(x), 1)


__all__ = [
    "AUTHORS_LR",
    "LOSSES",
    "VARIANTS",
    "DANPConfig",
    "DANPNetwork",
    "DANPStepResult",
    "accuracy",
    "backprop_gradients",
    "cross_entropy_per_sample",
    "danp_step",
    "make_optimizers",
    "mse_per_sample",
]
