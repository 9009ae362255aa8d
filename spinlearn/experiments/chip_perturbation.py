"""The chip trained with no backward pass: node perturbation from stochastic MTJs, sent as DW pulses.

The same chip as :mod:`spinlearn.experiments.chip` (every weight a domain-wall pair, every hidden
unit an MTJ neuron), on the same data, initial weights and devices, learning instead by study 4's
rule (:mod:`spinlearn.learning.perturbation`): every unit, output included, is perturbed by its
own stochastic MTJ (``noise``: by default the DANP authors' simulated sMTJ noise [C]); two noisy
forward passes give each weight its gradient estimate; Adam's moment registers beside the array
(:class:`~spinlearn.learning.moments.AdamDirection`) normalise it; and the update goes to the
walls as push-pull drift pulses at ``sgld.bits`` (DW-SGLD at temperature 0: plain pulsed descent,
the walls' own stochastic motion the only noise). No derivative is measured or computed, neither
by twins nor by a digital backward pass.

The rule is plain node perturbation, without the decorrelation of DANP (:math:`R_l = I`): a
decorrelating layer would be one more crossbar per layer (784 x 784 pairs in front of MNIST's input)
[I]. Its test accuracy is scored with the noise on (``danp_chip_test_accuracy``, the sMTJs stay
wired to the neurons, as the DANP authors score theirs) and off (``..._clean``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch

from spinlearn._fields import Validated, param
from spinlearn.config import batch_size_param, epochs_param, lr_decay_param, lr_final_param
from spinlearn.energy import Ledger, summary_of
from spinlearn.experiments import dw
from spinlearn.experiments.mnist import Tensors
from spinlearn.experiments.registry import RunContext
from spinlearn.learning.danp import cross_entropy_per_sample
from spinlearn.learning.danp_noise import layer_sources
from spinlearn.learning.moments import AdamDirection
from spinlearn.learning.perturbation import node_perturbation_step
from spinlearn.learning.sgld import DWSGLD
from spinlearn.nn.dw import DWLinear
from spinlearn.nn.mtj_activation import MTJActivation
from spinlearn.training import lr_at

PREFIX = "danp_chip_"


@dataclass(frozen=True)
class PerturbationConfig(Validated):
    """The chip trained by node perturbation (no backward pass) beside the AFD chip."""

    enabled: bool = param(True, "train the node-perturbation chip in the same run")
    epochs: int = epochs_param(20)
    batch_size: int = batch_size_param(256)
    lr: float = param(
        5e-4, "drift per update along Adam's normalised direction: -lr m/sqrt(v), as pulses", gt=0, le=1
    )
    lr_decay: str = lr_decay_param("cosine")
    lr_final: float = lr_final_param(0.1)
    eval_batch: int = param(4096, "test samples per noisy pass when scoring", ge=1, le=1_000_000)


class _Chip:
    """The DW-MTJ network as node perturbation sees it: crossbars, neurons and one sMTJ per unit."""

    def __init__(self, cfg, ctx: RunContext, shape, classes: int, ledger: Ledger) -> None:
        self.model = dw._variant_model(cfg, ctx, shape, True, classes, ledger)
        self.layers = [m for m in self.model.modules() if isinstance(m, DWLinear)]
        self.activations = [m for m in self.model.modules() if isinstance(m, MTJActivation)]
        self.generator = torch.Generator(ctx.device).manual_seed(ctx.seed + 13)
        self.noises = layer_sources([layer.out_features for layer in self.layers], self.generator, cfg.noise)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, noisy: bool) -> torch.Tensor:
        h = x
        for k, layer in enumerate(self.layers):
            a = layer(h)
            if noisy:
                a = a + self.noises[k](a.shape[0]).to(a)
            h = self.activations[k](a) if k < len(self.activations) else a
        return h

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, noisy: bool, batch: int) -> float:
        correct = sum(
            int((self.forward(x[s : s + batch], noisy).argmax(1) == y[s : s + batch]).sum())
            for s in range(0, len(x), batch)
        )
        return correct / max(len(x), 1)


def train(cfg, ctx: RunContext, d: Tensors, shape) -> tuple[dict[str, float], list[dict]]:
    """Train the node-perturbation chip; its metrics (``danp_chip_*``) and per-epoch history."""
    p: PerturbationConfig = cfg.perturbation
    x, y = d.train
    n = len(x)
    ledger = Ledger(cfg.energy)
    chip = _Chip(cfg, ctx, shape, d.classes, ledger)
    params = [
        t for layer in chip.layers for t in layer.parameters() if getattr(t, "synapses", None) is not None
    ]
    pulse_rule = dataclasses.replace(cfg.sgld, temperature=0.0)  # pulsed descent: no added diffusion
    noise = torch.Generator(ctx.device).manual_seed(ctx.seed + 11)
    optimizer = DWSGLD(params, p.lr, pulse_rule, 1, noise, ledger)
    moments = AdamDirection(params)
    order = torch.Generator().manual_seed(ctx.seed + 1)
    x_eval, y_eval = d.test[0][: cfg.data.eval_subset or None], d.test[1][: cfg.data.eval_subset or None]
    history: list[dict] = []
    clock = {"busy_s": 0.0, "steps": 0}
    state = {
        "model": chip.model,
        "optimizer": optimizer,
        "moments": moments,
        "order": order,
        "noise_generator": chip.generator,
        "ledger": ledger,
        "history": history,
        "clock": clock,
        **{f"noise{k}": source for k, source in enumerate(chip.noises)},
        **{k: v for k, v in dw._noise_sources(chip.model, optimizer, ctx).items() if k != "run_generator"},
    }
    for epoch in ctx.checkpoint.epochs("danp_chip", p.epochs, state):
        lr = lr_at(epoch, p)
        for group in optimizer.param_groups:
            group["lr"] = lr
        perm = torch.randperm(n, generator=order).to(x.device)
        loss_sum = 0.0
        start = time.perf_counter()
        with ledger.in_phase("train"):
            for first in range(0, n, p.batch_size):
                idx = perm[first : first + p.batch_size]
                step = node_perturbation_step(
                    chip.layers, chip.activations, chip.noises, cross_entropy_per_sample, x[idx], y[idx]
                )
                moments.apply()
                optimizer.step()
                loss_sum += step.loss * len(idx)
                clock["steps"] += 1
        clock["busy_s"] += time.perf_counter() - start
        with ledger.in_phase("evaluation"):
            accuracy = chip.accuracy(x_eval, y_eval, True, p.eval_batch)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / n, "test_accuracy": accuracy}
        history.append(record)
        ctx.on_epoch({"variant": "danp_chip", **record})
    x_test, y_test = d.test
    metrics = {
        "test_accuracy": chip.accuracy(x_test, y_test, True, p.eval_batch),
        "test_accuracy_clean": chip.accuracy(x_test, y_test, False, p.eval_batch),
        "train_loss": history[-1]["train_loss"],
        "pulses": float(optimizer.pulses),
        "seconds_per_step": clock["busy_s"] / max(clock["steps"], 1),
    }
    energy = summary_of(ledger, math.nan, len(x_eval) * len(history))
    metrics.update({k: energy[k] for k in ("train_j", "calibration_j", "inference_j")})
    return {PREFIX + k: v for k, v in metrics.items()}, history


def epochs(cfg) -> int:
    """Epochs of the node-perturbation chip in a run (0 when it is off)."""
    return cfg.perturbation.epochs if cfg.perturbation.enabled else 0


__all__ = ["PerturbationConfig", "epochs", "train"]
