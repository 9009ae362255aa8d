"""One chip made of all the devices: domain-wall synapses feeding MTJ neurons, no digital gradient pass.

Every weight is a domain-wall pair (:class:`~spinlearn.nn.DWLinear`) programmed by push-pull pulses
(DW-SGLD, :class:`~spinlearn.learning.DWSGLD`, at ``sgld.bits``); every nonlinearity is an MTJ neuron
(:class:`~spinlearn.nn.MTJActivation`) whose derivative f'(I) comes from its twin biased at I + dI
(analog finite differences). The backward pass multiplies the measured slopes into the crossbar's
transposed read; the update is sent as pulses. The same network in float with tanh, trained by SGD
backprop, runs beside it on the same data, initial weights and minibatch order
(``float_test_accuracy``). Energy: every MTJ read and every programming pulse is booked.

A third network, the same chip with the same initial weights and devices, learns with no
derivative at all: node perturbation from one stochastic MTJ per unit, sent as DW pulses
(:mod:`spinlearn.experiments.chip_perturbation`, section ``perturbation``; metrics ``danp_chip_*``).

Experiments (built on the domain-wall study's runner, :mod:`spinlearn.experiments.dw`, with
``model.activation=mtj``):

* ``iris-chip``: 4 -> 16 MTJ neurons -> 3, every weight on DW pairs.
* ``mnist-chip``: 784 -> 512 -> 256 MTJ neurons -> 10 on MNIST, a colder posterior (T = 0.03) and
  a larger step (lr 0.2) than the DW study's MLP: the chip's units saturate where ReLUs do not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from spinlearn.experiments import chip_perturbation, dw
from spinlearn.experiments.chip_perturbation import PerturbationConfig
from spinlearn.experiments.dw_config import (
    COLD,
    CompareConfig,
    DWConfig,
    DWData,
    DWModelConfig,
    DWTrainConfig,
    OODConfig,
)
from spinlearn.experiments.registry import RunContext, SeedResult, family, threshold
from spinlearn.learning.danp_noise import NoiseConfig
from spinlearn.learning.sgld import SGLDConfig


@dataclass(frozen=True)
class ChipConfig(DWConfig):
    """The DW study's sections, and the node-perturbation chip's schedule and noise."""

    perturbation: PerturbationConfig = dataclasses.field(default_factory=PerturbationConfig)
    noise: NoiseConfig = dataclasses.field(default_factory=NoiseConfig)  # one sMTJ per unit


def run(cfg: ChipConfig, ctx: RunContext) -> SeedResult:
    d, shape = dw.load(cfg.data, ctx.seed, ctx.device, ctx.out_dir)
    result = dw.run_compare(cfg, ctx, (d, shape))
    m = result.metrics
    m["float_test_accuracy"] = m["accuracy_sgd"]
    m["chip_minus_float"] = m["test_accuracy"] - m["accuracy_sgd"]
    if cfg.perturbation.enabled:
        metrics, history = chip_perturbation.train(cfg, ctx, d, shape)
        m.update(metrics)
        result.artifacts["histories"]["node perturbation (DW pulses)"] = [history]
    return result


def _chip(
    hidden: tuple[int, ...], data: DWData, train: DWTrainConfig, temperature: float = COLD, **sections
) -> ChipConfig:
    return dataclasses.replace(
        ChipConfig(),
        model=DWModelConfig(hidden=hidden, activation="mtj"),
        compare=CompareConfig(float_sgld=False, sgd=True),
        data=data,
        train=train,
        sgld=SGLDConfig(temperature=temperature),
        ood=OODConfig(held_out=False),  # the chip is compared with its float twin, not on OOD inputs
        **sections,
    )


experiment = family(
    config_cls=ChipConfig,
    run=run,
    plot=dw.plot_compare,
    evaluate=dw.evaluate,
    epochs_of=lambda cfg: dw.compare_epochs(cfg) + chip_perturbation.epochs(cfg),
)
experiment(
    "iris-chip",
    "Iris on one chip: DW-pair synapses, 16 MTJ neurons, DW-SGLD pulses + AFD slopes; float tanh beside",
    base_config=lambda: _chip(
        (16,),
        DWData(dataset="iris", eval_subset=0),
        DWTrainConfig(epochs=60, batch_size=8),
        perturbation=PerturbationConfig(epochs=40, batch_size=8, lr=0.01),
    ),
    targets=(threshold("test_accuracy_mean", 0.93, "the AFD paper's device-in-the-loop Iris figure"),),
    seeds=10,
    quick_seeds=3,
    quick={"train.epochs": 20, "perturbation.epochs": 15},
)
experiment(
    "mnist-chip",
    "MNIST on one chip: 784 -> 512 -> 256 MTJ neurons -> 10, every weight a DW pair; float tanh beside",
    base_config=lambda: _chip((512, 256), DWData(), DWTrainConfig(epochs=12, lr=0.2), temperature=0.03),
    targets=(
        threshold("test_accuracy_mean", 0.97, "an MLP on MNIST, within 1 pp of float"),
        threshold(
            "danp_chip_test_accuracy_mean",
            0.90,
            "node perturbation from sMTJ noise (the DANP authors: 0.912 with decorrelation, 20 epochs)",
        ),
    ),
    quick={
        "data.dataset": "digits",
        "train.epochs": 4,
        "train.batch_size": 32,
        "data.eval_subset": 0,
        "perturbation.epochs": 4,
        "perturbation.batch_size": 32,
    },
)
