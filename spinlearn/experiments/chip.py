"""One chip made of all the devices: domain-wall synapses feeding MTJ neurons, no digital gradient pass.

Every weight is a domain-wall pair (:class:`~spinlearn.nn.DWLinear`) programmed by push-pull pulses
(DW-SGLD, :class:`~spinlearn.learning.DWSGLD`, at ``sgld.bits``); every nonlinearity is an MTJ neuron
(:class:`~spinlearn.nn.MTJActivation`) whose derivative f'(I) comes from its twin biased at I + dI
(analog finite differences). The backward pass multiplies the measured slopes into the crossbar's
transposed read; the update is sent as pulses. The same network in float with tanh, trained by SGD
backprop, runs beside it on the same data, initial weights and minibatch order
(``float_test_accuracy``). Energy: every MTJ read and every programming pulse is booked.

Experiments (built on the domain-wall study's runner, :mod:`spinlearn.experiments.dw`, with
``model.activation=mtj``):

* ``iris-chip``: 4 -> 16 MTJ neurons -> 3, every weight on DW pairs.
* ``mnist-chip``: 784 -> 512 -> 256 MTJ neurons -> 10 on MNIST, a colder posterior (T = 0.03) and
  a larger step (lr 0.2) than the DW study's MLP: the chip's units saturate where ReLUs do not.
"""

from __future__ import annotations

import dataclasses

from spinlearn.experiments import dw
from spinlearn.experiments.dw_config import (
    COLD,
    CompareConfig,
    DWConfig,
    DWData,
    DWModelConfig,
    DWTrainConfig,
)
from spinlearn.experiments.registry import RunContext, SeedResult, family, threshold
from spinlearn.learning.sgld import SGLDConfig


def run(cfg: DWConfig, ctx: RunContext) -> SeedResult:
    result = dw.run_compare(cfg, ctx)
    m = result.metrics
    m["float_test_accuracy"] = m["accuracy_sgd"]
    m["chip_minus_float"] = m["test_accuracy"] - m["accuracy_sgd"]
    return result


def _chip(hidden: tuple[int, ...], data: DWData, train: DWTrainConfig, temperature: float = COLD) -> DWConfig:
    return dataclasses.replace(
        DWConfig(),
        model=DWModelConfig(hidden=hidden, activation="mtj"),
        compare=CompareConfig(float_sgld=False, sgd=True),
        data=data,
        train=train,
        sgld=SGLDConfig(temperature=temperature),
    )


experiment = family(
    config_cls=DWConfig, run=run, plot=dw.plot_compare, evaluate=dw.evaluate, epochs_of=dw.compare_epochs
)
experiment(
    "iris-chip",
    "Iris on one chip: DW-pair synapses, 16 MTJ neurons, DW-SGLD pulses + AFD slopes; float tanh beside",
    base_config=lambda: _chip(
        (16,), DWData(dataset="iris", eval_subset=0), DWTrainConfig(epochs=60, batch_size=8)
    ),
    targets=(threshold("test_accuracy_mean", 0.93, "the AFD paper's device-in-the-loop Iris figure"),),
    seeds=10,
    quick_seeds=3,
    quick={"train.epochs": 20},
)
experiment(
    "mnist-chip",
    "MNIST on one chip: 784 -> 512 -> 256 MTJ neurons -> 10, every weight a DW pair; float tanh beside",
    base_config=lambda: _chip((512, 256), DWData(), DWTrainConfig(epochs=12, lr=0.2), temperature=0.03),
    targets=(threshold("test_accuracy_mean", 0.97, "an MLP on MNIST, within 1 pp of float"),),
    quick={"data.dataset": "digits", "train.epochs": 4, "train.batch_size": 32, "data.eval_subset": 0},
)
