r"""Adam's moment registers: a noisy gradient estimate made into a step a pulsed crossbar can send.

A crossbar programmed at :math:`k` bits sends each weight a code :math:`n = \mathrm{round}(d/\Delta)`
with one step :math:`\Delta = \max|d| / (2^{k-1} - 1)` for the whole array
(:mod:`spinlearn.learning.sgld`). Fed a heavy-tailed estimate, such as node perturbation's
(:mod:`spinlearn.learning.perturbation`), the few largest entries set :math:`\Delta` and almost
every weight gets code 0: the crossbar learns nothing. Adam's normalised direction

.. math:: m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
          \qquad u = \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

is bounded (:math:`|u| \lesssim 1` for a steady gradient) and shrinks where the estimate only
fluctuates, which is what the DANP authors step (Adam, :math:`\beta = (0.9, 0.999)`,
:math:`\epsilon = 10^{-8}`) [C]. :math:`m` and :math:`v` are per-weight digital registers beside
the array (peripheral memory, two words per synapse), not a gradient computation: nothing is
differentiated.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class AdamDirection:
    """Replaces each parameter's ``.grad`` by Adam's direction :math:`u` (module docstring).

    Call :meth:`apply` between the gradient estimate and the optimizer that sends the update
    (``DWSGLD`` at temperature 0 with ``lr`` sends drift :math:`-\\mathrm{lr}\\,u`). Parameters
    without a gradient this step keep their moments. ``state_dict``/``load_state_dict`` make it
    part of a checkpoint.
    """

    def __init__(self, params: Iterable[torch.Tensor], betas: tuple[float, float] = (0.9, 0.999), eps=1e-8):
        self.params = list(params)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas = {betas}: each must be in [0, 1)")
        self.betas, self.eps = betas, eps
        self.steps = [0] * len(self.params)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def apply(self) -> None:
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            self.steps[i] += 1
            t = self.steps[i]
            self.m[i].mul_(b1).add_(g, alpha=1 - b1)
            self.v[i].mul_(b2).addcmul_(g, g, value=1 - b2)
            denominator = (self.v[i] / (1 - b2**t)).sqrt_().add_(self.eps)
            p.grad = self.m[i] / (1 - b1**t) / denominator

    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "m": [m.clone() for m in self.m], "v": [v.clone() for v in self.v]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["m"]) != len(self.params):
            raise ValueError(
                f"state holds {len(state['m'])} parameters' moments, this has {len(self.params)}"
            )
        self.steps = list(state["steps"])
        for mine, saved in zip(self.m + self.v, list(state["m"]) + list(state["v"]), strict=True):
            mine.copy_(saved)


__all__ = ["AdamDirection"]
