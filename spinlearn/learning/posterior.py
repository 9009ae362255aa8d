"""Posterior samples of a Langevin chain and the posterior-averaged prediction (Welling & Teh 2011)."""

from __future__ import annotations

import torch
from torch import nn

from spinlearn.hardware.dw_synapses import DWSynapses
from spinlearn.metrics import softmax_outputs


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
        devices = tuple(
            f"{name}." if name else "" for name, m in model.named_modules() if isinstance(m, DWSynapses)
        )
        return {
            k: v.detach().clone()
            for k, v in model.state_dict().items()
            if not (devices and k.startswith(devices))
        }

    def state_dict(self) -> dict:
        return {"states": self.states}

    def load_state_dict(self, state: dict) -> None:
        self.states = [dict(s) for s in state["states"]]

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
