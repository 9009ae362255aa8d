r"""Node perturbation on any stack of layers: gradients from the noise the neurons' own devices add.

The rule of study 4 (Koenders et al., Phys. Rev. Applied 23, 054035 (2025); the DANP study's page,
docs/studies/danp.md), in its plain form (no decorrelation), for layers that are not a
:class:`~spinlearn.learning.danp.DANPNetwork`: a chip whose synapses are domain-wall crossbars and
whose neurons are MTJs, say. Nothing is differentiated: two noisy forward passes and a difference.

For layers :math:`l = 1 \dots L` with :math:`h_0 = x`, each unit perturbed by its own noise
:math:`\xi_l` (a stochastic MTJ's voltage, :mod:`spinlearn.learning.danp_noise`) [C]:

.. math:: a_l = W_l h_{l-1} + b_l + \xi_l, \qquad h_l = f_l(a_l) \quad (f_L = \mathrm{id})

Per sample :math:`n` of the two passes (1) and (2), with independent noise [C]:

.. math:: s_n = \frac{N\,(L^{(1)}_n - L^{(2)}_n)}{\sum_l \lVert a^{(1)}_{l,n} - a^{(2)}_{l,n}\rVert^2},
          \qquad \nabla W_l = \sum_n s_n\,(a^{(1)}_{l,n} - a^{(2)}_{l,n})\,h^{(1)T}_{l-1,n},
          \qquad \nabla b_l = \sum_n s_n\,(a^{(1)}_{l,n} - a^{(2)}_{l,n})

with :math:`N` the number of perturbed units. Activity-based: the difference of the
pre-activations carries the noise propagated from lower layers as well. A sample whose two passes
saw the same noise carries no information and is left out (:math:`s_n = 0`). Its expectation is
the gradient of the loss for small noise; its variance grows with :math:`N`, and single estimates
are heavy-tailed (a ratio whose denominator can be small), which is why the DANP authors step them
with Adam and why :class:`~spinlearn.learning.moments.AdamDirection` stands between this rule and
a pulsed crossbar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from spinlearn.errors import TrainingDiverged


class PerturbationStep(NamedTuple):
    """What one :func:`node_perturbation_step` measured."""

    loss: float  #: mean per-sample loss of pass (1)
    loss_difference: float  #: mean |L1_n - L2_n|
    skipped: int  #: samples left out because their two passes saw the same noise


@torch.no_grad()
def node_perturbation_step(
    layers: Sequence[nn.Module],
    activations: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    noises: Sequence[Callable[[int], torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
) -> PerturbationStep:
    """Two noisy passes of ``(x, target)`` through ``layers``; writes the gradient estimates to
    each layer's ``weight.grad`` and ``bias.grad`` (module docstring).

    ``layers[l](h)`` computes :math:`W_l h + b_l` (a :class:`~spinlearn.nn.DWLinear` reads its
    walls); ``activations[l]`` follows every layer but the last; ``noises[l](n_rows)`` gives
    ``n_rows`` successive noise samples for layer ``l``'s units; ``loss_fn(output, target)`` is
    per sample. Every sample was left out: the gradients are set to ``None`` (an optimizer skips
    them). Raises :class:`TrainingDiverged` naming the first non-finite quantity, before any
    ``.grad`` is touched.
    """
    if len(activations) != len(layers) - 1 or len(noises) != len(layers):
        raise ValueError(
            f"{len(layers)} layers need {len(layers) - 1} activations and {len(layers)} noise sources, "
            f"got {len(activations)} and {len(noises)}"
        )
    batch = x.shape[0]
    h = x.repeat(2, 1)
    inputs, diffs = [], []
    for k, layer in enumerate(layers):
        inputs.append(h[:batch])
        a = layer(h)
        a = a + noises[k](2 * batch).to(a)
        diffs.append(a[:batch] - a[batch:])
        h = activations[k](a) if k < len(activations) else a
    losses = loss_fn(h, target.repeat(2))
    delta_loss = losses[:batch] - losses[batch:]
    total = torch.stack([d.square().sum(1) for d in diffs]).sum(0)
    live = total > 0
    n_perturbed = sum(d.shape[1] for d in diffs)
    scale = torch.where(live, delta_loss * n_perturbed / torch.where(live, total, 1.0), 0.0)
    grads = []
    for d, z in zip(diffs, inputs, strict=True):
        d.mul_(scale[:, None])
        grads.append((d.t() @ z, d.sum(0)))
    summary = [losses[:batch].mean(), delta_loss.abs().mean(), (~live).sum().to(losses.dtype)]
    checks = torch.stack(
        [losses.sum(), scale.sum(), *(g.sum() for pair in grads for g in pair), *summary]
    ).tolist()
    if not math.isfinite(checks[0]):
        raise TrainingDiverged("node perturbation: non-finite loss at the output")
    if not math.isfinite(checks[1]):
        raise TrainingDiverged(
            "node perturbation: non-finite scale s_n (the passes' differences underflowed)"
        )
    for k in range(len(layers)):
        if not all(math.isfinite(v) for v in checks[2 + 2 * k : 4 + 2 * k]):
            raise TrainingDiverged(
                f"node perturbation: non-finite gradient in layer {k + 1} of {len(layers)}"
            )
    skipped = int(checks[-1])
    for layer, (g_w, g_b) in zip(layers, grads, strict=True):
        layer.weight.grad = None if skipped == batch else g_w
        if layer.bias is not None:
            layer.bias.grad = None if skipped == batch else g_b
    return PerturbationStep(loss=checks[-3], loss_difference=checks[-2], skipped=skipped)


__all__ = ["PerturbationStep", "node_perturbation_step"]
